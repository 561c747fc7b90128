"""A delivered file's lineage, read back from its run's manifest, and each of its
renditions checked against it: the bytes served now, hashed, against the SHA-256 and
size the worker recorded as it uploaded them.

Pure: what reads the bytes comes in as `fetch`, so the verdicts are testable without a
network. A manifest written before lineage was recorded lacks some fields: each reads
as "not recorded", never as a failure to trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

NOT_RECORDED = "not recorded"


class Verdict(StrEnum):
    OK = "ok"  # the bytes served are those recorded
    TAMPERED = "tampered"  # served, but not the bytes (or not the size) recorded
    MISSING = "missing"  # recorded, but nothing is served there any more
    # Could not be read whole (a transfer failing midway, an unreadable manifest):
    # neither ok nor tampered; running the trace again may settle it.
    UNVERIFIED = "unverified"
    # The manifest predates renditions' digests (and the size matched, or none was
    # recorded): nothing to check the bytes against.
    NOT_RECORDED = "not recorded"


# What fails `darkroom trace`: evidence that what is delivered is not what was made.
FAILING = frozenset({Verdict.TAMPERED, Verdict.MISSING})


class Gone(Exception):
    """The object is not there (S3 answered 404)."""


class Unreadable(Exception):
    """The object could not be read whole; the message says why."""


# url -> (SHA-256 hex, bytes) of what it serves; raises Gone or Unreadable.
Fetch = Callable[[str], tuple[str, int]]


@dataclass
class RenditionCheck:
    rendition: str
    key: str | None
    verdict: Verdict
    sha256: str | None = None  # as recorded
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    served_sha256: str | None = None  # as read now
    served_bytes: int | None = None
    reason: str | None = None


@dataclass
class FileLineage:
    name: str
    status: str
    run: str | None  # the run whose renditions are delivered (None: nothing delivered)
    original_version: str | None = None
    original_sha256: str | None = None
    sidecar: str | None = None
    sidecar_version: str | None = None
    recipe_sha256: str | None = None
    # The run's resolved recipe, when this file's digest is that recipe's.
    recipe: dict[str, Any] | None = None
    software: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    renditions: list[RenditionCheck] = field(default_factory=list)
    problem: str | None = None  # why the lineage itself is incomplete, if it is
    # The RAW original hashed against the manifest's SHA-256 (only when asked for).
    original: RenditionCheck | None = None

    @property
    def verdicts(self) -> list[Verdict]:
        checks = [*self.renditions, *([self.original] if self.original else [])]
        return [c.verdict for c in checks]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def run_head(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A run's manifest without its files: the run's own record."""
    return {k: v for k, v in manifest.items() if k != "files"}


def entries_by_name(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, list):
        return {}
    return {str(e["name"]): e for e in files if isinstance(e, Mapping) and "name" in e}


def trace_file(
    traced: Mapping[str, Any],
    manifest: Mapping[str, Any] | None,
    fetch: Fetch,
    *,
    manifest_problem: str | None = None,
) -> FileLineage:
    """One file of a trace page: its lineage from `manifest` (its delivered run's; None
    when that could not be read, `manifest_problem` saying why), and each delivered
    rendition verified through `fetch`."""
    name = str(traced["name"])
    lineage = FileLineage(
        name=name, status=str(traced.get("status")), run=traced.get("delivered_run")
    )
    served = {str(r["rendition"]): r for r in traced.get("renditions", [])}
    if lineage.run is None:
        return lineage
    if manifest is None:
        lineage.problem = manifest_problem or "its run's manifest could not be read"
        lineage.renditions = [
            RenditionCheck(r, served[r].get("key"), Verdict.UNVERIFIED, reason=lineage.problem)
            for r in sorted(served)
        ]
        return lineage
    entry = entries_by_name(manifest).get(name)
    if entry is None:
        lineage.problem = f"run {lineage.run}'s manifest has no entry for {name}"
        lineage.renditions = [
            RenditionCheck(r, served[r].get("key"), Verdict.NOT_RECORDED, reason=lineage.problem)
            for r in sorted(served)
        ]
        return lineage
    _read_entry(lineage, entry, manifest)
    if isinstance(traced.get("original"), Mapping):
        lineage.original = _check_original(lineage, traced["original"], fetch)
    outputs = entry.get("outputs")
    recorded: Mapping[str, Any] = outputs if isinstance(outputs, Mapping) else {}
    for rendition in sorted(set(recorded) | set(served)):
        lineage.renditions.append(
            _check(rendition, recorded.get(rendition), served.get(rendition), fetch)
        )
    return lineage


def _read_entry(
    lineage: FileLineage, entry: Mapping[str, Any], manifest: Mapping[str, Any]
) -> None:
    lineage.original_version = entry.get("original_version")
    lineage.original_sha256 = entry.get("original_sha256")
    lineage.sidecar = entry.get("sidecar")
    lineage.sidecar_version = entry.get("sidecar_version")
    lineage.recipe_sha256 = entry.get("recipe_sha256")
    lineage.software = dict(entry.get("software") or {})
    lineage.timings = dict(entry.get("timings") or {})
    if lineage.recipe_sha256 and lineage.recipe_sha256 == manifest.get("recipe_sha256"):
        lineage.recipe = manifest.get("recipe_resolved")


def _check(
    rendition: str,
    recorded: Mapping[str, Any] | None,
    served: Mapping[str, Any] | None,
    fetch: Fetch,
) -> RenditionCheck:
    if recorded is None:
        assert served is not None
        return RenditionCheck(
            rendition,
            served.get("key"),
            Verdict.NOT_RECORDED,
            reason="delivered, but not in its run's manifest",
        )
    check = RenditionCheck(
        rendition,
        recorded.get("key"),
        Verdict.UNVERIFIED,
        sha256=recorded.get("sha256"),
        bytes=recorded.get("bytes"),
        width=recorded.get("width"),
        height=recorded.get("height"),
    )
    if served is None or served.get("key") != check.key:
        check.verdict = Verdict.MISSING
        check.reason = "recorded in the manifest, but no longer delivered"
        return check
    if _hashed(check, str(served["url"]), fetch, gone="the object is gone"):
        _judge(check, mismatch="its bytes are not those recorded")
    return check


def _hashed(check: RenditionCheck, url: str, fetch: Fetch, *, gone: str) -> bool:
    """What `url` serves, hashed into `check`; False, with the verdict set, when it
    could not be read."""
    try:
        check.served_sha256, check.served_bytes = fetch(url)
    except Gone:
        check.verdict = Verdict.MISSING
        check.reason = gone
        return False
    except Unreadable as exc:
        check.reason = f"could not be read whole: {exc}"
        return False
    return True


def _judge(check: RenditionCheck, *, mismatch: str) -> None:
    """The verdict on bytes read: their size, then their digest, against the record."""
    if check.bytes is not None and check.served_bytes != check.bytes:
        check.verdict = Verdict.TAMPERED
        check.reason = f"{check.served_bytes} bytes served, {check.bytes} recorded"
    elif check.sha256 is None:
        check.verdict = Verdict.NOT_RECORDED
        check.reason = "the manifest records no SHA-256 for it"
    elif check.served_sha256 != check.sha256:
        check.verdict = Verdict.TAMPERED
        check.reason = mismatch
    else:
        check.verdict = Verdict.OK


ORIGINAL = "original"


def _check_original(
    lineage: FileLineage, served: Mapping[str, Any], fetch: Fetch
) -> RenditionCheck:
    """The RAW original as S3 holds it now at the version the job registered, against
    what the run recorded it developed: that version and its SHA-256."""
    check = RenditionCheck(
        ORIGINAL, served.get("key"), Verdict.UNVERIFIED, sha256=lineage.original_sha256
    )
    registered = served.get("version_id")
    if lineage.original_version and registered and registered != lineage.original_version:
        check.verdict = Verdict.TAMPERED
        check.reason = (
            f"the run developed version {lineage.original_version}; the job's original is "
            f"now version {registered}"
        )
        return check
    # Unreadable includes an original in an archive class, to be restored first.
    if _hashed(check, str(served["url"]), fetch, gone="the original is gone"):
        # No size is recorded for an original: its digest alone judges it.
        _judge(check, mismatch="its bytes are not those the run developed")
        check.bytes = check.served_bytes
    return check


def tally(files: list[FileLineage]) -> dict[str, int]:
    """Checks (renditions, and originals where asked for) by verdict, every verdict
    named (0 when none)."""
    counts = {str(v): 0 for v in Verdict}
    for lineage in files:
        for verdict in lineage.verdicts:
            counts[str(verdict)] += 1
    return counts


@dataclass
class Trace:
    """A job's delivered files, each with its lineage and verified renditions, and the
    record of each run they come from (its manifest without the files)."""

    job_id: str
    status: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[FileLineage] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return tally(self.files)

    @property
    def failed(self) -> bool:
        return any(v in FAILING for f in self.files for v in f.verdicts)

    @property
    def unverified(self) -> bool:
        return any(v is Verdict.UNVERIFIED for f in self.files for v in f.verdicts)

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "runs": self.runs,
            "files": [f.as_json() for f in self.files],
            "counts": self.counts,
        }


def trace_job(
    pages: Iterable[Mapping[str, Any]],
    read_manifest: Callable[[str], Mapping[str, Any]],
    fetch: Fetch,
    *,
    at_once: int = 4,
) -> Trace:
    """Every file of the trace `pages` (the API's, in order), each verified before the
    next page is read so its URLs are fresh. Each run's manifest is read once, through
    `read_manifest(url)` (raising Unreadable when it cannot be); `at_once` files are
    verified side by side."""
    trace: Trace | None = None
    manifests: dict[str, tuple[Mapping[str, Any] | None, str | None]] = {}
    with ThreadPoolExecutor(at_once, thread_name_prefix="trace") as pool:
        for page in pages:
            if trace is None:
                trace = Trace(job_id=str(page["job_id"]), status=str(page["status"]))
            for run, url in page.get("manifests", {}).items():
                if run not in manifests:
                    manifests[run] = _manifest(url, read_manifest)
                    document, problem = manifests[run]
                    trace.runs[run] = run_head(document) if document else {"problem": problem}

            def one(traced: Mapping[str, Any]) -> FileLineage:
                document, problem = manifests.get(str(traced.get("delivered_run")), (None, None))
                return trace_file(traced, document, fetch, manifest_problem=problem)

            trace.files.extend(pool.map(one, page.get("files", [])))
    if trace is None:
        raise ValueError("the API answered no page")
    return trace


def _manifest(
    url: str, read: Callable[[str], Mapping[str, Any]]
) -> tuple[Mapping[str, Any] | None, str | None]:
    try:
        document = read(url)
    except Gone:
        return None, "its run's manifest is gone"
    except Unreadable as exc:
        return None, f"its run's manifest could not be read: {exc}"
    if not isinstance(document, Mapping):
        return None, "its run's manifest is not a JSON object"
    return document, None
