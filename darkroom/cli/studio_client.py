"""What a studio does with a deployment, through its HTTP API: upload a shoot, watch it,
reprocess, share, download.

The API's URL is all it needs (plus AWS credentials to sign with for a deployed stack);
it works the same against AWS and the embedded local cloud.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from darkroom import keys, lineage, names
from darkroom.api.client import (
    ApiCallError,
    ApiClient,
    Signer,
    TransferError,
    digest_url,
    get_file,
    put_file,
    put_range,
    read_url,
    sigv4_signer,
)
from darkroom.formats import files_in, is_raw
from darkroom.jobs import TERMINAL
from darkroom.recipes import NAME_PATTERN

if TYPE_CHECKING:
    import boto3

# A share made just for one `download` of the photographer's own job, revoked after it.
# Its links must outlive the download: a wedding's thousands of renditions take a while.
DOWNLOAD_SHARE_SECONDS = 12 * 3600


def raw_files(directory: Path) -> list[Path]:
    """The RAW files of a folder, and the XMP sidecar beside each (Lightroom's or
    darktable's): what a job of it holds."""
    if not directory.is_dir():
        return files_in([directory], is_raw)
    return shoot_files(directory).files


@dataclass(frozen=True)
class Shoot:
    files: list[Path]  # the RAWs, then their sidecars
    skipped: list[tuple[str, str]]  # (the entry as a user finds it, why it is left out)


class SameName(ValueError):
    """Two subfolders hold files of one name: a job's files are named flat."""


def shoot_files(directory: Path, *, recursive: bool = False) -> Shoot:
    """What a job of `directory` holds, its subfolders' too when `recursive`, and what
    is left out of it and why (hidden files are left out unsaid: .DS_Store is no news).

    A job's file names are flat, so with `recursive` two files of one name in different
    subfolders raise SameName."""
    from darkroom.sidecars import is_sidecar, pair

    raws: list[Path] = []
    sidecars: list[Path] = []
    skipped: list[tuple[str, str]] = []
    folders = [directory]
    while folders:
        folder = folders.pop(0)
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        files = [p for p in entries if p.is_file()]
        paired, _ = pair([p.name for p in files], is_raw)
        wanted = set(paired.values())
        for path in entries:
            shown = path.relative_to(directory).as_posix()
            if path.is_dir():
                if recursive:
                    folders.append(path)
                else:
                    skipped.append((f"{shown}/", "a folder: --recursive takes its RAW files"))
            elif not path.is_file():
                skipped.append((shown, "not a regular file"))
            elif is_raw(path.name):
                raws.append(path)
            elif path.name in wanted:
                sidecars.append(path)
            elif is_sidecar(path.name):
                skipped.append((shown, "an XMP sidecar with no RAW file of its name"))
            else:
                skipped.append((shown, "not a camera RAW file"))
    where: dict[str, list[Path]] = {}
    for path in raws + sidecars:
        where.setdefault(path.name, []).append(path)
    for name, paths in where.items():
        if len(paths) > 1:
            folders_of = " and ".join(
                f"{p.parent.relative_to(directory).as_posix()}/" for p in paths[:3]
            )
            raise SameName(
                f"{name} is in {folders_of}: a job's file names must be unique; rename one, "
                "or upload each folder as a job of its own"
            )
    return Shoot(raws + sidecars, skipped)


class Transfer(Protocol):
    """Progress of a batch of uploads or downloads (the CLI draws bars from it)."""

    def begin(self, total_bytes: int, files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, name: str) -> None: ...


class NoApiConfigured(Exception):
    """Nothing says where the API is: a usage mistake, not a failure."""


@dataclass(frozen=True)
class ApiTarget:
    """Where the API is and how to sign for it."""

    url: str
    signer: Signer | None = None

    @classmethod
    def resolve(
        cls,
        *,
        api_url: str | None = None,
        endpoint_url: str | None = None,
        stack: str = "darkroom",
        profile: str | None = None,
        region: str | None = None,
    ) -> ApiTarget:
        """An explicit URL; else the local cloud at `endpoint_url`; else the stack's output."""
        # boto3 only to sign for, or find, a deployed stack: a share link never needs it.
        import boto3

        if api_url:
            host = urlsplit(api_url).hostname or ""
            if host in {"127.0.0.1", "localhost", "::1"}:
                return cls(api_url)  # the local cloud's API is open
            session = boto3.session.Session(profile_name=profile, region_name=region)
            return cls(api_url, sigv4_signer(session, _api_region(host, session)))
        if endpoint_url:
            return cls(local_api_url(endpoint_url, region or "us-east-1"))
        session = boto3.session.Session(profile_name=profile, region_name=region)
        if session.region_name is None:
            raise NoApiConfigured(
                "no darkroom API configured: give --endpoint-url (or DARKROOM_ENDPOINT_URL) "
                "for a local cloud, --api-url, or --region (or a --profile with one) for a "
                "deployed stack"
            )
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in session.client("cloudformation")
            .describe_stacks(StackName=stack)["Stacks"][0]
            .get("Outputs", [])
        }
        if names.Output.API_URL not in outputs:
            raise RuntimeError(f"stack {stack} has no {names.Output.API_URL} output")
        url = outputs[names.Output.API_URL]
        return cls(url, sigv4_signer(session, _api_region(urlsplit(url).hostname or "", session)))

    def client(self) -> ApiClient:
        return ApiClient(self.url, self.signer)


def _api_region(host: str, session: boto3.session.Session) -> str:
    # <api id>.execute-api.<region>.amazonaws.com; for a custom domain, the session's.
    parts = host.split(".")
    if len(parts) >= 5 and parts[1] == "execute-api":
        return parts[2]
    return session.region_name or "us-east-1"


def local_api_url(endpoint_url: str, region: str = "us-east-1") -> str:
    """The local cloud's API URL, found from its AWS endpoint (recorded on the API's tags)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=region
    )
    apigw = session.client("apigatewayv2", endpoint_url=endpoint_url)
    for api in apigw.get_apis()["Items"]:
        tags = api.get("Tags", {})
        if api.get("Name") == names.api_name() and names.LOCAL_API_URL_TAG in tags:
            return str(tags[names.LOCAL_API_URL_TAG])
    raise RuntimeError(f"no darkroom API at {endpoint_url}; is it a darkroom local cloud?")


def share_token(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    if "/share/" not in path:
        raise ValueError(f"{url} is not a darkroom share link (.../share/<token>)")
    return path.rsplit("/", 1)[1]


class StudioClient:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    def at(cls, target: ApiTarget) -> StudioClient:
        return cls(target.client())

    def upload(
        self,
        files: Iterable[Path],
        *,
        job_id: str | None = None,
        name: str | None = None,
        recipe: Mapping[str, Any] | None = None,
        transfer: Transfer | None = None,
        parallel: int = 4,
        on_job: Callable[[str, list[str]], None] | None = None,
        delivery: Mapping[str, Any] | None = None,
    ) -> str:
        """Create the job, PUT every file to its presigned URL (a large one in parts,
        then complete it), then submit it.

        Given the id of a job that exists and is not submitted yet (an upload that was
        interrupted), it resumes instead: fresh URLs for the files not uploaded yet, only
        those are sent (of a file uploaded in parts, only the parts S3 does not have).
        `on_job(job_id, skipped)` hears which job it is and which files were already
        there, before any transfer."""
        paths = {p.name: p for p in files}
        if not paths:
            raise ValueError("no RAW files to upload")
        existing = self.find(job_id, every_file=True) if job_id else None
        if existing is not None:
            answer = self._resume(existing, paths)
        else:
            body: dict[str, Any] = {
                "files": [{"name": n, "size": p.stat().st_size} for n, p in paths.items()]
            }
            if job_id:
                body["job_id"] = job_id
            if name:
                body["name"] = name
            if recipe is not None:
                body["recipe"] = dict(recipe)
            # client, deliver, share_expires_in, notify_client_on_reprocess (CreateJobIn).
            body.update(delivery or {})
            answer = self.api.call("POST", "/jobs", body)
        new_id = str(answer["job_id"])
        skipped = list(answer.get("uploaded", []))
        if on_job:
            on_job(new_id, skipped)
        if transfer:
            left = [p for n, p in paths.items() if n not in set(skipped)]
            held = sum(
                part["size"]
                for u in answer["uploads"]
                for part in (u.get("multipart") or {}).get("uploaded", [])
            )
            transfer.begin(sum(p.stat().st_size for p in left) - held, len(left))

        def one(upload: Mapping[str, Any]) -> None:
            path = paths[upload["name"]]
            if upload["method"] == "MULTIPART":
                done = self._upload_parts(new_id, upload, path, transfer, parallel)
            else:
                done = True
                try:
                    put_file(
                        upload["url"],
                        path,
                        transfer.advance if transfer else None,
                        headers=upload.get("headers"),
                    )
                except TransferError as exc:
                    # 412: the file is there already (a PUT whose answer was lost,
                    # retried); an upload URL never replaces a file, and submitting
                    # checks its size.
                    if exc.status != 412:
                        raise
            if transfer and done:
                transfer.file_done(upload["name"])

        # An answer carries a bounded number of URLs; the next resume has the rest.
        while True:
            with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
                for future in [pool.submit(one, u) for u in answer["uploads"]]:
                    future.result()
            if not answer.get("more"):
                break
            answer = self.api.call("POST", f"/jobs/{new_id}/uploads")
        self.api.call("POST", f"/jobs/{new_id}/submit")
        return new_id

    def _upload_parts(
        self,
        job_id: str,
        upload: Mapping[str, Any],
        path: Path,
        transfer: Transfer | None,
        parallel: int,
    ) -> bool:
        """PUT the parts a multipart plan lists, each read from the file as it is sent
        (memory stays flat), a few at once; then complete the upload if the plan listed
        every missing part. Whether the file is complete."""
        plan = upload["multipart"]
        etags = {p["part_number"]: p["etag"] for p in plan["uploaded"]}

        def part(p: Mapping[str, Any]) -> tuple[int, str]:
            offset = (p["part_number"] - 1) * plan["part_size"]
            etag = put_range(
                p["url"],
                path,
                offset,
                p["size"],
                transfer.advance if transfer else None,
                headers=p.get("headers"),
            )
            return p["part_number"], etag

        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(plan["parts"]) or 1))) as pool:
            for number, etag in pool.map(part, plan["parts"]):
                etags[number] = etag
        if not plan["all_parts"]:
            return False
        self.api.call(
            "POST",
            f"/jobs/{job_id}/files/{quote(upload['name'], safe='')}/complete",
            {"parts": [{"part_number": n, "etag": e} for n, e in sorted(etags.items())]},
        )
        return True

    def _resume(self, job: Mapping[str, Any], paths: Mapping[str, Path]) -> Any:
        """Fresh upload URLs for a declared job's missing files, once the folder is
        checked to hold the very files the job declared."""
        job_id = job["job_id"]
        if job["status"] != "CREATED":
            raise ValueError(f"job {job_id} is {job['status']}: already submitted")
        declared = {n: f.get("size") for n, f in (job.get("files") or {}).items()}
        local = {n: p.stat().st_size for n, p in paths.items()}
        if declared != local:
            differ = sorted(
                n for n in declared.keys() | local.keys() if declared.get(n) != local.get(n)
            )
            raise ValueError(
                f"job {job_id} declared other files than these (differing: "
                f"{', '.join(differ[:5])}{', ...' if len(differ) > 5 else ''}); "
                "upload this folder as a new job"
            )
        return self.api.call("POST", f"/jobs/{job_id}/uploads")

    def job(self, job_id: str, *, every_file: bool = False) -> dict[str, Any]:
        """The job with its first page of files; `every_file`: with all of them (the
        following pages read and merged in)."""
        view = dict(self.api.call("GET", f"/jobs/{job_id}"))
        cursor = view.get("files_next_cursor")
        if every_file and cursor:
            files = dict(view.get("files") or {})
            while cursor:
                page = self.api.call(
                    "GET", f"/jobs/{job_id}/files", query={"cursor": cursor, "limit": PAGE}
                )
                files.update(page["files"])
                cursor = page["next_cursor"]
            view["files"] = files
            view.pop("files_next_cursor")
        return view

    def find(self, job_id: str, *, every_file: bool = False) -> dict[str, Any] | None:
        try:
            return self.job(job_id, every_file=every_file)
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.api.call("GET", "/jobs", query={"limit": limit})["jobs"])

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_update: Callable[[dict[str, Any] | None], None] | None = None,
        since_execution: str | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is terminal under an execution other than `since_execution`.

        A poll the API could not answer (unreachable, a 5xx: a busy API times out at
        29 s) is not the job's answer: polling goes on until `timeout`, and only then is
        the last such error named."""
        deadline = time.monotonic() + timeout
        failed: ApiCallError | None = None
        while True:
            try:
                job = self.find(job_id)
            except ApiCallError as exc:
                if 0 < exc.status < 500:
                    raise
                failed = exc
            else:
                failed = None
                if on_update:
                    on_update(job)
                if (
                    job is not None
                    and job["status"] in TERMINAL
                    and job.get("execution_arn") != since_execution
                ):
                    return job
            if time.monotonic() > deadline:
                if failed is not None:
                    raise TimeoutError(
                        f"job {job_id}: no answer after {timeout:.0f}s (last: {failed})"
                    ) from failed
                status = job["status"] if job else "not found"
                raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f}s")
            time.sleep(poll)

    def delete(self, job_id: str) -> dict[str, Any]:
        """Erase the job: every version of its originals, its renditions, its shares and
        records. What was removed."""
        return dict(self.api.call("DELETE", f"/jobs/{job_id}"))

    def put_asset(self, name: str, path: Path) -> dict[str, Any]:
        """Upload a studio asset (a watermark PNG), replacing one of that name. Its
        pixels are checked here first: between the client and S3 nothing else looks."""
        from darkroom.imaging.watermark import WatermarkError, check_asset

        data = path.read_bytes()
        try:
            with check_asset(data) as mark:
                size = mark.size
        except WatermarkError as exc:
            raise ValueError(f"{path.name}: {exc}") from exc
        upload = self.api.call("PUT", f"/studio/assets/{name}", {"size": len(data)})
        put_file(upload["url"], path, headers=upload["headers"])
        return {"name": upload["name"], "bytes": len(data), "width": size[0], "height": size[1]}

    def assets(self) -> list[dict[str, Any]]:
        return list(self.api.call("GET", "/studio/assets")["assets"])

    def delete_asset(self, name: str) -> None:
        self.api.call("DELETE", f"/studio/assets/{name}")

    def reprocess(
        self,
        job_id: str,
        recipe: Mapping[str, Any] | None = None,
        files: str | list[str] | None = None,
    ) -> str:
        body: dict[str, Any] = {"recipe": dict(recipe)} if recipe is not None else {}
        if files is not None:
            body["files"] = files
        return str(self.api.call("POST", f"/jobs/{job_id}/reprocess", body)["execution_arn"])

    def share(
        self,
        job_id: str,
        expires_in: int | None = None,
        message: str | None = None,
        proofing: bool = False,
        password: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"expires_in": expires_in} if expires_in is not None else {}
        if message is not None:
            body["message"] = message
        if proofing:
            body["proofing"] = True
        if password is not None:
            body["password"] = password
        return dict(self.api.call("POST", f"/jobs/{job_id}/shares", body))

    def favourites(self, job_id: str) -> dict[str, Any]:
        return dict(self.api.call("GET", f"/jobs/{job_id}/favourites"))

    def shares(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.api.call("GET", f"/jobs/{job_id}/shares")["shares"])

    def extend(self, job_id: str, share_id: str, extend_by: int) -> dict[str, Any]:
        path = f"/jobs/{job_id}/shares/{share_id}/extend"
        return dict(self.api.call("POST", path, {"extend_by": extend_by}))

    def set_share_password(
        self, job_id: str, share_id: str, password: str | None
    ) -> dict[str, Any]:
        path = f"/jobs/{job_id}/shares/{share_id}/password"
        return dict(self.api.call("PUT", path, {"password": password}))

    def revoke(self, job_id: str, share_id: str) -> None:
        self.api.call("DELETE", f"/jobs/{job_id}/shares/{share_id}")

    @staticmethod
    def shared(share_url: str, cursor: str | None = None) -> dict[str, Any]:
        """A page of what a share link offers, as its client sees it: no credentials."""
        share_token(share_url)
        api = ApiClient(share_url)
        query = {"cursor": cursor, "limit": PAGE} if cursor else {"limit": PAGE}
        return dict(api.fetch("GET", f"{share_url.split('?', 1)[0]}?{urlencode(query)}"))

    @classmethod
    def download_link(
        cls, url: str, dest: Path, transfer: Transfer | None = None
    ) -> DownloadResult:
        """What a share link offers, downloaded as its client would."""
        return download_shared(lambda cursor: cls.shared(url, cursor), dest, transfer)

    def download(
        self, job_or_link: str, dest: Path, transfer: Transfer | None = None
    ) -> DownloadResult:
        """Every rendition of a finished job (or of a share link) as dest/<rendition>/<file>."""
        if job_or_link.startswith(("http://", "https://")):
            return self.download_link(job_or_link, dest, transfer)
        try:
            share = self.share(job_or_link, expires_in=DOWNLOAD_SHARE_SECONDS)
        except ApiCallError as exc:
            raise self._nothing_to_download(job_or_link, exc) from exc
        try:
            return self.download_link(share["url"], dest, transfer)
        finally:
            self.revoke(job_or_link, share["share_id"])

    def trace(
        self, job_id: str, file: str | None = None, *, originals: bool = False
    ) -> lineage.Trace:
        """Every delivered file of the job (or only `file`) with its lineage, each
        rendition hashed as a client would download it and checked against its run's
        manifest; with `originals`, each file's RAW original too."""

        def page(cursor: str | None) -> Mapping[str, Any]:
            query = {"file": file, "cursor": cursor, "limit": TRACE_PAGE}
            if originals:
                query["originals"] = "true"
            return dict(self.api.call("GET", f"/jobs/{job_id}/trace", query=query))

        return lineage.trace_job(shared_pages(page), manifest_at, digest_at)

    def _nothing_to_download(self, job_id: str, refused: ApiCallError) -> ApiCallError:
        """The API's refusal to share, in a downloader's words: it speaks of sharing."""
        if refused.status != 409:
            return refused
        job = self.find(job_id)
        status = job["status"] if job else "not submitted"
        if status in TERMINAL:
            why = (
                f"job {job_id} is {status} with nothing delivered; "
                f"`darkroom status {job_id}` says why"
            )
        else:
            why = (
                f"job {job_id} is still {status}: nothing to download yet; wait for it "
                f"with `darkroom watch {job_id}`, then download"
            )
        return ApiCallError(refused.status, refused.code, why, {})


# Files per page when walking a share or a job's files (the API's largest page).
PAGE = 500


@dataclass(frozen=True)
class DownloadResult:
    paths: list[Path]  # every rendition the share offers, where it now is
    skipped: int  # of them, already there complete (a download run again)


def shared_pages(
    page: Callable[[str | None], Mapping[str, Any]],
) -> Iterator[Mapping[str, Any]]:
    """Every page of a share, from the first (`page(None)`) until next_cursor is null."""
    cursor: str | None = None
    while True:
        document = page(cursor)
        yield document
        cursor = document.get("next_cursor")
        if not cursor:
            return


def download_shared(
    page: Callable[[str | None], Mapping[str, Any]],
    dest: Path,
    transfer: Transfer | None = None,
) -> DownloadResult:
    """Fetch what a share offers into dest/<rendition>/<stem>.<ext>, plus manifest.json.

    Every page is read first (their links are stable, so none goes stale meanwhile),
    then each rendition is fetched through its link. Each file is written whole or not
    at all, and one already there at its size is skipped: run again after an
    interruption, it fetches only what is missing."""
    planned: list[tuple[Path, Mapping[str, Any]]] = []
    entries = []
    summary: dict[str, Any] = {}
    for document in shared_pages(page):
        summary = dict(document.get("job", {}))
        for entry in document.get("files", []):
            name = keys.validate_file_name(str(entry["name"]))
            written = []
            for rendition in entry.get("renditions", []):
                label = str(rendition["rendition"])
                # The server names the paths; it must never name one outside `dest`.
                if not NAME_PATTERN.fullmatch(label):
                    raise ValueError(f"unexpected rendition name {label!r}")
                suffix = Path(keys.validate_file_name(str(rendition["filename"]))).suffix
                path = dest / label / f"{Path(name).stem}{suffix}"
                planned.append((path, rendition))
                written.append(
                    {
                        "rendition": label,
                        "path": str(path.relative_to(dest)),
                        **{
                            k: rendition.get(k)
                            for k in ("width", "height", "bytes", "content_type")
                        },
                    }
                )
            entries.append({"name": name, "status": entry.get("status"), "renditions": written})
    missing = [(p, r) for p, r in planned if not _complete(p, r.get("bytes"))]
    if transfer:
        transfer.begin(sum(int(r.get("bytes") or 0) for _, r in missing), len(missing))
    for path, rendition in missing:
        get_file(str(rendition["url"]), path, transfer.advance if transfer else None)
        if transfer:
            transfer.file_done(path.name)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = dest / "manifest.json"
    partial = manifest.with_name(manifest.name + ".part")
    partial.write_text(json.dumps({**summary, "files": entries}, indent=2) + "\n")
    partial.replace(manifest)
    return DownloadResult([p for p, _ in planned], len(planned) - len(missing))


# Files per trace page: each page's renditions are hashed before the next is asked for,
# so its presigned URLs are fresh.
TRACE_PAGE = 25


@contextmanager
def _read_as_lineage() -> Iterator[None]:
    """A transfer's failure as trace judges it: a 404 is an object gone; anything else
    (a GET breaking off midway, its retries spent) leaves it unread, not condemned."""
    try:
        yield
    except TransferError as exc:
        raise (lineage.Gone if exc.status == 404 else lineage.Unreadable)(str(exc)) from exc


def digest_at(url: str) -> tuple[str, int]:
    with _read_as_lineage():
        return digest_url(url)


def manifest_at(url: str) -> Any:
    with _read_as_lineage():
        body = read_url(url)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise lineage.Unreadable(f"not JSON ({exc})") from exc


def _complete(path: Path, size: Any) -> bool:
    """Whether a rendition is there already, whole (a download run before)."""
    try:
        return size is not None and path.stat().st_size == int(size)
    except OSError:
        return False
