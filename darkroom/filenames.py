"""What a delivered file is called: the recipe's `filename` template.

Studios name deliveries their own way (`Smith-Wedding-0001.jpg`, `20250301_IMG_0001.jpg`):
the template names what a client downloads, a ZIP's entries and the share's links'
download names; the renditions' S3 keys stay the original's stem, so changing the
template never moves an object. Fields:

- `{stem}`: the original's name without its extension (IMG_0001);
- `{seq}`: the file's number in the job, by original name, from 1, zero-padded to four
  digits (`{seq:6}` for six): the same in every shard and every reprocess of the job's
  files;
- `{job}`: the job's name (or its id when it has none), made safe for a file name;
- `{rendition}`: the rendition's name (web, thumb, ...);
- `{date}`: the day the job was created, YYYYMMDD.

Every file must get its own name, so a template names `{stem}` or `{seq}`; that, and
every field being one of these, is checked when the recipe is parsed.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

FIELDS = frozenset({"stem", "seq", "job", "rendition", "date"})
DEFAULT_TEMPLATE = "{stem}"
MAX_TEMPLATE = 128
SEQ_DIGITS = 4
_UNSAFE = frozenset('/\\:*?"<>|')


def template_problem(template: str) -> str | None:
    """Why `template` cannot name deliveries, or None."""
    if not template or len(template) > MAX_TEMPLATE:
        return f"must be 1-{MAX_TEMPLATE} characters"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"is not a valid template ({exc})"
    named = set()
    for literal, field, spec, conversion in parts:
        if any(ord(c) < 32 or c in _UNSAFE for c in literal):
            return 'must not contain / \\ : * ? " < > | or control characters'
        if field is None:
            continue
        if field not in FIELDS:
            return f"unknown field {{{field}}} (fields: {', '.join(sorted(FIELDS))})"
        if conversion or (spec and not (field == "seq" and spec.isdigit() and 1 <= int(spec) <= 9)):
            return f"{{{field}}} takes no format (only {{seq:N}}, N digits 1-9)"
        named.add(field)
    if not named & {"stem", "seq"}:
        return "must name {stem} or {seq}: otherwise every file gets the same name"
    return None


def _safe(text: str) -> str:
    return "".join("_" if ord(c) < 32 or c in _UNSAFE else c for c in text).strip()


def delivery_stem(
    template: str,
    *,
    file_name: str,
    seq: int | None,
    job: str,
    rendition: str,
    created_at: str | None,
) -> str:
    """The name, without extension, a file's rendition is delivered under."""
    values = {
        "stem": PurePosixPath(file_name).stem,
        "job": _safe(job)[:100],
        "rendition": rendition,
        "date": (created_at or "")[:10].replace("-", ""),
    }
    out = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if field == "seq":
            digits = int(spec) if spec else SEQ_DIGITS
            out.append(f"{seq or 0:0{digits}d}")
        elif field is not None:
            out.append(values.get(field, ""))
    return "".join(out) or PurePosixPath(file_name).stem


class Naming:
    """One job's template, ready to name its files' deliveries."""

    def __init__(self, template: str | None, job: str, created_at: str | None) -> None:
        self.template = template or DEFAULT_TEMPLATE
        self.job = job
        self.created_at = created_at

    @classmethod
    def of(cls, recipe: Mapping[str, Any] | None, job_name: str, created_at: str | None) -> Naming:
        return cls((recipe or {}).get("filename"), job_name, created_at)

    def stem(self, file_name: str, seq: int | None, rendition: str) -> str:
        return delivery_stem(
            self.template,
            file_name=file_name,
            seq=seq,
            job=self.job,
            rendition=rendition,
            created_at=self.created_at,
        )

    def download(self, file_name: str, seq: int | None, rendition: str, suffix: str) -> str:
        """One rendition downloaded on its own: the template, and the rendition after it
        when the template does not name it (a photo's web and full versions must not
        overwrite each other in a Downloads folder): IMG_0001-web.jpg by default."""
        stem = self.stem(file_name, seq, rendition)
        if "{rendition}" not in self.template:
            stem = f"{stem}-{rendition}"
        return f"{stem}{suffix}"


def job_naming(job: Any) -> Naming:
    """How a job's (darkroom.jobs.Job) deliveries are named: its recipe's template."""
    return Naming.of(job.recipe, job.name or job.job_id, job.created_at)
