"""S3 ObjectCreated / ObjectRemoved on the input bucket -> thumbnails in the output bucket."""

import warnings
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom.aws.image_buckets import ImageBuckets
from darkroom.observability import configure, logger, metrics
from darkroom.settings import ThumbnailSettings, load
from darkroom.thumbnail_service import ThumbnailService
from darkroom.tracing import tracer

# A failed or skipped file has no metric in the shared EMF document (failures go out in
# their own, with a reason dimension); Powertools would warn about that on every one.
warnings.filterwarnings("ignore", message="No application metrics to publish")

settings = load(ThumbnailSettings)
configure(settings)
service = ThumbnailService(
    ImageBuckets(),
    output_bucket=settings.output_bucket,
    sizes=settings.thumbnail_sizes,
    max_image_pixels=settings.max_image_pixels,
)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The correlation id is each record's object key, set as the record is handled.
    return {"results": [outcome.as_dict() for outcome in service.handle(event)]}
