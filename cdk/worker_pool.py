"""The EC2 worker pool: N stopped-when-idle instances that develop RAW jobs.

Network: a small VPC of public subnets and no NAT gateway (a NAT costs more a month than
a studio's workers); the instances get a public address only while running, accept no
inbound traffic at all, and may only make HTTPS connections out (AWS APIs, the Amazon
Linux repositories; the worker's wheels come in its bundle). S3 and DynamoDB traffic
stays on gateway endpoints.

private_network=true: the subnets are isolated instead (no route out, no public address)
and the workers reach AWS through interface endpoints (PRIVATE_ENDPOINTS) that accept
HTTPS from their security group only; the Amazon Linux repositories are S3 buckets,
reached through the S3 gateway endpoint. The endpoints cost by the hour (README).

Operators reach an instance with Session Manager; there is no SSH key and no port open.

Bootstrap: user data writes the worker's settings, two idempotent scripts (mount the
scratch volume; install the worker from the CDK asset), a root one-shot unit that runs
both at every boot and the worker's unit, which requires it and runs `python -m worker`
as an unprivileged, sandboxed user. A first boot cut short (the cost guard, an
operator) therefore finishes on the next start instead of leaving a broken instance.

Updates in place: the worker asset's address is an SSM parameter, which the install
script reads at every boot and installs when it changed. A deploy that changes the code
or the lock changes the parameter, not the user data, so it never touches an instance:
each takes the new bundle at its next start, and a running job finishes on what it
started with. Changing the boot scripts themselves still replaces the instances, since
cloud-init would not run new user data on existing ones.
"""

from __future__ import annotations

import json
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from cdk import bundling
from cdk.config import DeployConfig
from cdk.raw_pipeline import instance_arns, state_machine_arn
from cdk.storage import Storage
from cdk.worker_boot import (
    INSTALL_DIR,
    INSTALL_SCRIPT,
    LOGROTATE,
    MOUNT_POINT,
    ROOT_DEVICE,
    SCRATCH_DEVICE,
    SCRATCH_DIR,
    SCRATCH_SCRIPT,
    SETUP_UNIT,
    SETUP_UNIT_NAME,
    UNIT,
    UNIT_NAME,
    WORKER_ENV_FILE,
    WORKER_LOG_FILE,
    WORKER_USER,
    env_file,
    fill,
    placeholders,
    write_file,
)
from darkroom import names, settings

# private_network=true: the interface endpoints (service name, who calls it) a worker
# with no route to the internet needs, from what it and its boot script call. Not
# needed: KMS (EC2 decrypts an encrypted volume under its own grant, the instance never
# calls KMS), CloudWatch metrics (the agent ships log files only; the worker's metrics
# are metric filters on its log group), STS (credentials come from the instance
# metadata service).
PRIVATE_ENDPOINTS: Final = {
    "Ssm": ("ssm", "the install script reads the bundle parameter; Session Manager"),
    "SsmMessages": ("ssmmessages", "Session Manager's sessions"),
    "Ec2Messages": ("ec2messages", "the SSM agent's commands"),
    "Ec2": ("ec2", "the idle worker stops its own instance (StopInstances)"),
    "StepFunctions": ("states", "task heartbeats, success and failure"),
    "Logs": ("logs", "the CloudWatch agent ships the worker's log"),
}


def worker_environment(config: DeployConfig, storage: Storage, region: str) -> dict[str, str]:
    """/etc/darkroom/worker.env: darkroom.settings.WorkerSettings, read at the worker's start."""
    values = {
        "raw_bucket": storage.raw.bucket_name,
        "processed_bucket": storage.processed.bucket_name,
        "jobs_table": storage.jobs.table_name,
        "workers_table": storage.workers.table_name,
        "scratch_dir": SCRATCH_DIR,
        "heartbeat_interval_seconds": config.worker_heartbeat_interval_seconds,
        "poll_seconds": config.worker_poll_seconds,
        "idle_shutdown_seconds": config.worker_idle_shutdown_seconds,
        # The worker is no root and may not power the OS off: it stops its own
        # instance through EC2 (the role allows that instance only); the EBS volumes stay.
        "shutdown_mode": "ec2-api",
    }
    return {
        # Empty DARKROOM_INSTANCE_ID (its default): the worker asks the metadata
        # service (IMDSv2).
        **settings.environment(settings.WorkerSettings, values),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "PYTHONUNBUFFERED": "1",
    }


class WorkerPool(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        storage: Storage,
        log_retention: logs.RetentionDays,
        cache: bundling.DependencyCache | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)

        self.flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.80.0.0/16"),
            # The deployer's zones (those offering the pool's types), else CDK's two.
            **_zones(config),
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="workers",
                    # Isolated: no route out at all, not even through a NAT.
                    subnet_type=(
                        ec2.SubnetType.PRIVATE_ISOLATED
                        if config.private_network
                        else ec2.SubnetType.PUBLIC
                    ),
                    cidr_mask=24,
                )
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            # Nothing uses the default security group, and restricting it takes a
            # custom-resource Lambda of its own.
            restrict_default_security_group=False,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=self.vpc,
            description="darkroom workers: no inbound; HTTPS out to AWS APIs and package mirrors",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and Amazon Linux repos"
        )
        self.endpoints = self._private_endpoints() if config.private_network else {}

        self.log_group = logs.LogGroup(
            self,
            "WorkerLogs",
            log_group_name=names.worker_log_group(stack.stack_name),
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        instance_type = _one_architecture(config.instance_types)
        arm = instance_type.architecture == ec2.InstanceArchitecture.ARM_64
        cpu = ec2.AmazonLinuxCpuType.ARM_64 if arm else ec2.AmazonLinuxCpuType.X86_64
        # The worker's wheels are built for the instances' architecture.
        self.source = bundling.worker_source_asset(
            self, "Source", "aarch64" if arm else "x86_64", cache
        )
        # Named by CloudFormation, so the user data that names it stays the same when
        # its value (the bundle's address) changes.
        self.bundle_parameter = ssm.StringParameter(
            self,
            "Bundle",
            description="darkroom: the worker bundle pool instances install at their next start",
            string_value=self.source.s3_object_url,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="darkroom worker: its job's objects and records, task callbacks, its logs",
        )
        self._grant(storage)

        volume_key = (
            kms.Key.from_key_arn(self, "VolumeKey", config.ebs_kms_key)
            if config.ebs_kms_key
            else None
        )
        image = _machine_image(self, config, cpu)
        self.environment = worker_environment(config, storage, stack.region)
        user_data = self._user_data()
        subnets = self.vpc.isolated_subnets if config.private_network else self.vpc.public_subnets
        self.instances: list[ec2.Instance] = []
        for index in range(config.pool_size):
            instance = ec2.Instance(
                self,
                f"Worker{index}",
                instance_name=names.worker_instance_name(index, stack.stack_name),
                vpc=self.vpc,
                vpc_subnets=ec2.SubnetSelection(subnets=[subnets[index % len(subnets)]]),
                # A public address only where a route to the internet exists.
                associate_public_ip_address=not config.private_network,
                security_group=self.security_group,
                instance_type=instance_type,
                machine_image=image,
                role=self.role,
                user_data=user_data,
                user_data_causes_replacement=True,
                block_devices=[
                    _volume(ROOT_DEVICE, config.worker_root_gb, volume_key),
                    _volume(SCRATCH_DEVICE, config.worker_scratch_gb, volume_key),
                ],
                propagate_tags_to_volume_on_creation=True,
                http_endpoint=True,
                http_tokens=ec2.HttpTokens.REQUIRED,
                http_put_response_hop_limit=1,
                instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.STOP,
                detailed_monitoring=True,
            )
            cdk.Tags.of(instance).add(names.WORKER_POOL_TAG_KEY, names.WORKER_POOL_TAG_VALUE)
            self.instances.append(instance)
        self.instance_ids = [i.instance_id for i in self.instances]
        self._grant_self_stop()
        self.start_statements = _start_statements(
            self, config.instance_types, instance_arns(self, self.instance_ids), volume_key
        )
        # What the pool scaler launches from (darkroom/pool_scaler.py): the declared
        # instances' image, type, role, boot and volumes. A deploy that changes it makes
        # a new default version; launched instances keep the one they started from.
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            launch_template_name=names.in_stack(names.WORKER_LAUNCH_TEMPLATE, stack.stack_name),
            instance_type=instance_type,
            machine_image=image,
            role=self.role,
            user_data=user_data,
            security_group=self.security_group,
            # Volumes deleted with the instance: a terminated worker leaves no EBS bill.
            block_devices=[
                _volume(ROOT_DEVICE, config.worker_root_gb, volume_key),
                _volume(SCRATCH_DEVICE, config.worker_scratch_gb, volume_key),
            ],
            http_endpoint=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.STOP,
            detailed_monitoring=True,
        )
        # The L2 copies these into the template's tag specifications (instance, volume):
        # the scaler's TerminateInstances is allowed on instances carrying both.
        cdk.Tags.of(self.launch_template).add(
            names.WORKER_POOL_TAG_KEY, names.WORKER_POOL_TAG_VALUE
        )
        cdk.Tags.of(self.launch_template).add(
            names.WORKER_SCALED_TAG_KEY, names.WORKER_SCALED_TAG_VALUE
        )
        # The public subnets give a launched instance its public address (no NAT).
        self.subnet_ids = [subnet.subnet_id for subnet in subnets]
        self.volume_key_statements = _volume_key_statements(volume_key)

    def _private_endpoints(self) -> dict[str, ec2.InterfaceVpcEndpoint]:
        """The interface endpoints an instance with no internet needs (PRIVATE_ENDPOINTS),
        reachable on 443 from the workers only. S3 (the bundle, the Amazon Linux
        repositories, which are S3 buckets) and DynamoDB stay on the gateway endpoints."""
        endpoint_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="darkroom VPC endpoints: HTTPS from the workers only",
            allow_all_outbound=False,
        )
        endpoint_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "HTTPS from the darkroom workers"
        )
        return {
            name: self.vpc.add_interface_endpoint(
                name,
                service=ec2.InterfaceVpcEndpointAwsService(service),
                security_groups=[endpoint_group],
                # Not the default rule (443 from the whole VPC): the workers' group only.
                open=False,
                private_dns_enabled=True,
                subnets=ec2.SubnetSelection(subnets=self.vpc.isolated_subnets),
            )
            for name, (service, _why) in PRIVATE_ENDPOINTS.items()
        }

    def _grant(self, storage: Storage) -> None:
        stack = cdk.Stack.of(self)
        statements = [
            # The originals, in the version RegisterJob recorded.
            iam.PolicyStatement(
                sid="ReadRaw",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[storage.raw.arn_for_objects(f"{names.RAW_PREFIX}*")],
            ),
            # The recipe's watermark, a studio asset, in its current version.
            iam.PolicyStatement(
                sid="ReadAssets",
                actions=["s3:GetObject"],
                resources=[storage.raw.arn_for_objects(f"{names.ASSETS_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="ReadRenditions",
                # Packaging streams the delivered renditions into the run's ZIPs.
                actions=["s3:GetObject"],
                resources=[storage.processed.arn_for_objects(f"{names.PROCESSED_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="WriteRenditions",
                actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[storage.processed.arn_for_objects(f"{names.PROCESSED_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="JobRecord",
                # The job item and its file items (Query); each file's outcome and the
                # job's counter are one transaction of two UpdateItems.
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                resources=[storage.jobs.table_arn],
            ),
            iam.PolicyStatement(
                sid="OwnLease",
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[storage.workers.table_arn],
            ),
            iam.PolicyStatement(
                sid="TaskCallbacks",
                actions=[
                    "states:SendTaskSuccess",
                    "states:SendTaskFailure",
                    "states:SendTaskHeartbeat",
                ],
                # Step Functions authorises callbacks against the state machine that
                # issued the token.
                resources=[state_machine_arn(self)],
            ),
            iam.PolicyStatement(
                sid="OwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="WorkerSource",
                actions=["s3:GetObject"],
                resources=[self.source.bucket.arn_for_objects(self.source.s3_object_key)],
            ),
            iam.PolicyStatement(
                sid="WorkerBundleVersion",
                actions=["ssm:GetParameter"],
                resources=[self.bundle_parameter.parameter_arn],
            ),
            # Session Manager, the documented minimum (no AmazonSSMManagedInstanceCore:
            # that one also reads every SSM parameter in the account).
            iam.PolicyStatement(
                sid="SessionManagerRegistration",
                actions=["ssm:UpdateInstanceInformation"],
                # Its own instance; the role cannot name it (the instance depends on the
                # role), so: instances of this account and region.
                resources=[stack.format_arn(service="ec2", resource="instance", resource_name="*")],
            ),
            iam.PolicyStatement(
                sid="SessionManagerChannels",
                actions=[
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                ],
                # ssmmessages supports no resource-level permissions.
                resources=["*"],
            ),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)

    def _grant_self_stop(self) -> None:
        """Each instance may stop itself and no other: a statement per instance, its ARN
        as the resource and as the calling instance (ec2:SourceInstanceARN, set on calls
        signed with an instance profile's credentials). A policy of its own, not the
        role's default one: the instances depend on the role, and this names them."""
        stack = cdk.Stack.of(self)
        statements = []
        for index, instance in enumerate(self.instances):
            arn = stack.format_arn(
                service="ec2", resource="instance", resource_name=instance.instance_id
            )
            statements.append(
                iam.PolicyStatement(
                    sid=f"StopItself{index}",
                    actions=["ec2:StopInstances"],
                    resources=[arn],
                    conditions={"ArnEquals": {"ec2:SourceInstanceARN": arn}},
                )
            )
        # The instances the scaler launches have ids the stack cannot know: their worker
        # may stop an instance the scaler launched (both pool tags), a launched one only.
        statements.append(
            iam.PolicyStatement(
                sid="StopLaunchedWorker",
                actions=["ec2:StopInstances"],
                resources=[stack.format_arn(service="ec2", resource="instance", resource_name="*")],
                conditions={
                    "StringEquals": {
                        f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
                        f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": (
                            names.WORKER_SCALED_TAG_VALUE
                        ),
                    }
                },
            )
        )
        self.self_stop = iam.Policy(self, "SelfStop", roles=[self.role], statements=statements)

    def _user_data(self) -> ec2.UserData:
        stack = cdk.Stack.of(self)
        values = placeholders()
        agent = {
            "logs": {
                "logs_collected": {
                    "files": {
                        "collect_list": [
                            {
                                "file_path": WORKER_LOG_FILE,
                                "log_group_name": names.worker_log_group(stack.stack_name),
                                "log_stream_name": "{instance_id}",
                            }
                        ]
                    }
                }
            }
        }
        source = {
            "DARKROOM_BUNDLE_PARAMETER": self.bundle_parameter.parameter_name,
            "AWS_REGION": stack.region,
        }
        commands = [
            "set -euo pipefail",
            f"install -d -m 0755 /etc/darkroom {INSTALL_DIR} /var/log/darkroom {MOUNT_POINT}",
            f"id -u {WORKER_USER} >/dev/null 2>&1 || useradd --system --no-create-home"
            f" --home-dir {SCRATCH_DIR} --shell /sbin/nologin {WORKER_USER}",
            *write_file(WORKER_ENV_FILE, env_file(self.environment)),
            *write_file(f"{INSTALL_DIR}/source.env", env_file(source)),
            *write_file(f"{INSTALL_DIR}/scratch.sh", fill(SCRATCH_SCRIPT, **values), "0755"),
            *write_file(f"{INSTALL_DIR}/install.sh", fill(INSTALL_SCRIPT, **values), "0755"),
            *write_file(f"{INSTALL_DIR}/cloudwatch-agent.json", json.dumps(agent, indent=2)),
            *write_file("/etc/logrotate.d/darkroom-worker", fill(LOGROTATE, **values)),
            *write_file(f"/etc/systemd/system/{SETUP_UNIT_NAME}", fill(SETUP_UNIT, **values)),
            *write_file(f"/etc/systemd/system/{UNIT_NAME}", fill(UNIT, **values)),
            "systemctl daemon-reload",
            f"systemctl enable {SETUP_UNIT_NAME} {UNIT_NAME}",
            # Not waiting: cloud-init must finish; the setup unit's first start installs.
            f"systemctl start --no-block {UNIT_NAME}",
        ]
        user_data = ec2.UserData.for_linux(shebang="#!/bin/bash")
        user_data.add_commands(*commands)
        return user_data


def _zones(config: DeployConfig) -> dict[str, Any]:
    if config.zones:
        return {"availability_zones": list(config.zones)}
    return {"max_azs": 2}


@jsii.implements(ec2.IMachineImage)
class PinnedImage:
    """One AMI id, written into the template as it is: the same at every deploy."""

    def __init__(self, image_id: str) -> None:
        self.image_id = image_id

    def get_image(self, scope: Construct) -> ec2.MachineImageConfig:
        return ec2.MachineImageConfig(
            image_id=self.image_id,
            os_type=ec2.OperatingSystemType.LINUX,
            user_data=ec2.UserData.for_linux(),
        )


def _machine_image(
    scope: Construct, config: DeployConfig, cpu: ec2.AmazonLinuxCpuType
) -> ec2.IMachineImage:
    """The worker AMI, pinned so a deploy never replaces the pool on its own:

    - `worker_ami_id`, an explicit id, written into the template as it is;
    - else, for a stack of a known account (the CDK CLI with credentials), the latest
      AL2023 looked up once at synth and kept in cdk.context.json: later synths reuse it
      until the entry is reset (README: Patching the workers);
    - else (a synth with no account, as the tests' and CI's) the latest AL2023 resolved
      at each deploy, with a warning: only such a template floats.
    """
    if config.worker_ami_id:
        return PinnedImage(config.worker_ami_id)
    if not cdk.Token.is_unresolved(cdk.Stack.of(scope).account):
        return ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu, cached_in_context=True)
    cdk.Annotations.of(scope).add_warning_v2(
        "darkroom:worker-ami-unpinned",
        "worker_ami_id is not set and the stack has no account, so the worker AMI cannot "
        "be pinned in cdk.context.json: it is resolved at each deploy, and a deploy after a "
        "new Amazon Linux release replaces the pool (README: Patching the workers)",
    )
    # Resolved at deploy time from the public SSM parameter.
    return ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu)


def _one_architecture(instance_types: tuple[str, ...]) -> ec2.InstanceType:
    """The type the instances are created as; every fallback must boot the same image."""
    first = ec2.InstanceType(instance_types[0])
    mixed = [
        name
        for name in instance_types[1:]
        if ec2.InstanceType(name).architecture != first.architecture
    ]
    if mixed:
        raise ValueError(
            f"worker_instance_types: {', '.join(mixed)} not of {instance_types[0]}'s "
            "architecture (the pool boots one image)"
        )
    return first


def _start_statements(
    scope: Construct,
    instance_types: tuple[str, ...],
    pool: list[str],
    volume_key: kms.IKey | None,
) -> list[iam.PolicyStatement]:
    """What a role that starts pool instances needs beyond ec2:StartInstances."""
    statements = []
    if len(instance_types) > 1:
        statements += [
            # The instance's current type (darkroom.worker_queue._start).
            iam.PolicyStatement(
                sid="PoolInstanceTypes",
                actions=["ec2:DescribeInstances"],
                # DescribeInstances supports no resource-level permissions.
                resources=["*"],
            ),
            # Changing the type only, to one of the deploy's: the condition key is
            # absent from any other change (user data, security groups), which
            # StringEquals therefore refuses.
            iam.PolicyStatement(
                sid="FallbackInstanceType",
                actions=["ec2:ModifyInstanceAttribute"],
                resources=pool,
                conditions={"StringEquals": {"ec2:Attribute/InstanceType": list(instance_types)}},
            ),
        ]
        # The same change on an instance the pool scaler launched.
        fallback = iam.PolicyStatement(
            sid="FallbackInstanceTypeLaunched",
            actions=["ec2:ModifyInstanceAttribute"],
            resources=[_all_instances(scope)],
            conditions={
                "StringEquals": {
                    **_launched_tags(),
                    "ec2:Attribute/InstanceType": list(instance_types),
                }
            },
        )
        statements.append(fallback)
    return statements + _volume_key_statements(volume_key)


def _all_instances(scope: Construct) -> str:
    # As the stack spells its other ARNs: a literal region once the stack has one.
    return cdk.Stack.of(scope).format_arn(service="ec2", resource="instance", resource_name="*")


def _launched_tags() -> dict[str, str]:
    return {
        f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
        f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
    }


def _volume_key_statements(volume_key: kms.IKey | None) -> list[iam.PolicyStatement]:
    """Starting (or launching) an instance whose volumes a customer-managed key
    encrypts: EC2 asks KMS on the caller's behalf, and only EC2 in this region may."""
    statements: list[iam.PolicyStatement] = []
    if volume_key is not None:
        via_ec2 = {"kms:ViaService": f"ec2.{cdk.Aws.REGION}.amazonaws.com"}
        statements += [
            iam.PolicyStatement(
                sid="VolumeKeyGrant",
                actions=["kms:CreateGrant"],
                resources=[volume_key.key_arn],
                conditions={
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                    "StringEquals": via_ec2,
                },
            ),
            iam.PolicyStatement(
                sid="VolumeKeyUse",
                # Named rather than GenerateDataKey* and ReEncrypt*: what EBS calls.
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                ],
                resources=[volume_key.key_arn],
                conditions={"StringEquals": via_ec2},
            ),
        ]
    return statements


def _volume(device: str, size_gb: int, key: kms.IKey | None) -> ec2.BlockDevice:
    return ec2.BlockDevice(
        device_name=device,
        volume=ec2.BlockDeviceVolume.ebs(
            size_gb,
            volume_type=ec2.EbsDeviceVolumeType.GP3,
            # Without `key`, the account's default EBS key (aws/ebs unless the account
            # set a customer-managed one: then deploy with ebs_kms_key).
            encrypted=True,
            kms_key=key,
            delete_on_termination=True,
        ),
    )
