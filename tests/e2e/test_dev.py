"""``kadence dev`` as a user runs it: start, schedule a webhook over HTTP, stop, restart."""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kadence.embedded import free_port
from tests.support import WebhookReceiver, children_of, wait_for

SECRET = "e2e-webhook-secret"


@dataclass
class DevProcess:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    url: str
    token: str
    env_file: Path


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_dev(data_dir: Path, log: Path) -> DevProcess:
    port = free_port()
    env = {**os.environ, "KADENCE_WEBHOOK_SECRET": SECRET, "KADENCE_LOG_LEVEL": "INFO"}
    for key in ("KADENCE_DATABASE_URL", "KADENCE_REDIS_URL", "KADENCE_MASTER_TOKEN"):
        env.pop(key, None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from kadence.cli import main; main()", "dev", "--data-dir", str(data_dir),
         "--port", str(port), "--concurrency", "2"],
        stdout=subprocess.PIPE, stderr=log.open("a"), text=True, env=env, start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    printed: list[str] = []
    while not any(line.startswith("Press Ctrl-C") for line in printed):
        try:
            printed.append(lines.get(timeout=90))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"kadence dev printed no banner; log:\n{log.read_text()[-3000:]}") from None
    url = next(line for line in printed if line.startswith("Kadence is running:")).split()[3]
    token = next(line for line in printed if line.startswith("Master token:")).split()[2]
    return DevProcess(process, lines, url, token, data_dir / "kadence.env")


def stop_dev(dev: DevProcess) -> tuple[int, list[int]]:
    """SIGTERM, wait; return the exit code and the descendants that outlived it."""
    descendants = children_of(dev.process.pid)
    dev.process.send_signal(signal.SIGTERM)
    code = dev.process.wait(60)
    # dev waits for every child (and PostgreSQL for its own) before it exits.
    return code, [pid for pid in descendants if _alive(pid)]


@pytest.fixture
def dev_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "kadence-data"


def test_kadence_dev_runs_delivers_stops_cleanly_and_keeps_its_data(
    dev_dir: Path, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    log = tmp_path / "dev.log"
    dev = start_dev(dev_dir, log)
    try:
        env = dev.env_file.read_text()
        assert oct(dev.env_file.stat().st_mode & 0o777) == "0o600"
        for key in ("KADENCE_DATABASE_URL=", "KADENCE_MIGRATION_DATABASE_URL=", "KADENCE_REDIS_URL=",
                    f"KADENCE_MASTER_TOKEN={dev.token}"):
            assert key in env

        roles = " ".join(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
                         for pid in children_of(dev.process.pid) if _alive(pid))
        assert "main() api" in roles and "main() worker --concurrency 2" in roles

        with httpx.Client(base_url=dev.url, headers={"Authorization": f"Bearer {dev.token}"}, timeout=30) as api:
            answer = api.post("/api/scheduler/schedule", json={
                "taskId": "e2e", "userId": 1, "taskGoal": "deliver", "args": {"url": receiver.url},
            })
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["jobId"]
            delivery = wait_for(lambda: receiver.for_job(job_id), timeout=30, message="the webhook")[0]
            expected = "sha256=" + hmac.new(SECRET.encode(), delivery.raw, hashlib.sha256).hexdigest()
            assert delivery.headers["X-Kadence-Signature"] == expected
            wait_for(lambda: api.get(f"/api/scheduler/job/{job_id}").json()["state"] == "completed",
                     timeout=30, message="the job to complete")
    finally:
        code, survivors = stop_dev(dev)
    assert code == 0, log.read_text()[-3000:]
    assert survivors == [], f"processes left behind: {survivors}"

    again = start_dev(dev_dir, log)
    try:
        assert again.token == dev.token
        with httpx.Client(base_url=again.url, headers={"Authorization": f"Bearer {again.token}"}) as api:
            job = api.get(f"/api/scheduler/job/{job_id}")
            assert job.status_code == 200 and job.json()["state"] == "completed"
    finally:
        code, survivors = stop_dev(again)
    assert code == 0 and survivors == []
