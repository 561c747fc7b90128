"""Errors whose class names are contracts.

A Lambda's uncaught exception surfaces in Step Functions under its class name
(`errorType`), so these names are what the state machine's Retry and Catch match.
"""

from __future__ import annotations


class DarkroomError(Exception):
    """Base for errors darkroom raises on purpose."""


class NoIdleWorker(DarkroomError):
    """Every pool instance is leased or not ready; the state machine retries with backoff."""


class TransientError(DarkroomError):
    """A throttle or a passing fault of a dependency; the state machine retries."""


class InvalidJob(DarkroomError):
    """The job's input or contents cannot be processed (no files, bad recipe...)."""


class JobNotFound(DarkroomError):
    """No job record for that id."""


class JobBusy(DarkroomError):
    """The job is not in a state that allows this (e.g. reprocessing while it runs)."""


class StaleExecution(DarkroomError):
    """An execution acted on a job that a newer execution now owns."""


class LeaseLost(DarkroomError):
    """The worker lease no longer belongs to this job/execution."""


class AllFilesFailed(DarkroomError):
    """A run developed none of its files: the job fails rather than delivering nothing."""
