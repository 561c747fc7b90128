"""One observability module: Powertools JSON logs (correlation id) and EMF metrics."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "darkroom"
NAMESPACE = "Darkroom"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
