"""The studio's HTTP API: uploads, job status, reprocessing, client share links.

Powertools' APIGatewayHttpResolver serves it (`app.py`: the routers of `jobs.py` and
`shares.py`, one table of how each failure is answered); `tasks/api.py` is its Lambda
handler, and the embedded local cloud serves the same function behind a local gateway.
Bodies and answers are the pydantic models of `models.py`; `openapi.yaml` is generated
from the app (`python -m darkroom.api.openapi`), and the deployed and local routes, with
their authorization, follow it (`routes.py`).
"""
