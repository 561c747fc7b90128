"""Why a worker gives up a task part-way (its own module: the job loop and packaging both
raise it, and packaging is imported by the job loop)."""


class Interrupted(Exception):
    """The worker was told to stop, or the task stopped waiting for it."""
