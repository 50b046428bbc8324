"""The HTTP API sidecar: FastAPI routes in front of :class:`kadence.core.SchedulerCore`."""
