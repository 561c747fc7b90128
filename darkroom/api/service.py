"""The API's core: what each route does, over adapters that come in as arguments, so the
same code runs against AWS, the embedded local cloud, or moto in unit tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from darkroom.api.jobs import JobOperations
from darkroom.api.proofing import ProofingOperations
from darkroom.api.shares import ShareOperations
from darkroom.api.trace import TraceOperations
from darkroom.aws.executions import Executions
from darkroom.aws.favourites import FavouriteStore
from darkroom.aws.job_store import JobStore
from darkroom.aws.multipart import MultipartUploads
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.settings import ApiSettings


class ApiService(JobOperations, ShareOperations, ProofingOperations, TraceOperations):
    def __init__(
        self,
        settings: ApiSettings,
        *,
        jobs: JobStore,
        uploads: UploadStore,
        shares: ShareStore,
        favourites: FavouriteStore,
        objects: Objects,
        presigner: Presigner,
        executions: Executions,
        multipart: MultipartUploads | None = None,
        clock: Callable[[], float] = time.time,
        origin_verify: str = "",
        share_cookie_key: bytes | Callable[[], bytes] = b"",
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.uploads = uploads
        self.shares = shares
        self.objects = objects
        self.presigner = presigner
        # Multipart calls need no presigning, but the presigner's client serves them.
        self.multipart = multipart or MultipartUploads(presigner.client)
        self.executions = executions
        # Proofing clients' favourites: in the jobs table, beside the job's items.
        self.favourites = favourites
        self.clock = clock
        # The edge's origin-verify value (settings.origin_verify_secret_arn, read at
        # start-up); empty: no edge, no check (darkroom/api/edge.py).
        self.origin_verify = origin_verify
        # Signs unlock cookies (the deployment's secret, or how to read it); without it a
        # password-protected share can be neither created nor opened.
        self.share_cookie_key = share_cookie_key
