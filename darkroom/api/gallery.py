"""The client's gallery page: previews and download links of a shared job, plain HTML.

No script, one static stylesheet; every value from the job is escaped. The page's URL
carries the share token, so it sends no referrer and asks not to be indexed or framed.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from html import escape
from urllib.parse import urlsplit

from darkroom.api.models import SharedJob

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
.failed{color:#a33}
""".strip()
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()


def _size(n: int) -> str:
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(shared: SharedJob) -> str:
    origins = sorted({_origin(f.preview_url) for f in shared.files if f.preview_url})
    return "; ".join(
        [
            "default-src 'none'",
            f"img-src {' '.join(origins) or 'none'}",
            f"style-src 'sha256-{_CSS_HASH}'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def render(shared: SharedJob) -> str:
    job = shared.job
    title = escape(job.name or job.job_id)
    items = []
    for f in shared.files:
        name = escape(f.name)
        if f.status != "DONE":
            items.append(
                f"<li><figure><figcaption>{name}</figcaption>"
                f'<p class="failed">could not be developed</p></figure></li>'
            )
            continue
        links = "".join(
            f'<li><a href="{escape(r.url)}" download="{escape(r.filename)}">'
            f"{escape(r.rendition)}</a> "
            f"({r.width or '?'}\u00d7{r.height or '?'}, {_size(r.bytes or 0)})"
            "</li>"
            for r in f.renditions
        )
        preview = (
            f'<img src="{escape(f.preview_url)}" alt="{name}" loading="lazy">'
            if f.preview_url
            else ""
        )
        items.append(
            f"<li><figure>{preview}<figcaption>{name}</figcaption><ul>{links}</ul></figure></li>"
        )
    done, failed = job.files_done, job.files_failed
    summary = f"{done} photo{'s' if done != 1 else ''}" + (
        f", {failed} could not be developed" if failed else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{escape(summary)}. Download links stay valid for {shared.links_expire_in // 60} minutes;
reload the page for fresh ones. This share link expires on {escape(_when(shared.expires_at))}.</p>
</header>
<main>
<ul class="gallery">
{"".join(items)}
</ul>
</main>
</body>
</html>
"""
