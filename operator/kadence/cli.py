"""The ``kadence`` command: one binary, one role per subcommand."""

from __future__ import annotations

import argparse
import logging
import sys

from kadence.config import Settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _cmd_migrate(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.store.migrate import migrate

    applied = migrate(settings.owner_database_url, settings.app_role)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0


def _cmd_worker(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.domain.errors import InvalidInput
    from kadence.worker import parse_queues, run_worker_pool

    try:
        priorities = parse_queues(options.queues)
    except InvalidInput as exc:
        print(f"--queues: {exc.reason}", file=sys.stderr)
        return 2
    return run_worker_pool(settings, options.concurrency, priorities)


def _cmd_api(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.api.server import serve

    return serve(settings, host=options.host, port=options.port)


def _cmd_dispatcher(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.dispatcher import run_dispatcher

    return run_dispatcher(settings)


def _cmd_operator(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.controller.main import run_operator

    return run_operator(
        settings, standalone=options.standalone, namespaces=options.namespace, peering_name=options.peering
    )


def _cmd_dev(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.dev import run_dev

    return run_dev(options)


def _cmd_token_create(settings: Settings, options: argparse.Namespace) -> int:
    from kadence.core import core_from_settings
    from kadence.domain.models import UserContext

    core = core_from_settings(settings)
    try:
        token = core.create_token(
            UserContext.system(), options.user_id, "master" if options.master else "user", options.description
        )
    finally:
        core.close()
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kadence", description="Kadence task scheduler for Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="apply database migrations (as the table owner)")
    migrate.set_defaults(run=_cmd_migrate)

    worker = commands.add_parser("worker", help="run worker processes")
    worker.add_argument("--concurrency", type=int, default=5, help="number of worker processes (default 5)")
    worker.add_argument("--queues", default=None, help="priorities to work on, e.g. critical,high (default: all)")
    worker.set_defaults(run=_cmd_worker)

    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default=None, help="address to listen on (default KADENCE_API_HOST)")
    api.add_argument("--port", type=int, default=None, help="port to listen on (default KADENCE_API_PORT)")
    api.set_defaults(run=_cmd_api)

    dispatcher = commands.add_parser("dispatcher", help="fire due cron ticks and delayed jobs (run any number)")
    dispatcher.set_defaults(run=_cmd_dispatcher)

    operator = commands.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument("--standalone", action="store_true", help="no peering: only one replica may run")
    operator.add_argument(
        "--peering", default="kadence", help="kopf peering object shared by replicas (default kadence)"
    )
    operator.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch this namespace (repeatable; default: all, or KADENCE_NAMESPACE)",
    )
    operator.set_defaults(run=_cmd_operator)

    dev = commands.add_parser("dev", help="everything on embedded PostgreSQL and Redis, for one laptop")
    dev.add_argument("--data-dir", default=".kadence", help="where the embedded servers keep data (default .kadence)")
    dev.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8080, help="API port (default 8080)")
    dev.add_argument("--concurrency", type=int, default=5, help="worker processes (default 5)")
    dev.set_defaults(run=_cmd_dev)

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="mint a bearer token and print it once")
    create.add_argument("--user-id", type=int, required=True)
    create.add_argument("--master", action="store_true", help="the token sees and changes everything")
    create.add_argument("--description", default="")
    create.set_defaults(run=_cmd_token_create)
    return parser


def main(argv: list[str] | None = None) -> None:
    options = build_parser().parse_args(argv)
    settings = Settings()
    _configure_logging(settings)
    if getattr(options, "concurrency", 1) < 1:
        print("--concurrency must be at least 1", file=sys.stderr)
        sys.exit(2)
    sys.exit(options.run(settings, options))
