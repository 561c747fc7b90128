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


# What a browser shows in an <img>: the viewer never picks a TIFF master.
VIEWABLE_TYPES = frozenset({"image/jpeg", "image/webp", "image/png"})
_VIEWABLE = frozenset({".jpg", ".jpeg", ".webp", ".png"})


def recipe_order(recipe: Recipe | None) -> dict[str, int]:
    """Each rendition's place in the recipe (the default recipe's when it no longer
    parses): a client sees them as the photographer listed them, not by name."""
    made = recipe.renditions if recipe else Recipe().renditions
    return {r.name: i for i, r in enumerate(made)}


def view_rendition(renditions: list[SharedRendition], recipe: Recipe | None) -> str | None:
    """The rendition the viewer shows, among those a browser can display: the one named
    or labelled "web"; else the largest downscaled one (the recipe gives it a long
    edge, not "full"); else the largest. None when none is displayable (TIFF only)."""
    viewable = [
        r
        for r in renditions
        if r.content_type in VIEWABLE_TYPES
        # An older record may lack its type: its saved name's extension tells.
        or (r.content_type is None and PurePosixPath(r.filename).suffix.lower() in _VIEWABLE)
    ]
    if not viewable:
        return None
    for r in viewable:
        if r.rendition == "web" or r.label.casefold() == "web":
            return r.rendition
    full = {r.name for r in recipe.renditions if r.long_edge == "full"} if recipe else {"full"}
    downscaled = [r for r in viewable if r.rendition not in full]

    def pixels(r: SharedRendition) -> int:
        return (r.width or 0) * (r.height or 0)

    return max(downscaled or viewable, key=pixels).rendition


def shared_file(
    job: Job, record: FileRecord, links: str, names: Naming, recipe: Recipe | None
) -> SharedFile | None:
    prefix = keys.processed_prefix(job.job_id)
    quoted = quote(record.name, safe="")
    base = f"{links}/files/{quoted}"
    renditions = []
    smallest: tuple[int, str] | None = None
    order = recipe_order(recipe)
    for rendition, output in sorted(
        record.delivered.items(), key=lambda item: (order.get(item[0], len(order)), item[0])
    ):
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
        view_rendition=view_rendition(renditions, recipe),
        page_url=f"{links}/view/{quoted}",
    )
