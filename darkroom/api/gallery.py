"""The client's gallery page: previews, view and download links of a shared job's page
of files, and its download-all ZIPs, in plain HTML.

Every link is a stable share link (never a presigned URL), every value from the job is
escaped. The page works without script: a "More photos" link opens the next page. With
script, the one static file gallery.js (no inline script; the CSP names that file
alone) fetches the next pages as JSON while the client scrolls and appends them. The
page's URL carries the share token, so it sends no referrer and asks not to be indexed
or framed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib import resources
from urllib.parse import urlencode, urlsplit

from darkroom.api.models import SharedFile, SharedJob

SCRIPT = resources.files("darkroom.api").joinpath("gallery.js").read_text(encoding="utf-8")

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
header p{color:#555}
ul.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1.5rem;
list-style:none;padding:0}
figure{margin:0}
figure img{width:100%;height:14rem;object-fit:contain;background:#f3f3f3}
figcaption{margin-top:.5rem;font-weight:600;word-break:break-all}
figure ul{list-style:none;padding:0;margin:.25rem 0 0}
figure li{margin:.15rem 0}
ul.archives{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
a.more{display:block;margin:2rem auto;text-align:center;font-size:1.1rem}
""".strip()
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()


@dataclass(frozen=True)
class Page:
    shared: SharedJob
    share_url: str  # the share's own link, without a query
    script_url: str
    limit: int | None = None  # as the client asked, kept on the next page's link

    @property
    def more_url(self) -> str | None:
        cursor = self.shared.next_cursor
        if cursor is None:
            return None
        query = {"cursor": cursor, **({"limit": str(self.limit)} if self.limit else {})}
        return f"{self.share_url}?{urlencode(query)}"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _when(iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.strftime("%d %b %Y, %H:%M UTC")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(page: Page, bucket_origin: str) -> str:
    # Images load through the API's stable links, which redirect to the bucket: a
    # redirect's target must be allowed too.
    api = origin(page.share_url)
    return "; ".join(
        [
            "default-src 'none'",
            f"img-src {' '.join(sorted({api, bucket_origin}))}",
            f"script-src {page.script_url}",
            f"connect-src {api}",
            f"style-src 'sha256-{_CSS_HASH}'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _item(f: SharedFile) -> str:
    """One file; gallery.js builds the same markup for the pages it appends."""
    name = escape(f.name)
    links = "".join(
        f'<li><a href="{escape(r.url)}">{escape(r.rendition)}</a> '
        f"({r.width or '?'}\u00d7{r.height or '?'}, {size(r.bytes or 0)}) "
        f'<a href="{escape(r.download_url)}" download="{escape(r.filename)}">download</a></li>'
        for r in f.renditions
    )
    preview = (
        f'<img src="{escape(f.preview_url)}" alt="{name}" loading="lazy">' if f.preview_url else ""
    )
    return f"<li><figure>{preview}<figcaption>{name}</figcaption><ul>{links}</ul></figure></li>"


def render(page: Page) -> str:
    shared = page.shared
    job = shared.job
    title = escape(job.name or job.job_id)
    done, failed = job.files_done, job.files_failed
    summary = f"{done} photo{'s' if done != 1 else ''}" + (
        f", {failed} could not be developed" if failed else ""
    )
    archives = "".join(
        f'<li><a href="{escape(a.url)}">Download all: {escape(rendition)}</a> '
        f"({a.files} photos, {size(a.bytes)})</li>"
        for rendition, a in shared.archives.items()
    )
    more = page.more_url
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title>
<style>{_CSS}</style>
<script src="{escape(page.script_url)}" defer></script>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{escape(summary)}. This share link expires on {escape(_when(shared.expires_at))}.</p>
{f'<ul class="archives">{archives}</ul>' if archives else ""}
</header>
<main>
<ul class="gallery">
{"".join(_item(f) for f in shared.files)}
</ul>
{f'<a class="more" href="{escape(more)}">More photos</a>' if more else ""}
</main>
</body>
</html>
"""
