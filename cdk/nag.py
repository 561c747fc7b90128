"""cdk-nag (v3, through CDK's Validations API): the AwsSolutions pack and its acknowledgments.

cdk-nag 3 replaced NagSuppressions with `Validations.of(construct).acknowledge(...)` and
registers packs with `Validations.of(app).add_plugins(AwsSolutionsChecks(app))`. Each
acknowledgment below names one finding (IAM5 findings by the exact resource pattern),
on the one resource it is about, with the reason it is acceptable there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from darkroom import names

if TYPE_CHECKING:
    from cdk.stack import DarkroomStack

PYTHON_PINNED = (
    "Pinned to Python 3.12 on purpose: the bundled dependencies are manylinux wheels for "
    "CPython 3.12 on arm64 (cdk/bundling.py) and the worker runs 3.12 too; a runtime move "
    "is made together with the bundling target, not by a linter."
)
TRACING = (
    "Active tracing: xray:PutTraceSegments and PutTelemetryRecords support no "
    "resource-level permissions."
)
END_OF_THE_LINE_QUEUE = (
    "This queue is itself the end of the line: the on-failure destination of an "
    "asynchronously invoked function, with an alarm on its first message; a dead-letter "
    "queue behind it would never be read."
)


def add_checks(app: cdk.App) -> None:
    """Synth fails on any finding not acknowledged here."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def ack(scope: IConstruct, finding: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))


def _cfn(construct: IConstruct) -> IConstruct:
    """The CloudFormation resource of an L2: acknowledgments go on the narrowest scope."""
    child = construct.node.default_child
    assert child is not None, construct.node.path
    return child


def _policy(role: iam.IRole) -> IConstruct:
    """The CloudFormation policy resource of a role's default policy."""
    return _cfn(role.node.find_child("DefaultPolicy"))


def _wildcard(stack: cdk.Stack, resource: IConstruct, suffix: str) -> str:
    """cdk-nag's IAM5 finding id for `<LogicalId.Arn><suffix>`."""
    cfn = resource.node.default_child
    assert isinstance(cfn, cdk.CfnResource)
    return f"AwsSolutions-IAM5[Resource::<{stack.resolve(cfn.logical_id)}.Arn>{suffix}]"


ANY_RESOURCE = "AwsSolutions-IAM5[Resource::*]"


def _in_account(stack: cdk.Stack, service: str) -> str:
    """How cdk-nag spells `arn:<partition>:<service>:<region>:<account>` in this stack:
    pseudo parameters in an environment-agnostic stack, literals where the stack has a
    region or an account (a deploy through the CDK CLI with credentials has both)."""
    unknown = cdk.Token.is_unresolved
    # The partition is a literal only where the region is (enablePartitionLiterals).
    partition = (
        "<AWS::Partition>" if unknown(stack.region) or unknown(stack.partition) else stack.partition
    )
    region = "<AWS::Region>" if unknown(stack.region) else stack.region
    account = "<AWS::AccountId>" if unknown(stack.account) else stack.account
    return f"arn:{partition}:{service}:{region}:{account}"


def _this_account_instances(stack: cdk.Stack) -> str:
    return f"AwsSolutions-IAM5[Resource::{_in_account(stack, 'ec2')}:instance/*]"


LAUNCHED = (
    "Instances the pool scaler launches get ids at run time: the grant is on this account's "
    "instances carrying both the pool tag and the scaled tag (aws:ResourceTag "
    "conditions), which only the pool's launch template sets."
)


def _ec2_wildcard(stack: cdk.Stack, kind: str) -> str:
    return f"AwsSolutions-IAM5[Resource::{_in_account(stack, 'ec2')}:{kind}/*]"


def _machine_executions(stack: cdk.Stack) -> str:
    return (
        f"AwsSolutions-IAM5[Resource::{_in_account(stack, 'states')}"
        f":execution:{names.state_machine_name(stack.stack_name)}:*]"
    )


def acknowledge(stack: DarkroomStack) -> None:
    storage = stack.storage
    machine_executions = _machine_executions(stack)
    raw_objects = _wildcard(stack, storage.raw, f"/{names.RAW_PREFIX}*")
    processed_objects = _wildcard(stack, storage.processed, f"/{names.PROCESSED_PREFIX}*")
    asset_objects = _wildcard(stack, storage.raw, f"/{names.ASSETS_PREFIX}*")

    # -- the worker's instance role
    worker = _policy(stack.worker_pool.role)
    ack(
        worker,
        raw_objects,
        "The worker reads the RAW files of whichever job it is leased; "
        "job ids exist only at run time, so the grant is objects under raw/, read only.",
    )
    ack(
        worker,
        processed_objects,
        "The worker writes each job's renditions under "
        "processed/<job_id>/; job ids exist only at run time.",
    )
    ack(
        worker,
        asset_objects,
        "The worker reads the studio asset a job's recipe names (its watermark PNG); "
        "recipes name assets at run time. GetObject only, under assets/.",
    )
    ack(
        worker,
        _this_account_instances(stack),
        "ssm:UpdateInstanceInformation (Session Manager) is "
        "called by an instance about itself; its role cannot name the instance (the instance "
        "depends on the role), so it is scoped to this account's instances in this region.",
    )
    ack(
        worker,
        ANY_RESOURCE,
        "The ssmmessages channel actions Session Manager needs support "
        "no resource-level permissions.",
    )
    ack(
        _cfn(stack.worker_pool.self_stop),
        _this_account_instances(stack),
        LAUNCHED + " The worker on such an instance stops it when idle.",
    )
    for instance in stack.worker_pool.instances:
        ack(
            _cfn(instance),
            "AwsSolutions-EC26",
            "cdk-nag 3.0.2's EC26 looks up an instance's launch template once the stack "
            "holds one (the pool scaler's) and fails on an instance launched without one; "
            "both volumes are encrypted (tests/infra/test_pool_scaler.py reads them).",
        )
        ack(
            _cfn(instance),
            "AwsSolutions-EC29",
            "Pool instances are started and stopped "
            "by the pipeline and replaced when a deploy changes their user data; termination "
            "protection would block those replacements and `cdk destroy`, and an Auto "
            "Scaling group cannot keep the stable instance ids the worker leases are keyed on.",
        )

    # -- task functions
    for role in (
        stack.pipeline.start_worker.role,
        stack.pipeline.stop_worker.role,
        stack.pipeline.reconcilers.ending.role,
        stack.cost_guard.guard.role,
    ):
        ack(
            _policy(role),
            _this_account_instances(stack),
            LAUNCHED + " Start, stop (and the cost guard's own tag) as on the declared ones.",
        )
    scaler = _policy(stack.pool_scaler.scaler.role)
    for kind in ("instance", "volume", "network-interface", "subnet", "security-group", "image"):
        ack(
            scaler,
            _ec2_wildcard(stack, kind),
            "RunInstances names or creates these resources, whose ids exist only at launch; "
            "every one is conditioned on ec2:LaunchTemplate being the pool's template. "
            "TerminateInstances and the CreateTags at launch are conditioned on the pool's "
            "tags and on RunInstances.",
        )
    ack(
        _policy(stack.pipeline.register_job.role),
        raw_objects,
        "RegisterJob lists and reads "
        "one job's uploads and manifest under raw/<job_id>/; the job id arrives in the "
        "execution input. ListBucket is limited to the raw/ prefix by condition.",
    )
    ack(
        _policy(stack.pipeline.mark_done.role),
        processed_objects,
        "MarkDone deletes a job's superseded renditions under processed/<job_id>/ once a "
        "run has replaced them, and aborts uploads a dead worker left open there; the job "
        "id arrives in the task input. DeleteObject and AbortMultipartUpload only, and "
        "ListBucket is limited to the processed/ prefix by condition.",
    )
    ack(
        _policy(stack.pipeline.mark_done.role),
        _wildcard(stack, storage.processed, f"/{names.PROCESSED_PREFIX}*/{names.MANIFEST_NAME}"),
        "MarkDone writes the finished run's manifest, processed/<job_id>/<run_id>/"
        "manifest.json, from the file items; job and run ids exist only at run time. "
        "PutObject of manifests only.",
    )
    ack(
        _policy(stack.pipeline.start_worker.role),
        machine_executions,
        "StartWorker reads the status of the executions holding leases, to free one "
        "whose execution was aborted; execution names derive from job ids, known only at "
        "run time. Scoped to this state machine's executions, DescribeExecution only.",
    )
    ack(
        _policy(stack.pipeline.reconcilers.submissions.role),
        machine_executions,
        "The submission reconciler reads whether a submitted job's execution exists; "
        "execution names derive from job ids, known only at run time. Scoped to this "
        "state machine's executions, DescribeExecution only.",
    )
    ack(
        _policy(stack.pipeline.state_machine.role),
        ANY_RESOURCE,
        "CDK's statement for the "
        "required execution logging (CloudWatch Logs vended-log delivery: *LogDelivery, "
        "PutResourcePolicy, Describe*) and X-Ray tracing; none of those actions supports "
        "resource-level permissions.",
    )
    thumbnail = _policy(stack.thumbnails.thumbnailer.role)
    ack(
        thumbnail,
        _wildcard(stack, storage.input, "/*"),
        "Every object uploaded to the input "
        "bucket is a thumbnail source; read only, and that bucket holds nothing else.",
    )
    ack(
        thumbnail,
        _wildcard(stack, storage.output, "/thumbnails/*"),
        "Thumbnails are written "
        "(and removed with their source) under thumbnails/<source key>/; source keys exist "
        "only at run time.",
    )
    guard = _policy(stack.cost_guard.guard.role)
    ack(
        guard,
        ANY_RESOURCE,
        "ec2:DescribeInstances supports no resource-level permissions; "
        "the function describes only the pool's instance ids. " + TRACING,
    )
    ack(
        guard,
        machine_executions,
        "The guard reads the status of the executions that "
        "hold leases; execution names derive from job ids, known only at run time. Scoped to "
        "this state machine's executions, DescribeExecution only.",
    )

    # -- the delivery API
    api = stack.api
    api_policy = _policy(api.server.role)
    ack(
        api_policy,
        raw_objects,
        "The API presigns each job's RAW uploads and writes its submission manifest, "
        "all under raw/<job_id>/; job ids are created by the API at run time, so the grant "
        "is PutObject on objects under raw/, nothing else in that bucket.",
    )
    ack(
        api_policy,
        asset_objects,
        "PUT /studio/assets/{name} presigns a studio asset's upload and DELETE "
        "/studio/assets/{name} removes its current version; asset names are the studio's, "
        "known at run time. PutObject and DeleteObject under assets/ only.",
    )
    ack(
        api_policy,
        processed_objects,
        "A share link presigns downloads of its job's delivered renditions "
        "under processed/<job_id>/; job ids exist only at run time. GetObject only, and "
        "the code keeps only keys under the shared job's own prefix.",
    )
    ack(
        api_policy,
        machine_executions,
        "GET /jobs/{job_id} describes and reads the history of the job's execution, "
        "whose name derives from the job id, known only at run time. Scoped to this "
        "state machine's executions, DescribeExecution and GetExecutionHistory only.",
    )
    ack(
        _cfn(api.share_route),
        "AwsSolutions-APIG4",
        "GET /share/{token} is the client's share link: clients have no AWS identity, "
        "so the link's unguessable token (stored only as a hash, expiring, revocable) is "
        "its authorisation, checked by the function. "
        + (
            "It answers only requests through CloudFront, whose web ACL limits each client "
            "IP; every other route is IAM-signed."
            if stack.edge is not None
            else "It is throttled tighter than the stage; every other route is IAM-signed."
        ),
    )
    for key, route in api.routes.items():
        if route is not api.share_route and key in api.public_route_keys:
            ack(
                _cfn(route),
                "AwsSolutions-APIG4",
                f"{key} serves a share's gallery (its script, or a redirect to one "
                "delivered file or ZIP) to clients with no AWS identity: the share's "
                "unguessable token in the path is checked by the function on every "
                "request (the script holds nothing). Throttled at the stage's limits, as a "
                "gallery asks for each preview at once.",
            )

    own_reason = [stack.cost_guard.guard]
    if len(stack.config.instance_types) > 1:
        own_reason.append(stack.pipeline.start_worker)
        ack(
            _policy(stack.pipeline.start_worker.role),
            ANY_RESOURCE,
            "ec2:DescribeInstances supports no resource-level permissions; StartWorker "
            "reads the type of the pool instance it is about to start, to start it as a "
            "fallback type when EC2 has no capacity for it. " + TRACING,
        )
    for function in stack.functions.values():
        ack(_cfn(function.function), "AwsSolutions-L1", PYTHON_PINNED)
        if not any(function is f for f in own_reason):  # acknowledged above, with its reason
            ack(_policy(function.role), ANY_RESOURCE, TRACING)
    for queue in (stack.thumbnails.failures, *stack.pipeline.failure_queues.values()):
        ack(_cfn(queue), "AwsSolutions-SQS3", END_OF_THE_LINE_QUEUE)

    if stack.edge is not None:
        _acknowledge_edge(stack)
    # -- automatic delivery (cdk/delivery.py)
    ack(
        _cfn(stack.delivery.webhook_secret),
        "AwsSolutions-SMG4",
        "The webhook's signing key is shared with the studio's receiver, which must be "
        "given each new value: rotating it is a coordinated change the studio makes "
        "(put a new value, update the receiver), not a schedule that would break delivery.",
    )
    ack(_cfn(stack.notify_failures), "AwsSolutions-SQS3", END_OF_THE_LINE_QUEUE)

    # -- CDK's own bucket-notifications handler (see DarkroomStack._tame_notifications_handler)
    handler_role = stack.notifications_handler_role
    ack(
        _cfn(handler_role),
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "Removed by a property override on this CDK-provided role (cdk-nag inspects the "
        "construct, not the override); the role may write only to its own log group. "
        "tests/infra asserts the template attaches no managed policy.",
    )


def _acknowledge_edge(stack: DarkroomStack) -> None:
    edge = stack.edge
    assert edge is not None
    ack(
        _cfn(edge.secret),
        "AwsSolutions-SMG4",
        "The origin-verify value is not rotated automatically: CloudFront holds the value "
        "CloudFormation resolved at deploy time and the API reads it at a cold start, so a "
        "rotation is a deploy (README). It only proves a request came through the edge; "
        "each share route still checks its own token.",
    )
    distribution = _cfn(edge.distribution)
    ack(
        distribution,
        "AwsSolutions-CFR1",
        "A studio's clients open their galleries from anywhere; a geographic restriction "
        "would lock out a client travelling. Abuse is limited per client IP by the web ACL.",
    )
    ack(
        distribution,
        "AwsSolutions-CFR3",
        "CloudFront's standard logs need an S3 bucket with ACLs enabled, and this stack's "
        "buckets have ACLs off. Every request that reaches the API is in its JSON access "
        "log, and the web ACL keeps sampled requests and a metric per rule.",
    )
    if not stack.config.edge_domain_name:
        ack(
            distribution,
            "AwsSolutions-CFR4",
            "With CloudFront's default *.cloudfront.net certificate the security policy "
            "cannot be chosen (CloudFront keeps TLSv1 for it); with edge_domain_name and "
            "edge_certificate_arn the distribution requires TLSv1.2_2021.",
        )
