"""Prometheus metrics of one API app, in a registry of its own (tests build many apps)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kadence.domain.errors import KadenceError
from kadence.domain.models import Priority, QueueStats

log = logging.getLogger(__name__)

_STATES = ("waiting", "active", "completed", "failed", "delayed", "paused")


class QueueDepthCollector(Collector):
    """Reads the queue statistics at scrape time; a scrape while Redis is down omits them."""

    def __init__(self, read_stats: Callable[[], QueueStats | None]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = self._read_stats()
        except (KadenceError, OSError) as exc:
            log.warning("queue statistics unavailable for metrics error=%s", exc)
            return
        if stats is None:
            return
        depth = GaugeMetricFamily("kadence_queue_jobs", "Jobs in the queues by priority and state.",
                                  labels=["priority", "state"])
        for priority in Priority:
            counts = stats.by_priority.get(priority, {})
            for state in _STATES:
                depth.add_metric([priority.value, state], counts.get(state, 0))
        yield depth
        yield GaugeMetricFamily("kadence_queue_paused", "1 while the scheduler is paused.",
                                value=1 if stats.is_paused else 0)


class ApiMetrics:
    """The API's own series: requests, latency, jobs scheduled; queue depth read on scrape."""

    def __init__(self, read_stats: Callable[[], QueueStats | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kadence_api_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "kadence_api_request_duration_seconds", "HTTP request latency by route and method.",
            ["route", "method"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.jobs_scheduled = Counter(
            "kadence_api_jobs_scheduled", "Jobs scheduled through the API by priority.",
            ["priority"], registry=self.registry,
        )
        self.registry.register(QueueDepthCollector(read_stats))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def job_scheduled(self, priority: Priority, count: int = 1) -> None:
        self.jobs_scheduled.labels(priority.value).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
