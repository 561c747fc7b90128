"""The studio's HTTP API: an API Gateway HTTP API event (payload 2.0) -> the API core."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom.api.app import handle
from darkroom.api.service import ApiService
from darkroom.aws.executions import Executions
from darkroom.aws.favourites import FavouriteStore
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner, presigning_client
from darkroom.aws.secrets import secret_bytes, secret_value
from darkroom.aws.shares import ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.observability import configure, logger
from darkroom.settings import ApiSettings, load
from darkroom.tracing import tracer

settings = load(ApiSettings)
configure(settings)
service = ApiService(
    settings,
    jobs=JobStore(settings.jobs_table, events=JobEvents()),
    uploads=UploadStore(settings.uploads_table),
    shares=ShareStore(settings.shares_table),
    favourites=FavouriteStore(settings.jobs_table),
    objects=Objects(),
    presigner=Presigner(presigning_client(settings.s3_addressing_style)),
    executions=Executions(settings.state_machine_arn),
    # Read once: a function that cannot read it fails its start rather than serving
    # share links to anyone who finds the execute-api address.
    origin_verify=(
        secret_value(settings.origin_verify_secret_arn) if settings.origin_verify_secret_arn else ""
    ),
    # Read on the first password-protected share, then kept for the container's life: an
    # API that cannot reach Secrets Manager still serves everything else.
    share_cookie_key=lambda: secret_bytes(settings.share_cookie_secret_arn),
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
# Responses carry presigned URLs: they stay out of the traces.
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context, service)
