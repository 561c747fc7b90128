"""What a share offers of each file, as stable links: the links a page lists, and the
names and dispositions its redirects give. Pure: no AWS, no request."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from urllib.parse import quote

from pydantic import BaseModel

from darkroom import keys
from darkroom.api.models import SharedFile, SharedRendition
from darkroom.filenames import Naming
from darkroom.jobs import FileRecord, Job
from darkroom.recipes import Recipe, RecipeError, label_of, parse_recipe


def recipe_of(job: Job) -> Recipe | None:
    """The job's recipe, for its labels; a record that no longer parses (a recipe from
    an older version) gives the default labels rather than no page."""
    try:
        return parse_recipe(job.recipe)
    except RecipeError:
        return None


def disposition(kind: str, filename: str) -> str:
    """Content-Disposition (attachment or inline) naming the file, with an ASCII
    fallback for old clients."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# The files of a share's page stop short of this, so that with the rest of the page
# (the job, its ZIPs, the cursor: a few KB) the JSON stays under 1 MB.
PAGE_FILES_BYTES = 1_000_000 - 50_000


def encoded(model: BaseModel) -> str:
    """A model as the resolver sends it (its default serializer: compact, ASCII)."""
    return json.dumps(model.model_dump(mode="json"), separators=(",", ":"))


def download_name(names: Naming, record: FileRecord, rendition: str, key: str) -> str:
    """What a rendition saves as: the recipe's filename template, the rendition when the
    template does not name it, the format's extension (IMG_0001-web.jpg by default)."""
    return names.download(record.name, record.seq, rendition, PurePosixPath(key).suffix)


def archive_name(job: Job, rendition: str) -> str:
    title = "".join(
        "_" if ord(c) < 32 or c in '/\\:*?"<>|' else c for c in (job.name or job.job_id)
    )
    return f"{title.strip()[:100] or job.job_id}-{rendition}.zip"


def shared_file(
    job: Job, record: FileRecord, links: str, names: Naming, recipe: Recipe | None
) -> SharedFile | None:
    prefix = keys.processed_prefix(job.job_id)
    base = f"{links}/files/{quote(record.name, safe='')}"
    renditions = []
    smallest: tuple[int, str] | None = None
    for rendition, output in sorted(record.delivered.items()):
        # Only this job's objects, whatever its record says.
        if not output.key.startswith(prefix):
            continue
        url = f"{base}/{quote(rendition, safe='')}"
        renditions.append(
            SharedRendition.of_output(
                rendition,
                label_of(rendition, recipe),
                download_name(names, record, rendition, output.key),
                url,
                output.model_dump(),
            )
        )
        pixels = (output.width or 0) * (output.height or 0)
        if smallest is None or pixels < smallest[0]:
            smallest = (pixels, url)
    if not renditions:
        return None
    return SharedFile(
        name=record.name,
        renditions=renditions,
        preview_url=smallest[1] if smallest else None,
    )
