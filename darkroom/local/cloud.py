"""The embedded local cloud: moto's server on 127.0.0.1 with the resources CDK declares.

Step Functions executes the committed ASL; Lambda functions run their real handlers in
warm local processes; pool instances boot real worker processes when started.

One object over one moto server: lifecycle, clients, environments, provisioning and
moto's hooks share its state, which is why this module runs past 600 lines.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import os
import resource
import secrets
import threading
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from darkroom import names, settings
from darkroom.aws.job_store import JobStore
from darkroom.aws.table import create_request
from darkroom.local import call_recorder, moto_hooks, snapshot
from darkroom.local.api_server import LocalApiGateway, lambda_invoker
from darkroom.local.console.app import PREFIX as CONSOLE_PREFIX
from darkroom.local.console.app import Console
from darkroom.local.instances import LocalInstances, reap_orphans
from darkroom.local.lambda_runtime import LambdaRuntime
from darkroom.local.lambda_spec import FunctionSpec, InvocationResult
from darkroom.local.ports import check_port_free
from darkroom.local.service_events import SCHEDULED_EVENT, Schedule, on_failure_record
from darkroom.names import Function
from darkroom.workflow import render_definition

ACCOUNT_ID = "123456789012"  # moto's default account
# Any id will do (nothing boots from it); looking one up costs moto seconds.
LOCAL_AMI_ID = "ami-12c6146b"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Where the local HTTP API's URL is recorded, for clients given only the AWS endpoint.
LOCAL_API_URL_TAG = names.LOCAL_API_URL_TAG
# Asynchronously invoked functions whose events, once their retries are spent, are parked
# on a queue (the CDK app's on-failure destinations).
ON_FAILURE_QUEUES: Mapping[str, str] = {Function.ORCHESTRATOR: names.SUBMISSION_FAILURES_QUEUE}
# How long after an execution ends the state is saved: time for the ending reconciler
# (invoked asynchronously) to write the job's terminal status first.
SAVE_AFTER_ENDING_SECONDS = 2.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalCloudConfig:
    host: str = "127.0.0.1"
    port: int = 4599  # 0 picks a free port
    region: str = "us-east-1"
    state_dir: Path = field(default_factory=lambda: Path(".darkroom") / "local")
    # Two workers: a job of several shards develops them side by side, as in AWS. The
    # pool's minimum: the pool scaler launches up to pool_max_size (None: pool_size, a
    # fixed pool) from the launch template and terminates them again once idle.
    pool_size: int = 2
    pool_max_size: int | None = None
    pool_max_vcpus: int = 0
    pool_scale_up_after_seconds: float = 20.0
    pool_idle_terminate_seconds: float = 120.0
    # The scaler's schedule, in laptop time (0: never; `aws lambda invoke` runs it).
    pool_scale_seconds: float = 5.0
    # Created as the first, as in AWS (StartWorker's fallback never triggers here).
    worker_instance_types: tuple[str, ...] = names.WORKER_INSTANCE_TYPES
    shard_size: int = 200
    # Laptop timings: the same ASL reads them from RegisterJob's output.
    worker_heartbeat_seconds: int = 10
    job_timeout_seconds: int = 3600
    worker_heartbeat_interval_seconds: float = 2.0
    worker_poll_seconds: float = 0.5
    worker_idle_shutdown_seconds: float = 300.0
    # The cost guard is provisioned but not scheduled: `aws lambda invoke` runs it.
    cost_guard_max_idle_seconds: int = 1800
    # The submission reconciler runs on a schedule as in AWS, in laptop time: every this
    # many seconds (0: never), starting submissions left without an execution this long
    # (the orchestrator's own tries take a few seconds here).
    submission_reconcile_seconds: float = 5.0
    resubmit_after_seconds: int = 10
    thumbnail_sizes: tuple[int, ...] = (256, 1024)
    max_image_pixels: int = 100_000_000
    # The API's local gateway (0 picks a free port), and overrides of the API function's
    # settings by field name (e.g. smaller size limits: {"max_file_bytes": 1000}).
    api_port: int = 0
    api_settings: Mapping[str, Any] = field(default_factory=dict)
    # The studio on its clients' gallery pages, by the names the CDK context uses
    # (names.STUDIO_SETTINGS); the API's settings check each value.
    studio: Mapping[str, str] = field(default_factory=dict)
    # Automatic delivery, by the names the CDK context uses (names.SENDER_EMAIL,
    # PHOTOGRAPHER_EMAIL, WEBHOOK_URL); the sender is made a verified SES identity.
    delivery: Mapping[str, str] = field(default_factory=dict)
    # Functions and workers append each AWS call they make to LocalCloud.calls_path
    # (darkroom.local.call_recorder), for the test that checks them against IAM.
    record_calls: bool = False
    # Keep buckets, tables and ended executions under state_dir across restarts
    # (darkroom.local.snapshot): loaded at start; saved every save_every_seconds, soon
    # after an execution ends, and at stop. Off for tests, whose every cloud starts empty.
    persist: bool = False
    save_every_seconds: float = snapshot.SAVE_EVERY_SECONDS


def _allow_open_files() -> None:
    """moto holds every stored object over a few MB (each version, in a versioned bucket)
    as an open temporary file, so a long session passes a laptop's default of 256 or
    1,024 descriptors; raise the soft limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def function_arn(name: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"


def console_url(api_url: str) -> str:
    """The local console, served by the API's local gateway."""
    return f"{api_url.rstrip('/')}{CONSOLE_PREFIX}/"


def state_machine_arn(region: str) -> str:
    return f"arn:aws:states:{region}:{ACCOUNT_ID}:stateMachine:{names.state_machine_name()}"


class LocalCloud:
    def __init__(self, config: LocalCloudConfig | None = None) -> None:
        self.config = config or LocalCloudConfig()
        self.state_dir = self.config.state_dir.resolve()
        self._server: Any = None
        self.endpoint_url = ""
        self.instance_ids: list[str] = []
        # Instances the pool scaler launched (and which boot as workers like the rest).
        self.scaled_ids: set[str] = set()
        self.share_cookie_secret_arn = ""
        self._runtime = LambdaRuntime(log_dir=self.state_dir / "logs")
        self._runtime_lock = threading.Lock()
        self._specs: dict[str, FunctionSpec] = {}
        self.instances: LocalInstances | None = None
        self.api: LocalApiGateway | None = None
        self.api_url = ""
        self._schedule: Schedule | None = None
        self._scaler: Schedule | None = None
        # With persist: what start loaded (None: nothing was saved yet), the jobs it
        # failed because the stop interrupted them, and what stop saved.
        self.restored: snapshot.Summary | None = None
        self.interrupted: list[str] = []
        self.orphans_killed: list[int] = []
        self.saved: snapshot.Summary | None = None
        # Saving over the snapshot is safe only once it was loaded whole: a start that
        # failed half way must not replace good state with a part of it.
        self._may_save = False
        self._save_lock = threading.Lock()
        self._stopping = threading.Event()
        self._saver: Schedule | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> LocalCloud:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        cfg = self.config
        check_port_free(cfg.host, cfg.port, "the local cloud's AWS endpoint")
        check_port_free(cfg.host, cfg.api_port, "the local cloud's API")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # werkzeug logs every request; the worker's polling would drown the console.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # The interpreter logs each failed state with a traceback: useful, but for the
        # log file, not the user's terminal.
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        moto_log = logging.getLogger("moto")
        moto_log.handlers = [logging.FileHandler(self.state_dir / "logs" / "moto.log")]
        moto_log.propagate = False
        if cfg.persist:
            # Before the server listens: a worker left by a killed cloud must not call
            # this one.
            self.orphans_killed = reap_orphans(self.state_dir)
        moto_hooks.install(self)
        _allow_open_files()
        self._server = ThreadedMotoServer(
            ip_address=self.config.host, port=self.config.port, verbose=False
        )
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto's Step Functions interpreter calls Lambda through the server on MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        requests.post(
            f"{self.endpoint_url}/moto-api/config",
            # Not lambda.use_docker=False: that swaps in moto's echoing stub backend;
            # the hooks already keep Docker out of it.
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        ).raise_for_status()
        self.instances = LocalInstances(self.state_dir, self.worker_environment())
        self.provision()
        if cfg.persist:
            # Before the API and the schedule: nothing may see a half-loaded cloud.
            self._restore()
        self._start_api()
        self._start_schedule()
        self._start_scaler()
        if cfg.persist:
            # Saves between stops, so a kill -9 or a crash loses a bounded window; soon
            # after an execution ends too (execution_ended), once its job is terminal.
            self._saver = Schedule(
                "save", cfg.save_every_seconds, self.save, settle=SAVE_AFTER_ENDING_SECONDS
            ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for schedule in (self._schedule, self._scaler):
            if schedule is not None:
                schedule.stop()
        self._schedule = self._scaler = None
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self._may_save and self._server is not None:
            self._end_running_executions()
        if self.instances is not None:
            self.instances.close()
        self._runtime.close()
        if self._saver is not None:
            # After the workers: a save in flight must not give a job time to finish
            # that the stop would otherwise have interrupted.
            self._saver.stop()
            self._saver = None
        try:
            # Once nothing runs any more (workers, functions), so nothing changes under
            # the save; a job they left unfinished is failed at the next start.
            if self._may_save and self._server is not None:
                self.saved = self.save()
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None
            moto_hooks.uninstall()

    def _end_running_executions(self) -> None:
        """What still runs cannot be resumed by the next start: it ends now, ABORTED with
        the stop's cause, as a kill -9 leaves it at the next start (before its workers
        end, whose task failures would otherwise end it FAILED with a cause of their own).
        Its job is failed at the next start, not by the ending reconciler, which is going
        down with the rest."""
        sfn = self.client("stepfunctions")
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn(self.config.region), statusFilter="RUNNING"
        )
        for execution in (e for page in pages for e in page["executions"]):
            try:
                sfn.stop_execution(
                    executionArn=execution["executionArn"],
                    error=snapshot.INTERRUPTED_ERROR,
                    cause=snapshot.INTERRUPTED_CAUSE,
                )
            except Exception:
                log.exception("could not stop %s", execution["executionArn"])

    def save(self) -> snapshot.Summary:
        with self._save_lock:
            return snapshot.save(self, self.state_dir)

    def _restore(self) -> None:
        archived = snapshot.archived_executions(self.state_dir)
        count = moto_hooks.restore_executions(
            archived, account_id=ACCOUNT_ID, region=self.config.region
        )
        self.restored = snapshot.load(self, self.state_dir)
        if self.restored is not None:
            self.restored.executions = count
            jobs = JobStore(names.JOBS_TABLE, self.client("dynamodb"))
            self.interrupted = snapshot.fail_interrupted(jobs, self.restored.jobs)
        self._may_save = True

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def calls_path(self) -> Path:
        return self.state_dir / "aws-calls.jsonl"

    def _recording_env(self) -> dict[str, str]:
        if not self.config.record_calls:
            return {}
        return {call_recorder.CALL_LOG_ENV: str(self.calls_path)}

    # -- clients ----------------------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """What any AWS client needs to talk to this cloud instead of AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.config.region,
            "AWS_REGION": self.config.region,
        }

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=self.config.region
        ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def endpoints(self) -> dict[str, Any]:
        return {
            names.Output.AWS_ENDPOINT: self.endpoint_url,
            "Region": self.config.region,
            names.Output.RAW_BUCKET: names.RAW_BUCKET,
            names.Output.PROCESSED_BUCKET: names.PROCESSED_BUCKET,
            names.Output.INPUT_BUCKET: names.INPUT_BUCKET,
            names.Output.OUTPUT_BUCKET: names.OUTPUT_BUCKET,
            names.Output.JOBS_TABLE: names.JOBS_TABLE,
            names.Output.WORKERS_TABLE: names.WORKERS_TABLE,
            names.Output.STATE_MACHINE_ARN: state_machine_arn(self.config.region),
            names.Output.API_URL: self.api_url,
            names.Output.UPLOADS_TABLE: names.UPLOADS_TABLE,
            names.Output.SHARES_TABLE: names.SHARES_TABLE,
            # Here the sender's own address is the verified identity (a deploy's is its
            # domain, with DKIM); "-" as deployed when none is configured.
            names.Output.SENDER_IDENTITY: self.config.delivery.get(names.SENDER_EMAIL) or "-",
            "ConsoleUrl": self.console_url,
        }

    @property
    def console_url(self) -> str:
        return console_url(self.api_url)

    # -- environments -----------------------------------------------------------
    def settings_values(self) -> dict[str, Any]:
        """This cloud's value of every settings field it fills, by field name (the CDK
        app fills the same fields from the stack); each runtime's settings model takes
        its own, the rest of each model keeps its defaults."""
        cfg = self.config
        return {
            "raw_bucket": names.RAW_BUCKET,
            "processed_bucket": names.PROCESSED_BUCKET,
            "output_bucket": names.OUTPUT_BUCKET,
            "jobs_table": names.JOBS_TABLE,
            "workers_table": names.WORKERS_TABLE,
            "uploads_table": names.UPLOADS_TABLE,
            "shares_table": names.SHARES_TABLE,
            # Its name until provisioning gives the ARN (Secrets Manager takes either).
            "share_cookie_secret_arn": self.share_cookie_secret_arn or names.SHARE_COOKIE_SECRET,
            "state_machine_arn": state_machine_arn(cfg.region),
            "worker_instance_ids": self.instance_ids,
            "worker_instance_types": cfg.worker_instance_types,
            "worker_heartbeat_seconds": cfg.worker_heartbeat_seconds,
            "job_timeout_seconds": cfg.job_timeout_seconds,
            "shard_size": cfg.shard_size,
            "thumbnail_sizes": cfg.thumbnail_sizes,
            "max_image_pixels": cfg.max_image_pixels,
            "cost_guard_max_idle_seconds": cfg.cost_guard_max_idle_seconds,
            "pool_max_instances": max(cfg.pool_size, cfg.pool_max_size or cfg.pool_size),
            "pool_max_vcpus": cfg.pool_max_vcpus,
            "pool_scale_up_after_seconds": cfg.pool_scale_up_after_seconds,
            "pool_idle_terminate_seconds": cfg.pool_idle_terminate_seconds,
            "pool_launch_template": names.WORKER_LAUNCH_TEMPLATE,
            "submission_failures_queue_url": self.queue_url(names.SUBMISSION_FAILURES_QUEUE),
            "resubmit_after_seconds": cfg.resubmit_after_seconds,
            # Presigned URLs name the bucket in the path: the endpoint is an IP address.
            "s3_addressing_style": "path",
            "heartbeat_interval_seconds": cfg.worker_heartbeat_interval_seconds,
            "poll_seconds": cfg.worker_poll_seconds,
            "idle_shutdown_seconds": cfg.worker_idle_shutdown_seconds,
            # Stopping through EC2 is what ends the local worker's process.
            "shutdown_mode": "ec2-api",
            **cfg.studio,
            **cfg.api_settings,
            **cfg.delivery,
            "ses_configuration_set": names.SES_CONFIGURATION_SET,
            "webhook_secret_id": names.WEBHOOK_SECRET,
            # Known once the API listens (_start_api sets it on the function).
            "share_base_url": self.api_url,
        }

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint_url}/{ACCOUNT_ID}/{name}"

    def function_environment(self, name: str) -> dict[str, str]:
        return settings.environment(settings.FUNCTION_SETTINGS[name], self.settings_values())

    def worker_environment(self) -> dict[str, str]:
        """Every local worker's environment; LocalInstances adds each instance's id and
        scratch directory."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.client_env(),
            **self._recording_env(),
            **settings.environment(settings.WorkerSettings, self.settings_values()),
        }

    # -- provisioning -----------------------------------------------------------
    def provision(self) -> None:
        cfg = self.config
        iam = self.client("iam")
        role = iam.create_role(
            RoleName="darkroom-local",
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
        )["Role"]["Arn"]

        s3 = self.client("s3")
        for bucket in (
            names.RAW_BUCKET,
            names.PROCESSED_BUCKET,
            names.INPUT_BUCKET,
            names.OUTPUT_BUCKET,
        ):
            s3.create_bucket(Bucket=bucket)
        # Versioned as deployed (cdk/storage.py): an overwritten or deleted original
        # keeps its earlier versions here too.
        s3.put_bucket_versioning(
            Bucket=names.RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )

        sqs = self.client("sqs")
        for queue in sorted(set(ON_FAILURE_QUEUES.values())):
            sqs.create_queue(QueueName=queue)

        ddb = self.client("dynamodb")
        for schema in names.TABLES:
            ddb.create_table(**create_request(schema))

        self.share_cookie_secret_arn = self.client("secretsmanager").create_secret(
            Name=names.SHARE_COOKIE_SECRET, SecretString=self._share_cookie_key()
        )["ARN"]

        ec2 = self.client("ec2")
        reservation = ec2.run_instances(
            ImageId=LOCAL_AMI_ID,
            MinCount=cfg.pool_size,
            MaxCount=cfg.pool_size,
            InstanceType=cfg.worker_instance_types[0],
            InstanceInitiatedShutdownBehavior="stop",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": names.WORKER_POOL_TAG_KEY, "Value": names.WORKER_POOL_TAG_VALUE}
                    ],
                }
            ],
        )
        self.instance_ids = sorted(i["InstanceId"] for i in reservation["Instances"])
        # A pool instance is stopped until a job needs it.
        ec2.stop_instances(InstanceIds=self.instance_ids)
        self._launch_template(ec2)

        lam = self.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            # The code runs from this checkout; the zip only satisfies the API.
            archive.writestr("README.txt", "darkroom local function: code runs from the project")
        for name, handler in names.HANDLERS.items():
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler=handler,
                Code={"ZipFile": code.getvalue()},
                Timeout=names.FUNCTION_TIMEOUT_SECONDS[name],
                MemorySize=names.FUNCTION_MEMORY_MB[name],
                Environment={"Variables": self.function_environment(name)},
            )

        definition = render_definition(
            {
                placeholder: function_arn(function, cfg.region)
                for placeholder, function in names.ASL_FUNCTION_PLACEHOLDERS.items()
            }
        )
        self.client("stepfunctions").create_state_machine(
            name=names.state_machine_name(), definition=definition, roleArn=role
        )

        self._notify(s3, lam)
        self._provision_delivery()

    def _provision_delivery(self) -> None:
        """As cdk/delivery.py declares it: the sender identity and configuration set,
        the webhook's signing secret, and the rule sending job events to Notify."""
        sesv2 = self.client("sesv2")
        sesv2.create_configuration_set(ConfigurationSetName=names.SES_CONFIGURATION_SET)
        sender = self.config.delivery.get(names.SENDER_EMAIL)
        if sender:
            sesv2.create_email_identity(
                EmailIdentity=sender, ConfigurationSetName=names.SES_CONFIGURATION_SET
            )
        # Kept: the studio's receiving system keeps checking signatures after a restart.
        self.client("secretsmanager").create_secret(
            Name=names.WEBHOOK_SECRET, SecretString=self._kept_secret("webhook.key", 32)
        )
        events = self.client("events")
        notify = function_arn(Function.NOTIFY, self.config.region)
        # Job events, and SES's bounces and complaints, as cdk/delivery.py routes them.
        # moto's SES never bounces; that rule is here so such an event, put on the bus,
        # reaches Notify.
        for rule, pattern in (
            (names.JOB_EVENTS_RULE, names.job_events_pattern()),
            (names.SES_FEEDBACK_RULE, names.mail_feedback_pattern()),
        ):
            events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
            events.put_targets(Rule=rule, Targets=[{"Id": "notify", "Arn": notify}])

    def _launch_template(self, ec2: Any) -> None:
        """The pool's launch template, as cdk/worker_pool.py declares it: the scaler's
        launches carry the pool's tags and volumes deleted with the instance."""
        cfg = self.config
        tags = [
            {"Key": names.WORKER_POOL_TAG_KEY, "Value": names.WORKER_POOL_TAG_VALUE},
            {"Key": names.WORKER_SCALED_TAG_KEY, "Value": names.WORKER_SCALED_TAG_VALUE},
        ]
        ec2.create_launch_template(
            LaunchTemplateName=names.WORKER_LAUNCH_TEMPLATE,
            LaunchTemplateData={
                "ImageId": LOCAL_AMI_ID,
                "InstanceType": cfg.worker_instance_types[0],
                "InstanceInitiatedShutdownBehavior": "stop",
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/xvdb",
                        "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True},
                    }
                ],
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            },
        )

    def _share_cookie_key(self) -> str:
        """The key that signs unlock cookies: a browser unlocked before a restart stays
        unlocked."""
        return self._kept_secret("share-cookie.key", 48)

    def _kept_secret(self, name: str, size: int) -> str:
        """A secret drawn once and kept under the state directory (owner-only), so it
        outlives a restart as the deployment's secret outlives every deploy."""
        path = self.state_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(size))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        return path.read_text().strip()

    def _start_api(self) -> None:
        """The HTTP API: declared in moto as CDK declares it (routes, IAM authorisation),
        served by the local gateway, its URL on the API's tags for clients to find."""
        from botocore.config import Config

        from darkroom.api.routes import ROUTES

        cfg = self.config
        # No retries: a retried Invoke would run a request twice.
        lam = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=cfg.region
        ).client(
            "lambda",
            endpoint_url=self.endpoint_url,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
        )
        apigw = self.client("apigatewayv2")
        api_id = apigw.create_api(Name=names.api_name(), ProtocolType="HTTP")["ApiId"]
        console = Console(self.client, self.state_dir / "logs", state_machine_arn(cfg.region))
        self.api = LocalApiGateway(
            lambda_invoker(lam, Function.API),
            host=cfg.host,
            port=cfg.api_port,
            api_id=api_id,
            console=console.handle,
        ).start()
        self.api_url = self.api.url
        # Share links in delivery emails point at this API.
        lam.update_function_configuration(
            FunctionName=Function.NOTIFY,
            Environment={"Variables": self.function_environment(Function.NOTIFY)},
        )
        integration = apigw.create_integration(
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationUri=function_arn(Function.API, cfg.region),
            PayloadFormatVersion="2.0",
        )["IntegrationId"]
        for route in ROUTES:
            apigw.create_route(
                ApiId=api_id,
                RouteKey=route.key,
                AuthorizationType="AWS_IAM" if route.iam else "NONE",
                Target=f"integrations/{integration}",
            )
        apigw.tag_resource(
            ResourceArn=f"arn:aws:apigateway:{cfg.region}::/apis/{api_id}",
            Tags={LOCAL_API_URL_TAG: self.api_url},
        )

    def _start_schedule(self) -> None:
        """The stack's EventBridge schedule: the submission reconciler, invoked
        asynchronously every few minutes in AWS, every few seconds here."""
        interval = self.config.submission_reconcile_seconds
        if interval <= 0:
            return
        lam = self.client("lambda")
        payload = json.dumps(SCHEDULED_EVENT)
        self._schedule = Schedule(
            Function.RECONCILE_SUBMISSIONS,
            interval,
            lambda: lam.invoke(
                FunctionName=Function.RECONCILE_SUBMISSIONS, InvocationType="Event", Payload=payload
            ),
        ).start()

    def _start_scaler(self) -> None:
        """The pool scaler's schedule (every minute in AWS), when the pool may grow."""
        cfg = self.config
        if cfg.pool_scale_seconds <= 0 or (cfg.pool_max_size or 0) <= cfg.pool_size:
            return
        lam = self.client("lambda")
        payload = json.dumps(SCHEDULED_EVENT)
        self._scaler = Schedule(
            Function.POOL_SCALER,
            cfg.pool_scale_seconds,
            lambda: lam.invoke(
                FunctionName=Function.POOL_SCALER, InvocationType="Event", Payload=payload
            ),
        ).start()

    def pause_scaler(self) -> None:
        """Stop the pool scaler's schedule (tests that run its passes themselves)."""
        if self._scaler is not None:
            self._scaler.stop()
            self._scaler = None

    def _notify(self, s3: Any, lam: Any) -> None:
        """S3 -> Lambda wiring, as the CDK app declares it."""
        manifest_only = {
            "Key": {
                "FilterRules": [
                    {"Name": "prefix", "Value": names.RAW_PREFIX},
                    {"Name": "suffix", "Value": "/" + names.MANIFEST_NAME},
                ]
            }
        }
        # The thumbnailer writes only to the output bucket, so it cannot trigger itself.
        wiring = (
            (
                names.INPUT_BUCKET,
                Function.THUMBNAIL,
                "thumbnails",
                ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                None,
            ),
            (
                names.RAW_BUCKET,
                Function.ORCHESTRATOR,
                "submit-manifest",
                ["s3:ObjectCreated:*"],
                manifest_only,
            ),
        )
        for bucket, function, config_id, events, key_filter in wiring:
            lam.add_permission(
                FunctionName=function,
                StatementId="s3-invoke",
                Action="lambda:InvokeFunction",
                Principal="s3.amazonaws.com",
                SourceArn=f"arn:aws:s3:::{bucket}",
            )
            config: dict[str, Any] = {
                "Id": config_id,
                "LambdaFunctionArn": function_arn(function, self.config.region),
                "Events": events,
            }
            if key_filter:
                config["Filter"] = key_filter
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={"LambdaFunctionConfigurations": [config]},
            )

    # -- fault injection ----------------------------------------------------------
    def kill_next_invocation(
        self,
        function: str,
        *,
        after_handler: bool = False,
        when: Callable[[Any], bool] | None = None,
    ) -> threading.Event:
        """The function's next invocation (with `when`, the next whose event it accepts)
        loses its process, before its handler runs or (after_handler) once it has done
        its work; the caller sees Runtime.ExitError. The event is set once the kill
        happened."""
        if function not in names.HANDLERS:
            raise ValueError(f"no function named {function!r}")
        return self._runtime.kill_next(function, after_handler=after_handler, when=when)

    # -- moto_hooks.Host ----------------------------------------------------------
    def spec_for(
        self, name: str, handler: str, env: dict[str, str], timeout: float, memory_mb: int
    ) -> FunctionSpec:
        return FunctionSpec(
            name=name,
            handler=handler,
            environment=env,
            timeout_seconds=timeout,
            memory_mb=memory_mb,
            region=self.config.region,
            # What the runtime itself provides, beside the function's own variables. In
            # AWS, Lambda runs the X-Ray daemon; nothing here would receive segments.
            extra_env={
                **self.client_env(),
                **self._recording_env(),
                "PYTHONPATH": str(PROJECT_ROOT),
                "POWERTOOLS_TRACE_DISABLED": "true",
            },
        )

    def _registered(self, spec: FunctionSpec) -> str:
        with self._runtime_lock:
            if self._specs.get(spec.name) != spec:
                self._runtime.register(spec)
                self._specs[spec.name] = spec
        return spec.name

    def invoke(self, spec: FunctionSpec, event: Any) -> InvocationResult:
        return self._runtime.invoke(self._registered(spec), event)

    def invoke_async(self, spec: FunctionSpec, event: Any) -> None:
        future = self._runtime.invoke_async(self._registered(spec), event)
        queue = ON_FAILURE_QUEUES.get(spec.name)
        if queue is not None:
            future.add_done_callback(lambda done: self._park(spec, event, done, queue))

    def _park(
        self,
        spec: FunctionSpec,
        event: Any,
        done: concurrent.futures.Future[InvocationResult],
        queue: str,
    ) -> None:
        """An event whose every try failed goes to the function's on-failure queue, in
        the record Lambda writes there."""
        if done.cancelled() or done.exception() is not None:
            return  # the runtime closed: the cloud is going down
        result = done.result()
        if result.function_error is None:
            return
        record = on_failure_record(spec, event, result)
        try:
            self.client("sqs").send_message(
                QueueUrl=self.queue_url(queue), MessageBody=json.dumps(record)
            )
        except Exception:
            log.exception("could not park a failed %s event on %s", spec.name, queue)

    def execution_ended(self, event: dict[str, Any]) -> None:
        """The stack's EventBridge rule: this state machine's executions that end without
        succeeding go to the ending reconciler."""
        detail = event.get("detail", {})
        saver = self._saver  # read once: stop() may clear it meanwhile
        if saver is not None:
            saver.soon()
        if self._stopping.is_set():
            return  # the next start reconciles what the stop ended (_restore)
        if detail.get("status") in names.EXECUTION_ENDINGS and detail.get(
            "stateMachineArn"
        ) == state_machine_arn(self.config.region):
            moto_hooks.invoke_event(
                Function.RECONCILE_ENDING, event, account_id=ACCOUNT_ID, region=self.config.region
            )

    def instance_started(self, instance_id: str) -> None:
        if self.instances is not None and (
            instance_id in self.instance_ids or instance_id in self.scaled_ids
        ):
            self.instances.on_start(instance_id)

    def instance_terminated(self, instance_id: str) -> None:
        """The worker ends, and its scratch directory goes as its EBS volume would
        (DeleteOnTermination)."""
        if self.instances is not None:
            self.instances.on_terminate(instance_id)

    def instance_launched(self, instance_id: str, tags: dict[str, str]) -> None:
        """A launch from the pool's template boots a worker, as its user data would."""
        if tags.get(names.WORKER_SCALED_TAG_KEY) != names.WORKER_SCALED_TAG_VALUE:
            return
        self.scaled_ids.add(instance_id)
        if self.instances is not None:
            self.instances.on_start(instance_id)

    def instance_stopped(self, instance_id: str) -> None:
        if self.instances is not None:
            self.instances.on_stop(instance_id)
