"""`make drills`: break things on purpose and count what was lost or doubled (all must be 0).

Each drill runs against fresh embedded servers and prints its counts; ``--short`` runs
fewer rounds (the test suite runs it that way so the drills cannot rot).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "operator"), str(Path(__file__).resolve().parent.parent)]

import httpx  # noqa: E402

from bench.figures_cron import queued_ids, start_dispatchers, tick_rows  # noqa: E402
from bench.harness import BenchEnv, bench_env, job_counts, kadence_command, start, stop, wait_until  # noqa: E402
from kadence.core import TaskInput  # noqa: E402
from kadence.domain.cron import fire_times_between, parse_cron  # noqa: E402
from kadence.domain.models import UserContext  # noqa: E402
from kadence.domain.ticks import tick_job_id  # noqa: E402
from kadence.embedded import free_port  # noqa: E402
from tests.support import children_of  # noqa: E402

USER = UserContext(user_id=1)


def _sleepy(i: int, seconds: float, attempts: int) -> TaskInput:
    return TaskInput(
        task_id=f"drill-{i}",
        user_id=1,
        handler="python",
        max_attempts=attempts,
        args={"callable": "kadence.handlers.examples:sleep", "seconds": seconds},
    )


def _outcome(env: BenchEnv, accepted: int) -> dict[str, int]:
    counts = job_counts(env)
    final = counts.get("completed", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    return {
        "accepted": accepted,
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "stuck_active": counts.get("active", 0),
        "lost": accepted - final,
    }


def worker_kill(env: BenchEnv, rounds: int) -> dict[str, Any]:
    """SIGKILL worker processes mid-job: every job ends completed or failed, none stuck or lost."""
    jobs = rounds * 4
    for i in range(jobs):
        env.core.schedule_task(USER, _sleepy(i, 0.3, attempts=rounds + 2))
    pool = start(kadence_command("worker", "--concurrency", "3"), env.env())
    rng = random.Random(11)
    kills = 0
    try:
        while kills < rounds:
            time.sleep(rng.uniform(0.3, 0.9))
            workers = children_of(pool.pid)
            if workers:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills += 1
        wait_until(lambda: sum(_outcome(env, jobs)[k] for k in ("completed", "failed")) >= jobs, timeout=120)
    finally:
        stop(pool)
    return {"kills": kills, **_outcome(env, jobs)}


def redis_restart(env: BenchEnv, rounds: int) -> dict[str, Any]:
    """Restart Redis (append-only file on) while jobs are queued and delayed: every job still runs."""
    env.core.pause(UserContext.system())
    waiting = rounds * 10
    delayed = rounds * 10
    for i in range(waiting):
        env.core.schedule_task(USER, TaskInput(task_id=f"w-{i}", user_id=1, handler="noop"))
    for i in range(delayed):
        env.core.schedule_delayed_task(USER, TaskInput(task_id=f"d-{i}", user_id=1, handler="noop"), delay_ms=2000)
    pool = start(kadence_command("worker", "--concurrency", "2"), env.env())
    try:
        for _ in range(rounds):
            env.servers.redis.stop()
            time.sleep(0.5)
            env.servers.redis.start()
        env.core.resume(UserContext.system())
        wait_until(lambda: job_counts(env).get("completed", 0) >= waiting + delayed, timeout=90)
    finally:
        stop(pool)
    return {"restarts": rounds, **_outcome(env, waiting + delayed)}


class _ApiProcess:
    """`kadence api` on a free port, with the master token set."""

    def __init__(self, env: BenchEnv) -> None:
        self.port = free_port()
        self.token = "drill-master-token"
        variables = env.env() | {"KADENCE_MASTER_TOKEN": self.token, "KADENCE_DB_TIMEOUT_SECONDS": "1"}
        self.process = start(kadence_command("api", "--port", str(self.port)), variables)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self._ready, timeout=30, interval=0.1)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def stop(self) -> None:
        stop(self.process)


def postgres_restart(env: BenchEnv, rounds: int) -> dict[str, Any]:
    """Restart PostgreSQL under load: the API answers 503 while it is down, no accepted job is lost."""
    api = _ApiProcess(env)
    pool = start(kadence_command("worker", "--concurrency", "2"), env.env())
    accepted: list[str] = []
    statuses: dict[int, int] = {}
    done = threading.Event()

    def load() -> None:
        with api.client() as client:
            i = 0
            while not done.is_set():
                i += 1
                try:
                    response = client.post(
                        "/api/scheduler/schedule", json={"taskId": f"pg-{i}", "userId": 1, "handler": "noop"}
                    )
                except httpx.HTTPError:
                    statuses[0] = statuses.get(0, 0) + 1
                    continue
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 201:
                    accepted.append(response.json()["jobId"])
                time.sleep(0.01)

    sender = threading.Thread(target=load)
    sender.start()
    try:
        for _ in range(rounds):
            time.sleep(1.0)
            env.servers.postgres.stop()
            time.sleep(3.0)
            env.servers.postgres.start()
        time.sleep(1.0)
        done.set()
        sender.join()
        wait_until(lambda: job_counts(env).get("completed", 0) >= len(set(accepted)), timeout=90)
    finally:
        done.set()
        api.stop()
        stop(pool)
    server_errors = sum(count for status, count in statuses.items() if status >= 500 and status != 503)
    return {
        "restarts": rounds,
        "responses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors_other_than_503": server_errors,
        **_outcome(env, len(set(accepted))),
    }


def _mixed_request(rng: random.Random, i: int, known: list[str]) -> tuple[str, str, Any]:
    roll = rng.random()
    if roll < 0.02:
        return rng.choice(
            [
                ("POST", "/api/scheduler/schedule", b"{not json"),
                ("POST", "/api/scheduler/schedule", {"taskId": 5, "userId": "x"}),
                ("POST", "/api/scheduler/schedule-delayed", {"taskId": "t", "userId": 1, "delay": -5}),
                (
                    "POST",
                    "/api/scheduler/schedule-recurring",
                    {"name": "n", "taskGoal": "g", "userId": 1, "cronExpression": "99 * * * *"},
                ),
                ("GET", "/api/scheduler/job/%00", None),
            ]
        )
    if roll < 0.62:
        return "POST", "/api/scheduler/schedule", {"taskId": f"m-{i}", "userId": 1, "handler": "noop"}
    if roll < 0.77:
        body = {"taskId": f"d-{i}", "userId": 1, "handler": "noop", "delay": rng.randint(0, 2000)}
        return "POST", "/api/scheduler/schedule-delayed", body
    if roll < 0.92 and known:
        return "GET", f"/api/scheduler/job/{rng.choice(known)}", None
    if roll < 0.97:
        return "GET", "/api/scheduler/stats", None
    return "GET", "/api/scheduler/cron/1", None


def api_mixed(env: BenchEnv, requests: int) -> dict[str, Any]:
    """Mixed API requests, 2% malformed: no 5xx, and every accepted job runs."""
    api = _ApiProcess(env)
    pool = start(kadence_command("worker", "--concurrency", "3"), env.env())
    rng = random.Random(5)
    accepted: list[str] = []
    statuses: dict[int, int] = {}
    try:
        with api.client() as client:
            for i in range(requests):
                method, path, body = _mixed_request(rng, i, accepted)
                if isinstance(body, bytes):
                    response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
                else:
                    response = client.request(method, path, json=body)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 201 and path.startswith("/api/scheduler/schedule"):
                    accepted.append(response.json()["jobId"])
        wait_until(lambda: job_counts(env).get("completed", 0) >= len(accepted), timeout=120, interval=0.2)
    finally:
        api.stop()
        stop(pool)
    return {
        "requests": requests,
        "responses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(count for status, count in statuses.items() if status >= 500),
        **_outcome(env, len(accepted)),
    }


DRILL_CRONS = ["* * * * * *"] * 4 + ["*/2 * * * * *"]


def _kill_moment(rng: random.Random) -> None:
    """Wait for the next kill: half the time a random moment, half just after a whole second.

    Every tick of these schedules falls on a whole second, so a replica killed in the first
    few milliseconds after one is often in the middle of a pass: rows locked, the tick's
    transaction open or just committed, its jobs being queued.
    """
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0.2, 1.2))
        return
    now = time.time()
    time.sleep(math.ceil(now) - now + rng.uniform(0.0, 0.012))


def dispatcher_kill(env: BenchEnv, rounds: int) -> dict[str, Any]:
    """SIGKILL one of three dispatcher replicas at random, ``rounds`` times: no tick doubled, none lost.

    The schedules have no ``startingDeadlineSeconds``, and two replicas are always up, so
    every tick between the first and the last must have exactly one job (a tick counted in
    the schedule's ``missed_ticks`` would be excused; none should be). No worker runs while
    the replicas are killed, so a tick queued twice would be in its Redis list twice; a
    worker then runs every recorded tick to the end.
    """
    rng = random.Random(23)
    replicas = start_dispatchers(env, 3)
    schedules = [
        env.core.schedule_recurring_task(
            USER, TaskInput(task_id=f"tick-{n}", user_id=1, handler="noop"), name=f"drill-{n}", cron_expression=cron
        )
        for n, cron in enumerate(DRILL_CRONS)
    ]
    ids = [schedule.id for schedule in schedules]
    kills = 0
    try:
        time.sleep(1.0)
        while kills < rounds:
            _kill_moment(rng)
            victim = rng.randrange(len(replicas))
            os.kill(replicas[victim].pid, signal.SIGKILL)
            replicas[victim].wait()
            kills += 1
            replicas[victim] = start(kadence_command("dispatcher"), env.env())
        time.sleep(1.5)
        for schedule_id in ids:
            env.core.disable_schedule(USER, schedule_id)
        # A tick committed by a killed replica but not yet queued is queued by the others'
        # recovery sweep (every 5 s, for jobs older than 1 s).
        redis = env.redis(0)
        wait_until(lambda: set(queued_ids(redis)) >= {row["id"] for row in tick_rows(env, ids)}, timeout=20)
    finally:
        for replica in replicas:
            stop(replica)
    ticks = _tick_audit(env, schedules)
    pool = start(kadence_command("worker", "--concurrency", "3"), env.env())
    try:
        wait_until(lambda: job_counts(env).get("completed", 0) >= ticks["ticks_fired"], timeout=60, interval=0.2)
    finally:
        stop(pool)
    outcome = _outcome(env, ticks["ticks_fired"])
    return {
        "kills": kills,
        **outcome,
        "lost": outcome["lost"] + ticks["lost_ticks"],
        **ticks,
    }


def _tick_audit(env: BenchEnv, schedules: list[Any]) -> dict[str, int]:
    """Compare the recorded and queued tick jobs with the ticks each schedule owed."""
    queued = queued_ids(env.redis(0))
    rows = tick_rows(env, [schedule.id for schedule in schedules])
    audit = {
        "ticks_expected": 0,
        "ticks_fired": 0,
        "missed_counted": 0,
        "lost_ticks": 0,
        "unexpected_ticks": 0,
        "duplicates": 0,
        "not_queued": 0,
    }
    for schedule in schedules:
        mine = [row for row in rows if row["schedule_id"] == schedule.id]
        fired = [row["tick_at"] for row in mine]
        missed = env.core.get_schedule(USER, schedule.id).missed_ticks
        if not fired:
            continue
        cron = parse_cron(schedule.cron_expression, schedule.timezone)
        expected = {schedule.next_run, *fire_times_between(cron, schedule.next_run, max(fired))}
        audit["ticks_expected"] += len(expected)
        audit["ticks_fired"] += len(set(fired))
        audit["missed_counted"] += missed
        audit["lost_ticks"] += len(expected - set(fired)) - missed
        audit["unexpected_ticks"] += len(set(fired) - expected)
        audit["duplicates"] += len(fired) - len(set(fired))
        audit["duplicates"] += sum(1 for row in mine if row["id"] != tick_job_id(schedule.id, row["tick_at"]))
        audit["duplicates"] += sum(queued[row["id"]] - 1 for row in mine if queued[row["id"]] > 1)
        audit["not_queued"] += sum(1 for row in mine if queued[row["id"]] == 0)
    return audit


ROUNDS = {
    "full": {"worker_kill": 20, "dispatcher_kill": 20, "redis_restart": 3, "postgres_restart": 3, "api_mixed": 10_000},
    "short": {"worker_kill": 3, "dispatcher_kill": 3, "redis_restart": 1, "postgres_restart": 1, "api_mixed": 400},
}

DRILLS: dict[str, Callable[[BenchEnv, int], dict[str, Any]]] = {
    "worker_kill": worker_kill,
    "dispatcher_kill": dispatcher_kill,
    "redis_restart": redis_restart,
    "postgres_restart": postgres_restart,
    "api_mixed": api_mixed,
}


def run(names: list[str], short: bool) -> dict[str, Any]:
    rounds = ROUNDS["short" if short else "full"]
    report: dict[str, Any] = {"mode": "short" if short else "full"}
    for name in names:
        with bench_env(persistent=True) as env:  # a fresh world for each drill
            began = time.perf_counter()
            report[name] = DRILLS[name](env, rounds[name])
            report[name]["seconds"] = round(time.perf_counter() - began, 1)
            print(f"{name}: {json.dumps(report[name])}", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="fewer rounds")
    parser.add_argument("--only", default="", help="comma-separated drill names")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = [name for name in options.only.split(",") if name] or list(DRILLS)
    print(json.dumps(run(names, options.short), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
