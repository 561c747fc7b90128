"""The local cloud's console: its state machine, executions, jobs and logs, in a page
served by the local API gateway under /console/ (never deployed)."""
