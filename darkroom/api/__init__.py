"""The studio's HTTP API: uploads, job status, reprocessing, client share links.

The core takes API Gateway HTTP API events (payload format 2.0) and returns proxy
results; `tasks/api.py` is its Lambda handler, and the embedded local cloud serves the
same function behind a local gateway. Routes are in `routes.py`, documented by
`openapi.yaml` beside it.
"""
