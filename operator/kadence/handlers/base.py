"""The input every handler receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class HandlerError(Exception):
    """A task attempt failed for a reason worth showing to its owner (it is retried)."""


@dataclass(frozen=True, slots=True)
class TaskContext:
    job_id: str
    task_id: str
    user_id: int
    task_goal: str
    priority: str
    handler: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    scheduled_for: str | None
    schedule_id: int | None

    def webhook_body(self) -> dict[str, Any]:
        """The JSON a webhook receives (camelCase, as the HTTP API speaks)."""
        return {
            "jobId": self.job_id,
            "taskId": self.task_id,
            "userId": self.user_id,
            "taskGoal": self.task_goal,
            "attempt": self.attempt,
            "maxAttempts": self.max_attempts,
            "priority": self.priority,
            "scheduledFor": self.scheduled_for,
            "scheduleId": self.schedule_id,
            "args": {key: value for key, value in self.args.items() if key not in ("url", "headers")},
        }
