"""The BullMQ baseline (Node.js), run against the same Redis when Node is on the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.harness import BenchEnv

HERE = Path(__file__).resolve().parent / "bullmq"


def bullmq(
    env: BenchEnv, jobs: int, bulk_jobs: int, delayed_jobs: int, delays_s: tuple[float, float]
) -> dict[str, Any]:
    """add / addBulk / processing at concurrency 5 / delayed lateness, or a note why it was skipped."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return {"skipped": "Node.js and npm are not installed"}
    if not (HERE / "node_modules" / "bullmq").exists():
        install = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, capture_output=True, text=True
        )
        if install.returncode != 0:
            return {"skipped": f"npm install failed: {install.stderr.strip()[-300:]}"}
    env.redis(2).flushdb()
    run = subprocess.run(
        [node, "bench.mjs", env.servers.redis.url(2), str(jobs), str(bulk_jobs), str(delayed_jobs),
         str(int(delays_s[0] * 1000)), str(int(delays_s[1] * 1000))],
        cwd=HERE, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if run.returncode != 0:
        return {"skipped": f"the BullMQ run failed: {run.stderr.strip()[-300:]}"}
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))
