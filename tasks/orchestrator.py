"""S3 `raw/<job_id>/manifest.json` created -> start the job's execution (once)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.executions import Executions
from darkroom.observability import configure, logger
from darkroom.settings import OrchestratorSettings, load
from darkroom.tracing import tracer

settings = load(OrchestratorSettings)
configure(settings)
executions = Executions(settings.state_machine_arn)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job_ids = pipeline.manifest_job_ids(event, settings.raw_bucket)
    started = pipeline.start_jobs(job_ids, executions)
    return {
        "executions": [
            {"job_id": s.job_id, "execution_arn": s.execution_arn, "started": s.started_now}
            for s in started
        ]
    }
