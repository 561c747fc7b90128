"""Names shared by the CDK app, the embedded local cloud, the runtimes and the tests.

One place, so a renamed resource cannot drift between AWS and the laptop. The env keys
each runtime reads are its settings model's fields (darkroom.settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PROJECT: Final = "darkroom"

# Logical resource names. In AWS, CDK lets CloudFormation name buckets and tables;
# locally they get these names verbatim. Either way runtimes learn them from settings.
INPUT_BUCKET: Final = "darkroom-input"
OUTPUT_BUCKET: Final = "darkroom-output"
RAW_BUCKET: Final = "darkroom-raw"
PROCESSED_BUCKET: Final = "darkroom-processed"
JOBS_TABLE: Final = "darkroom-jobs"
WORKERS_TABLE: Final = "darkroom-workers"
# The API's own tables: jobs created but not yet submitted, and client share links.
UPLOADS_TABLE: Final = "darkroom-uploads"
SHARES_TABLE: Final = "darkroom-shares"
# The secret that signs password-protected shares' unlock cookies (Secrets Manager; the
# CDK app names it per stack, the local cloud keeps its value under its state directory).
SHARE_COOKIE_SECRET: Final = "darkroom-share-cookie-key"

# DynamoDB keys. The jobs table is keyed (job_id, sk): the job item has sk JOB_ITEM and
# the items that belong to one job (FILE#<name>, RUN#<run_id>, SHARD#<n>) sit beside it.
JOB_ID: Final = "job_id"
SORT_KEY: Final = "sk"
JOB_ITEM: Final = "JOB"
FILE_ITEM_PREFIX: Final = "FILE#"
# A shard's first and last file names in the current run: its worker reads that range of
# file items, not the whole job's.
SHARD_ITEM_PREFIX: Final = "SHARD#"
# A client's favourite through a proofing share: FAV#<share_id>#<file name>. Its own
# item beside the job's, never the file's item, so a client's write cannot touch what a
# run records or delivers.
FAVOURITE_ITEM_PREFIX: Final = "FAV#"
# The uploads table is keyed the same way: an upload item, and one FILE#<name> per file.
UPLOAD_ITEM: Final = "UPLOAD"
INSTANCE_ID: Final = "instance_id"
SHARE_ID: Final = "share_id"
# Epoch seconds after which DynamoDB may delete an item (uploads and shares).
TTL_ATTRIBUTE: Final = "expires_ttl"
# Listing newest first without a scan: a sparse index over the items that carry ENTITY
# (only a job item, an upload), sorted by CREATED_KEY "<created_at>#<job_id>", which is
# set once when the item is created and never changes, so a cursor stays put.
NEWEST_INDEX: Final = "newest"
ENTITY: Final = "entity"
CREATED_KEY: Final = "created_key"
JOB_ENTITY: Final = "JOB"
UPLOAD_ENTITY: Final = "UPLOAD"
# A job's shares, found when the job is erased (a share is otherwise read by its id).
JOB_SHARES_INDEX: Final = "job_shares"
# What a share counts, atomically per share item (no personal data: a number each).
SHARE_VIEWS: Final = "views"
SHARE_DOWNLOADS: Final = "downloads"

# The studio on its clients' pages: one name each for the API's settings field, the CDK
# context key and the local cloud's option, so a deploy and a laptop spell them alike.
STUDIO_NAME: Final = "studio_name"
STUDIO_LOGO_URL: Final = "studio_logo_url"
STUDIO_ACCENT_COLOUR: Final = "studio_accent_colour"
STUDIO_SETTINGS: Final = (STUDIO_NAME, STUDIO_LOGO_URL, STUDIO_ACCENT_COLOUR)

# Delivery (issue 18). Every status change of a job is an EventBridge event on the
# default bus; one rule sends them to the notify function, which emails and calls the
# studio's webhook. A NOTICE#<run>#<kind> item beside the job records each message of a
# run once (idempotent on the run id).
JOB_EVENT_SOURCE: Final = "darkroom"
JOB_EVENT_DETAIL_TYPE: Final = "Job status changed"
JOB_EVENTS_RULE: Final = "darkroom-job-events"
NOTICE_ITEM_PREFIX: Final = "NOTICE#"
SES_CONFIGURATION_SET: Final = "darkroom-delivery"
WEBHOOK_SECRET: Final = "darkroom/webhook-signing"
WEBHOOK_SIGNATURE_HEADER: Final = "X-Darkroom-Signature"
WEBHOOK_TIMESTAMP_HEADER: Final = "X-Darkroom-Timestamp"


def job_events_pattern() -> dict[str, list[str]]:
    """The rule that feeds the notify function: every status change of a job."""
    return {"source": [JOB_EVENT_SOURCE], "detail-type": [JOB_EVENT_DETAIL_TYPE]}


# What became of a message SES accepted (issue 18): the configuration set sends its
# bounces, complaints and rejects to the default bus as `aws.ses` events, and a second
# rule sends those to the same notify function. Each message carries these SES tags
# (values encoded by darkroom.notify.tag_value), so a later event names its job.
SES_EVENT_SOURCE: Final = "aws.ses"
SES_FEEDBACK_DETAIL_TYPES: Final = ("Email Bounced", "Email Complaint Received", "Email Rejected")
SES_FEEDBACK_RULE: Final = "darkroom-mail-feedback"
SES_FEEDBACK_DESTINATION: Final = "darkroom-mail-feedback"
MAIL_TAG_JOB: Final = "darkroom-job"
MAIL_TAG_RUN: Final = "darkroom-run"
MAIL_TAG_KIND: Final = "darkroom-kind"


def mail_feedback_pattern() -> dict[str, list[str]]:
    """The rule that feeds the notify function what SES later says of a message."""
    return {"source": [SES_EVENT_SOURCE], "detail-type": list(SES_FEEDBACK_DETAIL_TYPES)}


# The deploy settings (CDK context keys, the local cloud's options).
SENDER_EMAIL: Final = "sender_email"
PHOTOGRAPHER_EMAIL: Final = "photographer_email"
WEBHOOK_URL: Final = "webhook_url"


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSchema:
    """A table's keys and index, as CDK declares them and the local cloud creates them.

    Every key attribute is a string."""

    name: str
    partition_key: str
    sort_key: str | None = None
    index: Index | None = None
    ttl: str | None = None


_NEWEST = Index(NEWEST_INDEX, ENTITY, CREATED_KEY)
JOBS_SCHEMA: Final = TableSchema(JOBS_TABLE, JOB_ID, SORT_KEY, index=_NEWEST)
WORKERS_SCHEMA: Final = TableSchema(WORKERS_TABLE, INSTANCE_ID)
UPLOADS_SCHEMA: Final = TableSchema(
    UPLOADS_TABLE, JOB_ID, SORT_KEY, index=_NEWEST, ttl=TTL_ATTRIBUTE
)
SHARES_SCHEMA: Final = TableSchema(
    SHARES_TABLE, SHARE_ID, index=Index(JOB_SHARES_INDEX, JOB_ID, SHARE_ID), ttl=TTL_ATTRIBUTE
)
TABLES: Final = (JOBS_SCHEMA, WORKERS_SCHEMA, UPLOADS_SCHEMA, SHARES_SCHEMA)
# The stack every name below is derived from when none is given: the CDK app's default
# `stack_name`, and the local cloud's only stack. Its functions are named as written in
# Function (darkroom-register-job, ...); another stack's start with its own name instead.
DEFAULT_STACK: Final = PROJECT
# Lambda's limit on a function name, which the longest of ours must meet.
FUNCTION_NAME_MAX: Final = 64


def in_stack(name: str, stack: str = DEFAULT_STACK) -> str:
    """A name that AWS makes unique per region (a function, the state machine, a log
    group), as a stack deploys it: darkroom-register-job in stack studio-b is
    studio-b-register-job, so two stacks in one region do not collide."""
    return stack + name.removeprefix(PROJECT)


def api_name(stack: str = DEFAULT_STACK) -> str:
    """The HTTP API (API Gateway HTTP API in AWS, a local gateway in the embedded cloud)."""
    return in_stack("darkroom-api", stack)


def state_machine_name(stack: str = DEFAULT_STACK) -> str:
    return in_stack("darkroom-raw-pipeline", stack)


def state_machine_log_group(stack: str = DEFAULT_STACK) -> str:
    # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy small.
    return f"/aws/vendedlogs/states/{state_machine_name(stack)}"


def api_access_log_group(stack: str = DEFAULT_STACK) -> str:
    return f"/aws/vendedlogs/apigateway/{api_name(stack)}"


def function_log_group(function: str, stack: str = DEFAULT_STACK) -> str:
    return f"/aws/lambda/{in_stack(function, stack)}"


def worker_log_group(stack: str = DEFAULT_STACK) -> str:
    return f"/{stack}/worker"


def worker_instance_name(index: int, stack: str = DEFAULT_STACK) -> str:
    return f"{stack}-worker-{index}"


def dashboard_name(region: str, stack: str = DEFAULT_STACK) -> str:
    """Dashboards are global to the account: the region keeps two regions' apart."""
    return f"{stack}-{region}"


# The pool's instance types in order of preference (the `worker_instance_types` deploy
# option's default): instances are created as the first; StartWorker starts one as the
# next when EC2 has no capacity for the first, or does not offer it in the instance's
# zone. The same architecture and size: one AMI, one memory ceiling.
WORKER_INSTANCE_TYPES: Final = ("c7g.xlarge", "c6g.xlarge")
WORKER_POOL_TAG_KEY: Final = "darkroom:pool"
WORKER_POOL_TAG_VALUE: Final = "raw-workers"
# The cost guard's own bookkeeping tag: when it first saw an instance running unleased.
UNLEASED_SINCE_TAG: Final = "darkroom:unleased-since"
COST_GUARD_SCHEDULE_MINUTES: Final = 5
# Instances the pool scaler launched carry this tag too (from the launch template): its
# TerminateInstances is allowed on them only, never on the instances the stack declares.
WORKER_SCALED_TAG_KEY: Final = "darkroom:scaled"
WORKER_SCALED_TAG_VALUE: Final = "true"
# The pool's launch template (the local cloud's name; a stack's is in_stack of it).
WORKER_LAUNCH_TEMPLATE: Final = "darkroom-worker"
# The pool scaler looks at the queue this often (EventBridge's smallest rate).
POOL_SCALER_SCHEDULE_MINUTES: Final = 1
# Submissions the orchestrator could not start are looked for this often.
SUBMISSION_RECONCILE_SCHEDULE_MINUTES: Final = 5
# Where the orchestrator's events go once its async retries are spent (the queue's name
# on the local cloud; CloudFormation names it in AWS).
SUBMISSION_FAILURES_QUEUE: Final = "darkroom-submission-failures"
# Execution endings the ending reconciler is told of (EventBridge's status changes).
EXECUTION_STATUS_CHANGE: Final = "Step Functions Execution Status Change"
EXECUTION_ENDINGS: Final = ("FAILED", "TIMED_OUT", "ABORTED")


class Function:
    """Lambda function names (the keys of HANDLERS and of settings.FUNCTION_SETTINGS)."""

    ORCHESTRATOR: Final = "darkroom-orchestrator"
    REGISTER_JOB: Final = "darkroom-register-job"
    START_WORKER: Final = "darkroom-start-worker"
    AWAIT_WORKER: Final = "darkroom-await-worker"
    STOP_WORKER: Final = "darkroom-stop-worker"
    MARK_DONE: Final = "darkroom-mark-done"
    MARK_FAILED: Final = "darkroom-mark-failed"
    THUMBNAIL: Final = "darkroom-thumbnail"
    API: Final = "darkroom-api"
    COST_GUARD: Final = "darkroom-cost-guard"
    RECONCILE_ENDING: Final = "darkroom-reconcile-ending"
    RECONCILE_SUBMISSIONS: Final = "darkroom-reconcile-submissions"
    POOL_SCALER: Final = "darkroom-pool-scaler"
    NOTIFY: Final = "darkroom-notify"


# Handler paths ("module.function"), as the Lambda runtime resolves them.
HANDLERS: Final[dict[str, str]] = {
    Function.ORCHESTRATOR: "tasks.orchestrator.handler",
    Function.REGISTER_JOB: "tasks.register_job.handler",
    Function.START_WORKER: "tasks.start_worker.handler",
    Function.AWAIT_WORKER: "tasks.await_worker.handler",
    Function.STOP_WORKER: "tasks.stop_worker.handler",
    Function.MARK_DONE: "tasks.mark_done.handler",
    Function.MARK_FAILED: "tasks.mark_failed.handler",
    Function.THUMBNAIL: "tasks.thumbnail.handler",
    Function.API: "tasks.api.handler",
    Function.COST_GUARD: "tasks.cost_guard.handler",
    Function.RECONCILE_ENDING: "tasks.reconcile_ending.handler",
    Function.RECONCILE_SUBMISSIONS: "tasks.reconcile_submissions.handler",
    Function.POOL_SCALER: "tasks.pool_scaler.handler",
    Function.NOTIFY: "tasks.notify.handler",
}

FUNCTION_TIMEOUT_SECONDS: Final[dict[str, int]] = {
    **{name: 30 for name in HANDLERS},
    # API Gateway gives up on an integration after 29 s; a slower answer is lost anyway.
    Function.API: 29,
    # Describes, tags and stops the whole pool, one DescribeExecution per lease.
    Function.COST_GUARD: 60,
    # Describes the pool, launches and terminates one instance per call.
    Function.POOL_SCALER: 60,
    # Lists the job's originals and writes an item per file in transactions of 100: a
    # 5,000-file job overran 30 s on the local cloud (seconds in AWS).
    Function.REGISTER_JOB: 180,
    # Reads every file item twice (manifest, delivery) and switches each developed file:
    # a few seconds at 5,000 files in AWS, kept far from the limit for a slow table.
    Function.MARK_DONE: 300,
    # A webhook tried three times with backoff (10 s each at most) and two emails.
    Function.NOTIFY: 60,
}

# Each function's memory (MB), as deployed and as the local cloud enforces it: a local
# function past its size fails as in AWS (Runtime.OutOfMemory).
FUNCTION_MEMORY_MB: Final[dict[str, int]] = {
    **{name: 256 for name in HANDLERS},
    # Requests wait on it: more memory is more CPU for a faster cold start.
    Function.API: 512,
    # benchmarks.thumbnail: up to 1662 MB on the largest image max_image_pixels admits
    # (an RGBA WebP of 100 MP); a deployment may set its own (thumbnail_memory_mb).
    Function.THUMBNAIL: 2048,
}

# ${Placeholder} -> function, for the committed ASL's Lambda ARNs.
ASL_FUNCTION_PLACEHOLDERS: Final[dict[str, str]] = {
    "RegisterJobFunctionArn": Function.REGISTER_JOB,
    "StartWorkerFunctionArn": Function.START_WORKER,
    "AwaitWorkerFunctionArn": Function.AWAIT_WORKER,
    "StopWorkerFunctionArn": Function.STOP_WORKER,
    "MarkDoneFunctionArn": Function.MARK_DONE,
    "MarkFailedFunctionArn": Function.MARK_FAILED,
}

# The S3 object whose creation (and only that) starts a RAW job.
MANIFEST_NAME: Final = "manifest.json"
RAW_PREFIX: Final = "raw/"
PROCESSED_PREFIX: Final = "processed/"
# The studio's own assets (a watermark PNG), in the RAW bucket beside the originals:
# uploaded once, named by recipes, read by the workers.
ASSETS_PREFIX: Final = "assets/"

# The edge (CloudFront + WAF, cdk/edge.py): the API's paths it serves, matched by prefix
# (the client's gallery pages and their scripts), and the header CloudFront adds to each
# request it forwards, whose value (a Secrets Manager secret) proves the request came
# through the edge and its WAF rules.
EDGE_PATH_PREFIXES: Final = ("/share/", "/assets/")
ORIGIN_VERIFY_HEADER: Final = "x-darkroom-origin-verify"


class Output:
    """Stack output keys, also printed by `darkroom local up`."""

    AWS_ENDPOINT: Final = "AwsEndpointUrl"
    RAW_BUCKET: Final = "RawBucketName"
    PROCESSED_BUCKET: Final = "ProcessedBucketName"
    INPUT_BUCKET: Final = "InputBucketName"
    OUTPUT_BUCKET: Final = "OutputBucketName"
    JOBS_TABLE: Final = "JobsTableName"
    WORKERS_TABLE: Final = "WorkersTableName"
    STATE_MACHINE_ARN: Final = "StateMachineArn"
    API_URL: Final = "ApiUrl"
    UPLOADS_TABLE: Final = "UploadsTableName"
    SHARES_TABLE: Final = "SharesTableName"
    # The SES identity delivery mail is sent from, when the stack sends mail (optional:
    # `darkroom doctor` checks it only where the stack has it).
    SENDER_IDENTITY: Final = "SenderIdentity"


# An optional output's value when the stack has none (CloudFormation refuses "").
OUTPUT_NONE: Final = "-"
# The local cloud's API records its URL in this tag, for clients to find it from the
# AWS endpoint alone (importing the local cloud, moto and all, just for it takes seconds).
LOCAL_API_URL_TAG: Final = "darkroom:local-url"
# How old the pinned worker AMI may grow before `darkroom doctor` warns: the README's
# patch cadence (monthly: move the `worker_ami_id` pin, deploy, let the pool restart).
WORKER_AMI_PATCH_DAYS: Final = 30
# The worker's start line in its log, with the software it runs (`darkroom doctor` reads
# each instance's latest one for its version).
WORKER_UP_MESSAGE: Final = "worker up"
