"""The API from the client side: JSON calls (SigV4-signed for a deployed stack) and
streaming transfers to and from presigned S3 URLs. Standard library only (with
darkroom.digests, which is too)."""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urljoin, urlsplit
from urllib.request import Request, urlopen

from darkroom.digests import sha256_chunks

# (method, url, headers, body) -> the headers to send, authorisation included
Signer = Callable[[str, str, dict[str, str], bytes], dict[str, str]]
Progress = Callable[[int], None]  # bytes moved since the last call (negative: rolled back)

T = TypeVar("T")
CHUNK = 1024 * 1024
TRANSFER_ATTEMPTS = 3
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ApiCallError(Exception):
    """The API answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str, details: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details)


class TransferError(Exception):
    """An upload to or a download from a presigned URL failed (status: S3's answer, if
    one came)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def sigv4_signer(session: Any, region: str) -> Signer:
    """Signs for API Gateway's IAM authorisation with the session's credentials."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials to sign API requests with")

    def sign(method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())

    return sign


class ApiClient:
    def __init__(self, base_url: str, signer: Signer | None = None, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = signer
        self._timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        # Whatever a user typed as an id reaches the API as one path segment, escaped (the
        # API answers a bad id with its own error); what callers escaped stays escaped.
        url = self.base_url + quote(path, safe="/%")
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return self.fetch(method, url, body)

    def fetch(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._signer is not None:
            headers = self._signer(method, url, headers, data)
        request = Request(
            url, data=data if body is not None else None, method=method, headers=headers
        )
        try:
            with urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except HTTPError as exc:
            raw = exc.read()
            try:
                document = json.loads(raw)
            except ValueError:
                document = {}
            if not isinstance(document, dict):
                document = {}
            raise ApiCallError(
                exc.code,
                str(document.get("error", "http_error")),
                str(document.get("message") or f"HTTP {exc.code}"),
                {k: v for k, v in document.items() if k not in {"error", "message"}},
            ) from exc
        except (URLError, OSError) as exc:
            raise ApiCallError(0, "unreachable", f"cannot reach {url}: {exc}", {}) from exc
        return json.loads(raw) if raw else None


def put_file(
    url: str,
    path: Path,
    on_progress: Progress | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """PUT a file to a presigned URL, streamed, with the headers it was signed for (the
    upload's `headers`; Content-Length is always the file's size)."""
    size = path.stat().st_size
    put_range(url, path, 0, size, on_progress, headers)


def put_range(
    url: str,
    path: Path,
    offset: int,
    length: int,
    on_progress: Progress | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """PUT `length` bytes of a file from `offset` (a whole file, or one part of a
    multipart upload) to a presigned URL, streamed; the ETag S3 answers. Retried on a
    network error or a 5xx, sending the bytes again."""
    sent = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
    declared = {k.lower(): v for k, v in (headers or {}).items()}.get("content-length")
    if declared is not None and int(declared) != length:
        raise TransferError(f"{path.name} is {length} bytes; its upload URL is for {declared}")
    return _with_retries(
        lambda report: _put_once(url, path, offset, length, sent, report), on_progress
    )


def get_file(url: str, dest: Path, on_progress: Progress | None = None) -> int:
    """GET a URL into `dest`, following redirects; the bytes written. Written whole or
    not at all: into a ".part" file beside it, renamed only once complete, so an
    interrupted download never leaves a partial file under the final name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    written = _with_retries(lambda report: _get_once(url, partial, report), on_progress)
    partial.replace(dest)
    return written


def _with_retries(attempt: Callable[[Progress], T], on_progress: Progress | None) -> T:
    for n in range(1, TRANSFER_ATTEMPTS + 1):
        moved = 0

        def report(nbytes: int) -> None:
            nonlocal moved
            moved += nbytes
            if on_progress:
                on_progress(nbytes)

        try:
            return attempt(report)
        except (OSError, http.client.HTTPException, TransferError) as exc:
            if on_progress and moved:
                on_progress(-moved)
            status = exc.status if isinstance(exc, TransferError) else None
            retryable = status is None or status >= 500
            if n == TRANSFER_ATTEMPTS or not retryable:
                raise TransferError(str(exc), status) from exc
            time.sleep(0.5 * 2**n)
    raise AssertionError("unreachable")


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return cls(parts.netloc, timeout=120), target


def _put_once(
    url: str, path: Path, offset: int, length: int, headers: Mapping[str, str], report: Progress
) -> str:
    connection, target = _connection(url)
    try:
        connection.putrequest("PUT", target, skip_accept_encoding=True)
        connection.putheader("Content-Length", str(length))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        with path.open("rb") as source:
            source.seek(offset)
            left = length
            while left and (chunk := source.read(min(CHUNK, left))):
                connection.send(chunk)
                left -= len(chunk)
                report(len(chunk))
        if left:
            raise TransferError(f"{path.name} ended {left} bytes early; it changed while sent")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise TransferError(
                f"upload of {path.name}: HTTP {response.status} {body[:300]!r}", response.status
            )
        return str(response.getheader("ETag") or "")
    finally:
        connection.close()


def _get_once(url: str, dest: Path, report: Progress) -> int:
    """GET into `dest`, following redirects (a share's stable links answer 302 to a
    presigned URL, fresh each time); `dest` is opened only once the answer is a 200."""
    chunks = _chunks(url)
    with closing(chunks):
        first = next(chunks, b"")
        written = 0
        with dest.open("wb") as sink:
            for chunk in itertools.chain((first,), chunks):
                sink.write(chunk)
                written += len(chunk)
                report(len(chunk))
        return written


def digest_url(url: str, on_progress: Progress | None = None) -> tuple[str, int]:
    """The SHA-256 (hex) and length of what a URL serves, streamed, never on disk.
    Retried like a download; a body that breaks off is hashed again from the start."""
    return _with_retries(lambda report: _digest_once(url, report), on_progress)


def _digest_once(url: str, report: Progress) -> tuple[str, int]:
    def reported() -> Iterator[bytes]:
        for chunk in _chunks(url):
            report(len(chunk))
            yield chunk

    return sha256_chunks(reported())


def read_url(url: str) -> bytes:
    """What a URL serves, whole in memory (a JSON document), retried like a download."""
    return _with_retries(lambda report: b"".join(_chunks(url)), None)


def _chunks(url: str) -> Generator[bytes]:
    """A GET's body as it arrives, following redirects; an answer other than 200 raises
    TransferError with its status before any chunk."""
    redirected = 0
    for _ in range(MAX_REDIRECTS + 1):
        connection, target = _connection(url)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            if response.status in _REDIRECTS:
                location = response.getheader("location")
                redirected = response.status
                response.read()
                if not location:
                    raise TransferError("download: a redirect without a Location", response.status)
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise TransferError(
                    f"download: HTTP {response.status} {response.read()[:300]!r}", response.status
                )
            while chunk := response.read(CHUNK):
                yield chunk
            return
        finally:
            connection.close()
    raise TransferError(f"download: more than {MAX_REDIRECTS} redirects", redirected)
