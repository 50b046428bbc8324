"""`make bench`: run every figure against fresh embedded servers and print one JSON object.

Each Kadence figure is measured beside its baseline in the same process and reported as
a ratio; absolute numbers depend on the machine. ``--quick`` runs small sizes (for CI).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "operator"), str(Path(__file__).resolve().parent.parent)]

from bench import figures_bullmq, figures_cron, figures_http, figures_operator, figures_queue  # noqa: E402
from bench.harness import BenchEnv, bench_env  # noqa: E402

SIZES = {
    "full": {
        "http": 2000,
        "single": 5000,
        "bulk": 20000,
        "processing": 5000,
        "delayed": 500,
        "memory": 50000,
        "cron_burst": 10_000,
        "cron_ticks": 500,
        "operator": 1000,
    },
    "quick": {
        "http": 200,
        "single": 300,
        "bulk": 1000,
        "processing": 300,
        "delayed": 30,
        "memory": 500,
        "cron_burst": 500,
        "cron_ticks": 30,
        "operator": 50,
    },
}


def figures(size: dict[str, int], quick: bool) -> dict[str, Callable[[BenchEnv], Any]]:
    delays = (0.5, 2.0) if quick else (1.0, 10.0)
    return {
        "schedule_single": lambda env: figures_queue.schedule_single(env, size["single"]),
        "schedule_bulk": lambda env: figures_queue.schedule_bulk(env, size["bulk"]),
        "processing": lambda env: figures_queue.processing(env, size["processing"]),
        "delayed_lateness": lambda env: figures_queue.delayed_punctuality(env, size["delayed"], *delays),
        "redis_memory": lambda env: figures_queue.redis_memory(env, size["memory"]),
        "http": lambda env: figures_http.http_schedule(env, size["http"]),
        "bullmq": lambda env: figures_bullmq.bullmq(env, size["single"], size["bulk"], size["delayed"], delays),
        "cron_burst": lambda env: figures_cron.cron_burst(env, size["cron_burst"]),
        "cron_lateness": lambda env: figures_cron.cron_lateness(env, size["cron_ticks"]),
        "operator": lambda env: figures_operator.operator_burst(env, size["operator"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated figure names")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    size = SIZES["quick" if options.quick else "full"]
    selected = figures(size, options.quick)
    wanted = [name for name in options.only.split(",") if name] or list(selected)
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "mode": "quick" if options.quick else "full",
    }
    with bench_env() as env:
        for name in wanted:
            began = time.perf_counter()
            report[name] = selected[name](env)
            report[name]["seconds"] = round(time.perf_counter() - began, 1)
            print(f"{name}: {json.dumps(report[name])}", file=sys.stderr)
    report["summary"] = summary(report)
    print(json.dumps(report, indent=2))
    return 0


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Kadence against its baselines and targets, side by side (informational: nothing asserts)."""
    out: dict[str, Any] = {}
    single, bulk, processing = report.get("schedule_single"), report.get("schedule_bulk"), report.get("processing")
    delayed, bull = report.get("delayed_lateness"), report.get("bullmq") or {}
    if single:
        out["schedule_single_vs_rq"] = single["ratio"]
        if "add_per_s" in bull:
            out["schedule_single_vs_bullmq"] = round(single["kadence_per_s"] / bull["add_per_s"], 2)
    if bulk:
        out["schedule_bulk_vs_rq"] = bulk["ratio"]
        if "add_bulk_per_s" in bull:
            out["schedule_bulk_vs_bullmq"] = round(bulk["kadence_per_s"] / bull["add_bulk_per_s"], 2)
    if processing:
        out["processing_noop_vs_rq"] = processing["noop"]["ratio"]
        if "process_per_s" in bull:
            out["processing_noop_vs_bullmq"] = round(processing["noop"]["kadence_per_s"] / bull["process_per_s"], 2)
    if delayed:
        kadence = delayed["kadence_ms"]
        out["delayed_p99_ms"] = {
            "kadence": kadence.get("p99"),
            "raw_rq": delayed["raw_rq_ms"].get("p99"),
            "bullmq": bull.get("delayed_lateness_ms", {}).get("p99"),
        }
        out["delayed_started_early"] = {
            "kadence": kadence.get("early"),
            "raw_rq": delayed["raw_rq_ms"].get("early"),
            "bullmq": bull.get("delayed_lateness_ms", {}).get("early"),
        }
    out.update(_cron_and_operator_summary(report))
    return out


def _cron_and_operator_summary(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    burst, lateness, operator = report.get("cron_burst"), report.get("cron_lateness"), report.get("operator")
    if burst:
        out["cron_burst_s"] = {
            "schedules": burst["schedules"],
            "target": burst["target_s"],
            **{key: run["seconds_to_all_queued"] for key, run in burst.items() if key.startswith("dispatchers_")},
            "duplicates": sum(run["duplicates"] for key, run in burst.items() if key.startswith("dispatchers_")),
        }
    if lateness:
        three, one, rq_cron = (
            lateness["kadence_3_dispatchers_ms"],
            lateness["kadence_1_dispatcher_ms"],
            lateness["rq_cron_ms"],
        )
        out["cron_tick_p99_ms"] = {
            "target": lateness["target_p99_ms"],
            "kadence_3_dispatchers": three.get("p99"),
            "kadence_1_dispatcher": one.get("p99"),
            "rq_cron_1_process": rq_cron.get("p99"),
            "kadence_3_vs_rq_cron": round(three["p99"] / rq_cron["p99"], 2) if three and rq_cron else None,
        }
        out["cron_ticks_early"] = three.get("early", 0) + one.get("early", 0)
    if operator:
        out["operator"] = {
            "tasks": operator["tasks"],
            "all_completed": operator["all_completed"],
            "seconds": operator["seconds_measured"],
            "completed_per_s": operator["completed_per_s"],
            "rss_increase_mb": operator["rss_peak_increase_mb"],
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
