"""Kadence: a task scheduler for Kubernetes (one-off, delayed and cron tasks on RQ workers)."""

__version__ = "0.1.0"
