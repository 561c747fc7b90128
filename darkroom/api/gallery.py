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
from urllib.parse import quote, urlencode, urlsplit

from darkroom.api.models import SharedFile, SharedJob, SharedRendition, StudioView

SCRIPT = resources.files("darkroom.api").joinpath("gallery.js").read_text(encoding="utf-8")
VIEWER_SCRIPT = resources.files("darkroom.api").joinpath("viewer.js").read_text(encoding="utf-8")

# One stylesheet for the gallery and the friendly error pages; only the accent colour
# varies (a deployment setting, checked to be #rrggbb), so each page hashes its own.
_CSS = """
:root{--accent:%(accent)s;--button:%(button)s;--on-accent:%(on_accent)s;--link:%(link)s}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f6f4;line-height:1.5}
a{color:var(--link)}
.studio{display:flex;align-items:center;gap:.75rem;padding:.85rem 1.25rem;background:#fff;
border-top:4px solid var(--accent);border-bottom:1px solid #e3e3e0}
.studio img{display:block;max-height:2.5rem;max-width:10rem;width:auto}
.studio span{font-weight:600;font-size:1.05rem;letter-spacing:.01em}
main{max-width:72rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{margin:.25rem 0;font-size:1.75rem;line-height:1.25;overflow-wrap:anywhere}
.summary{color:#57606a;margin:0 0 1rem}
.message{white-space:pre-line;background:#fff;border-left:4px solid var(--accent);
padding:.75rem 1rem;margin:0 0 1.25rem;overflow-wrap:anywhere}
ul.archives{list-style:none;padding:0;margin:0 0 1.5rem;display:flex;flex-wrap:wrap;gap:.75rem}
ul.archives li{display:flex;align-items:center;gap:.5rem;flex-wrap:wrap}
a.button{display:inline-block;background:var(--button);color:var(--on-accent);
text-decoration:none;padding:.5rem 1rem;border-radius:.375rem;font-weight:600}
ul.archives small{color:#57606a}
ul.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1.25rem;
list-style:none;padding:0;margin:0}
figure{margin:0;background:#fff;border:1px solid #e3e3e0;border-radius:.5rem;overflow:hidden}
figure img{display:block;width:100%%;height:14rem;object-fit:contain;background:#ececea}
figure a.view{display:block}
figure a.view:focus-visible{outline:3px solid var(--link);outline-offset:-3px}
figcaption{padding:.5rem .75rem 0;font-weight:600;overflow-wrap:anywhere}
figure ul{list-style:none;padding:.25rem .75rem .75rem;margin:0;font-size:.95rem}
figure li{display:grid;grid-template-columns:1fr auto;column-gap:.5rem;margin:.35rem 0}
figure li span{grid-column:1/-1;grid-row:2;color:#57606a;font-size:.8rem}
a.more{display:block;margin:2rem auto;text-align:center;font-size:1.1rem}
form.proof{padding:0 .75rem .75rem;display:grid;gap:.35rem}
form.proof p.mark{margin:0;font-weight:600;color:var(--accent)}
form.proof label{font-size:.85rem;color:#57606a}
form.proof textarea{width:100%%;font:inherit;padding:.35rem}
form.proof button{font:inherit;padding:.4rem .75rem;border-radius:.375rem;
border:1px solid var(--accent);background:var(--accent);color:var(--on-accent);cursor:pointer}
form.proof button.unmark{background:#fff;color:#1f2328;border-color:#8c959f}
main>form.proof{margin:1.25rem 0 0;padding:.75rem;max-width:32rem;background:#fff;
border:1px solid #e3e3e0;border-radius:.5rem}
.notice{max-width:32rem;margin:10vh auto 0;padding:2rem 1.5rem;background:#fff;
border:1px solid #e3e3e0;border-top:4px solid var(--accent);border-radius:.5rem;text-align:center}
.notice p{color:#57606a;margin:.75rem 0 0}
nav.photos{display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;margin:0 0 .75rem}
nav.photos .steps{display:flex;gap:1.25rem;margin-left:auto}
.photo-frame{background:none;border:0;margin:.75rem 0 1rem}
.photo-frame img{width:auto;height:auto;max-width:100%%;margin:0 auto;
max-height:max(16rem,calc(100vh - 12rem));background:none;border-radius:.25rem}
ul.downloads{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.75rem}
body.viewing{overflow:hidden}
.viewer{position:fixed;inset:0;z-index:10;display:flex;flex-direction:column;
background:#111;color:#f2f2f2}
.viewer[hidden]{display:none}
.viewer-bar{display:flex;align-items:center;gap:.75rem;padding:.5rem .75rem;min-height:3.25rem;
background:#1b1b1b}
.viewer-bar h2{flex:1;min-width:0;margin:0;font-size:1rem;font-weight:600;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis}
.viewer-count{color:#c8c8c8;font-size:.9rem;white-space:nowrap}
.viewer-actions{display:flex;align-items:center;gap:.5rem}
.viewer button{font:inherit;color:#f2f2f2;background:#2e2e2e;border:1px solid #5a5a5a;
border-radius:.375rem;cursor:pointer;min-width:2.75rem;min-height:2.75rem;padding:0 .75rem;
white-space:nowrap}
.viewer button:hover{background:#3d3d3d}
.viewer a.button{display:inline-flex;align-items:center;min-height:2.75rem}
.viewer :focus-visible{outline:3px solid #fff;outline-offset:2px}
.viewer-stage{position:relative;flex:1;min-height:0;display:flex;align-items:center;
justify-content:center;touch-action:none;user-select:none}
.viewer-stage img{display:block;width:100%%;height:100%%;object-fit:contain}
.viewer-prev,.viewer-next{position:absolute;top:50%%;transform:translateY(-50%%);
font-size:1.5rem}
.viewer-prev{left:.75rem}.viewer-next{right:.75rem}
.viewer button:disabled{opacity:.35;cursor:default}
.viewer button[aria-pressed=true]{color:#f2c94c;border-color:#f2c94c}
.viewer-saved{color:#ffb4b4;font-size:.85rem}.viewer-saved:empty{display:none}
.viewer-stage img[hidden],.viewer-failed[hidden]{display:none}
.viewer-failed{max-width:24rem;margin:0 1rem;text-align:center;font-size:1.05rem}
@media (max-width:30rem){main{padding:1rem .75rem 2rem}h1{font-size:1.4rem}
figure img{height:12rem}.notice{margin-top:1.5rem}
.viewer-count{display:none}.viewer-bar{flex-wrap:wrap;gap:.35rem .5rem}
.viewer-bar h2{flex-basis:100%%}.viewer-actions{flex:1;justify-content:flex-end;gap:.35rem}
.viewer button,.viewer a.button{padding:0 .6rem;font-size:.95rem}
.viewer-actions{flex-wrap:wrap}.viewer-saved{order:9;flex-basis:100%%}
.viewer-prev,.viewer-next{top:auto;bottom:.75rem;transform:none}}
""".strip()


def stylesheet(accent: str) -> str:
    button, on_button = button_colours(accent)
    return _CSS % {
        "accent": accent,
        "button": button,
        "on_accent": on_button,
        "link": link_colour(accent),
    }


# WCAG AA for body text; what axe checks the pages against.
READABLE = 4.5
_PAGE = "#f6f6f4"  # the page's background, the darkest a link sits on
_DARK_TEXT = "#111111"


def luminance(colour: str) -> float:
    """WCAG's relative luminance of #rrggbb."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _darker(colour: str, step: float = 0.05) -> str:
    channels = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{max(0, round(c * (1 - step))):02x}" for c in channels)


def _darken_until(colour: str, against: str) -> str:
    """The studio's colour, darkened no more than needed to read against `against`
    (black always does, so this ends)."""
    while contrast(colour, against) < READABLE:
        colour = _darker(colour)
    return colour


def button_colours(accent: str) -> tuple[str, str]:
    """A button's background and text: the accent with white or dark text, whichever
    reads; a mid-tone accent that neither reads on is darkened under white text."""
    for text in ("#ffffff", _DARK_TEXT):
        if contrast(accent, text) >= READABLE:
            return accent, text
    return _darken_until(accent, "#ffffff"), "#ffffff"


def link_colour(accent: str) -> str:
    """Links in the accent colour, darkened where a pale accent would not read."""
    return _darken_until(accent, _PAGE)


def _hash(css: str) -> str:
    return base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()


@dataclass(frozen=True)
class Page:
    shared: SharedJob
    share_url: str  # the share's own link, without a query
    script_url: str
    limit: int | None = None  # as the client asked, kept on the next page's link
    viewer_script_url: str | None = None  # the full-window viewer (viewer.js)
    cursor: str | None = None  # this page's, which a proofing form returns to
    proofing_script_url: str | None = None

    @property
    def scripts(self) -> tuple[str, ...]:
        proofing = self.proofing_script_url if self.shared.proofing else None
        extra = [u for u in (self.viewer_script_url, proofing) if u]
        return (self.script_url, *extra)

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


def _policy(css: str, img_sources: set[str], *extra: str, forms: str = "'none'") -> str:
    """The strict CSP every client page shares: nothing but its own stylesheet, the
    images named and what `extra` allows; no base, never framed, and no forms unless
    `forms` names where they may post (a proofing gallery's, to the API)."""
    return "; ".join(
        [
            "default-src 'none'",
            *([f"img-src {' '.join(sorted(img_sources))}"] if img_sources else []),
            *extra,
            f"style-src 'sha256-{_hash(css)}'",
            "base-uri 'none'",
            f"form-action {forms}",
            "frame-ancestors 'none'",
        ]
    )


def _logo_sources(studio: StudioView) -> set[str]:
    return {origin(studio.logo_url)} if studio.logo_url else set()


def content_security_policy(page: Page, bucket_origin: str) -> str:
    # Images load through the API's stable links, which redirect to the bucket: a
    # redirect's target must be allowed too.
    api = origin(page.share_url)
    return _policy(
        stylesheet(page.shared.studio.accent_colour),
        {api, bucket_origin, *_logo_sources(page.shared.studio)},
        f"script-src {' '.join(page.scripts)}",
        f"connect-src {api}",
        # The proofing forms post to the share's own routes, then come back here.
        forms=api if page.shared.proofing else "'none'",
    )


def largest(f: SharedFile) -> SharedRendition:
    """What the viewer's download button saves: the largest rendition (the full
    resolution one, as a client who downloads from the viewer expects)."""
    return max(f.renditions, key=lambda r: (r.width or 0) * (r.height or 0))


def shown(f: SharedFile) -> SharedRendition | None:
    return next((r for r in f.renditions if r.rendition == f.view_rendition), None)


def _item(f: SharedFile, proof: str = "") -> str:
    """One file, all of its markup (gallery.js builds the same for the pages it appends).
    Its preview is a link to the file's viewer page; viewer.js opens the full-window
    viewer on it instead, from its data- attributes."""
    name = escape(f.name)
    links = "".join(
        f'<li><a href="{escape(r.url)}">{escape(r.label)}</a> '
        f"<span>{r.width or '?'}\u00d7{r.height or '?'} px, {size(r.bytes or 0)}</span> "
        f'<a href="{escape(r.download_url)}" download="{escape(r.filename)}" '
        f'aria-label="Download {escape(r.label)}: {name}">Download</a></li>'
        for r in f.renditions
    )
    preview = (
        f'<img src="{escape(f.preview_url)}" alt="{name}" loading="lazy">'
        if f.preview_url
        else "View"
    )
    view = shown(f)
    if f.page_url:
        keep = largest(f)
        data = (
            f' data-image="{escape(view.url)}" data-download="{escape(keep.download_url)}"'
            f' data-filename="{escape(keep.filename)}" data-label="{escape(keep.label)}"'
            if view
            else ""
        )
        preview = f'<a class="view" href="{escape(f.page_url)}"{data}>{preview}</a>'
    return (
        f'<li data-name="{name}"><figure>{preview}<figcaption>{name}</figcaption>'
        f"<ul>{links}</ul>{proof}</figure></li>"
    )


def _proofing(page: Page | PhotoPage, f: SharedFile) -> str:
    """A proofing share's controls for one photo: a form that marks or unmarks it and
    keeps a note, posted to the share and redirected back where it was sent from (the
    gallery page at the photo, or the photo's own page); proofing.js sends the same
    without leaving the page. Empty when the share does not proof."""
    if not page.shared.proofing:
        return ""
    from darkroom.api.models import MAX_FAVOURITE_NOTE
    from darkroom.api.proofing import BACK_TO_PHOTO, anchor

    marked = f.favourite is not None
    spot = anchor(f.name)
    action = f"{page.share_url}/favourites/{quote(f.name, safe='')}"
    note = escape(f.favourite.note or "") if f.favourite else ""
    if isinstance(page, PhotoPage):
        back = f'<input type="hidden" name="back" value="{BACK_TO_PHOTO}">'
    elif page.cursor:
        back = f'<input type="hidden" name="page" value="{escape(page.cursor)}">'
    else:
        back = ""
    buttons = (
        '<button type="submit" name="favourite" value="1">Save note</button>'
        '<button type="submit" name="favourite" value="0" class="unmark">'
        "Remove from favourites</button>"
        if marked
        else '<button type="submit" name="favourite" value="1">Add to favourites</button>'
    )
    state = "\u2605 Favourite" if marked else "\u2606 Not a favourite"
    flag = "1" if marked else "0"
    return (
        f'<form class="proof" id="{spot}" method="post" action="{escape(action)}" '
        f'data-favourite="{flag}">{back}'
        f'<p class="mark" role="status">{state}</p>'
        f'<label for="{spot}-note">Note for the photographer</label>'
        f'<textarea id="{spot}-note" name="note" rows="2" maxlength="{MAX_FAVOURITE_NOTE}">'
        f"{note}</textarea>{buttons}</form>"
    )


def _studio_bar(studio: StudioView) -> str:
    if not (studio.name or studio.logo_url):
        return ""
    logo = (
        f'<img src="{escape(studio.logo_url)}" alt="{escape(studio.name or "Studio logo")}">'
        if studio.logo_url
        else ""
    )
    # With a logo, its alt text already names the studio to a screen reader.
    name = f"<span>{escape(studio.name)}</span>" if studio.name else ""
    return f'<header class="studio">{logo}{name}</header>'


def _document(title: str, css: str, body: str, *script_urls: str) -> str:
    script = "".join(f'<script src="{escape(url)}" defer></script>\n' for url in script_urls)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title>
<style>{css}</style>
{script}</head>
<body>
{body}
</body>
</html>
"""


def render(page: Page) -> str:
    shared = page.shared
    job = shared.job
    title = escape(job.name or job.job_id)
    done = job.files_done
    summary = f"{done} photo{'s' if done != 1 else ''}"
    archives = "".join(
        f'<li><a class="button" href="{escape(a.url)}">Download all: {escape(a.label)}</a> '
        f"<small>{a.files} photo{'s' if a.files != 1 else ''}, {size(a.bytes)}</small></li>"
        for a in shared.archives.values()
    )
    message = f'<p class="message">{escape(shared.message)}</p>' if shared.message else ""
    more = page.more_url
    body = f"""{_studio_bar(shared.studio)}
<main>
<h1>{title}</h1>
<p class="summary">{escape(summary)}. This link works until {escape(_when(shared.expires_at))}.</p>
{message}
{f'<ul class="archives">{archives}</ul>' if archives else ""}
<ul class="gallery" data-count="{done}">
{"".join(_item(f, _proofing(page, f)) for f in shared.files)}
</ul>
{f'<a class="more" href="{escape(more)}">More photos</a>' if more else ""}
</main>"""
    return _document(title, stylesheet(shared.studio.accent_colour), body, *page.scripts)


# What a client is told instead of an error code, by status.
NOTICES = {
    403: (
        "Favourites are not open for this link",
        "This gallery is for viewing and downloading. Ask your photographer for a proofing "
        "link to choose your favourites.",
    ),
    404: (
        "This link does not work",
        "We could not find these photos. Check that you have the whole link, or ask your "
        "photographer for a new link.",
    ),
    409: (
        "Your photos are almost ready",
        "They are still being prepared. Please try again in a little while.",
    ),
    410: (
        "This link is no longer active",
        "It has expired or was withdrawn. Please ask your photographer for a new link.",
    ),
    429: (
        "One moment, please",
        "Your choices are arriving faster than we can note them. Go back, wait a minute "
        "and try again: what you marked before is kept.",
    ),
}


def notice(status: int, studio: StudioView) -> tuple[str, str]:
    """A friendly page for a link that cannot be opened, and its CSP."""
    heading, text = NOTICES[status]
    css = stylesheet(studio.accent_colour)
    body = (
        f'{_studio_bar(studio)}\n<main>\n<section class="notice">\n'
        f"<h1>{escape(heading)}</h1>\n<p>{escape(text)}</p>\n</section>\n</main>"
    )
    return _document(escape(heading), css, body), _policy(css, _logo_sources(studio))


@dataclass(frozen=True)
class PhotoPage:
    """One photo on a page of its own: what a preview links to, so the viewer works
    without script too. Previous and next follow the gallery's name order across its
    pages; every link is stable."""

    shared: SharedJob  # the job, studio and expiry (its files: this photo alone)
    photo: SharedFile
    share_url: str
    previous_url: str | None
    next_url: str | None


def render_photo(page: PhotoPage) -> str:
    shared, photo = page.shared, page.photo
    name = escape(photo.name)
    job_title = escape(shared.job.name or shared.job.job_id)
    view = shown(photo)
    image = (
        f'<figure class="photo-frame"><img src="{escape(view.url)}" alt="{name}"></figure>'
        if view
        else "<p>This photo has no version a browser can show; download it below.</p>"
    )
    steps = []
    if page.previous_url:
        steps.append(f'<a rel="prev" href="{escape(page.previous_url)}">Previous photo</a>')
    if page.next_url:
        steps.append(f'<a rel="next" href="{escape(page.next_url)}">Next photo</a>')
    back = f'<a href="{escape(page.share_url)}">Back to the gallery</a>'
    # Previous and next stay together, apart from the way back (on a phone: below it).
    nav = f'{back}<span class="steps">{"".join(steps)}</span>'
    downloads = "".join(
        f'<li><a class="button" href="{escape(r.download_url)}" download="{escape(r.filename)}">'
        f"Download {escape(r.label)}</a></li>"
        for r in photo.renditions
    )
    body = f"""{_studio_bar(shared.studio)}
<main>
<nav class="photos" aria-label="Photos">{nav}</nav>
<h1>{name}</h1>
{image}
<ul class="downloads">{downloads}</ul>
{_proofing(page, photo)}
</main>"""
    return _document(f"{name} \u2013 {job_title}", stylesheet(shared.studio.accent_colour), body)


def photo_policy(page: PhotoPage, bucket_origin: str) -> str:
    """The photo page's CSP: the gallery's, with no script at all (a proofing share's
    form posts to the API and comes back)."""
    api = origin(page.share_url)
    return _policy(
        stylesheet(page.shared.studio.accent_colour),
        {api, bucket_origin, *_logo_sources(page.shared.studio)},
        forms=api if page.shared.proofing else "'none'",
    )
