"""The program that runs on a pool instance: find its job, heartbeat, develop, report."""
