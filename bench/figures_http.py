"""POST /api/scheduler/schedule: requests per second and latency at several concurrencies."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from bench.harness import BenchEnv, kadence_command, percentiles, rate, reset, start, stop, wait_until
from kadence.embedded import free_port

TOKEN = "bench-master-token"


def _level(url: str, clients: int, requests: int) -> dict[str, Any]:
    """``requests`` schedule requests spread over ``clients`` concurrent clients."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def send(client_index: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for i in range(per_client):
                body = {"taskId": f"h-{client_index}-{i}", "userId": 1, "handler": "noop"}
                began = time.perf_counter()
                response = client.post("/api/scheduler/schedule", json=body)
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 201:
                        failures.append(response.status_code)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "requests_per_s": rate(len(latencies), elapsed),
        "latency_ms": percentiles(latencies),
        "errors": len(failures),
    }


def http_schedule(env: BenchEnv, requests_per_level: int, levels: tuple[int, ...] = (1, 10, 50)) -> dict[str, Any]:
    """``kadence api`` (one uvicorn process) under 1, 10 and 50 concurrent clients."""
    reset(env)
    port = free_port()
    api = start(kadence_command("api", "--port", str(port)), env.env() | {"KADENCE_MASTER_TOKEN": TOKEN})
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, interval=0.1)
    try:
        return {f"clients_{clients}": _level(url, clients, requests_per_level) for clients in levels}
    finally:
        stop(api)
