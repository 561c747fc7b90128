"""The gallery's viewer as the API serves it: each preview links to the photo's own page
(the viewer without script), which steps through the gallery in name order across its
pages and shows the rendition the viewer picks; renditions are listed in the recipe's
order; the accent colour is made readable. Over moto's in-process AWS through the API's
handler."""

# The `api` fixture comes from test_api; each test names it as a parameter.
# ruff: noqa: F811
from __future__ import annotations

import re
from html import unescape

from darkroom import names
from darkroom.api import gallery
from darkroom.api.models import SharedRendition
from darkroom.api.share_links import view_rendition
from darkroom.recipes import parse_recipe
from tests.unit.test_api import REGION, Api, api, follow  # noqa: F401
from tests.unit.test_share_gallery import HTML, _assert_client_page

BASE = "https://api.example.test"


def _partly_developed(api: Api, job_id: str, files: list[str], developed: list[str]) -> None:
    """A delivered job some of whose files never developed."""
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:{job_id}"
    api.service.jobs.register(
        job_id=job_id, execution_arn=arn, files=files, name="Wedding", recipe=None
    )
    api.develop(job_id, arn, developed)


def _steps(html: str) -> dict[str, str]:
    """The photo page's navigation links, by their rel (back: the gallery)."""
    nav = re.search(r'<nav class="photos" aria-label="Photos">(.*?)</nav>', html, re.S)
    assert nav, html
    found = {}
    for rel, href in re.findall(r'<a (?:rel="(\w+)" )?href="([^"]+)"', nav.group(1)):
        found[rel or "back"] = unescape(href)
    return found


def test_each_photo_page_steps_through_the_gallery_in_name_order_past_undeveloped_files(
    api: Api,
) -> None:
    # More files than one neighbour look-up reads, one of them never developed.
    files = [f"IMG_{i:04d}.dng" for i in range(1, 13)]
    developed = [f for f in files if f != "IMG_0007.dng"]
    _partly_developed(api, "wedding", files, developed)
    token = api.share("wedding")["token"]
    gallery_link = f"{BASE}/share/{token}"
    # The gallery's previews link to the pages, a page of three at a time.
    _, _, first_page = api.call("GET", f"/share/{token}", headers=HTML, query={"limit": "3"})
    assert f'<a class="view" href="{gallery_link}/view/IMG_0001.dng"' in first_page

    visited = []
    url: str | None = f"{gallery_link}/view/IMG_0001.dng"
    while url:
        status, headers, html = follow(api, url)
        assert status == 200, html
        _assert_client_page(headers, html)
        steps = _steps(html)
        assert steps["back"] == gallery_link
        name = re.search(r"<h1>(.*?)</h1>", html)
        assert name
        visited.append(name.group(1))
        if "prev" in steps:
            assert steps["prev"].endswith(f"/view/{visited[-2]}")
        url = steps.get("next")
    assert visited == developed
    # Walking back from the last reaches the first again.
    back = []
    url = f"{gallery_link}/view/{developed[-1]}"
    while url:
        html = follow(api, url)[2]
        back.append(re.search(r"<h1>(.*?)</h1>", html).group(1))  # type: ignore[union-attr]
        url = _steps(html).get("prev")
    assert back == developed[::-1]


def test_a_photo_page_shows_the_web_rendition_through_its_stable_link_with_no_script(
    api: Api,
) -> None:
    api.finish("shoot", {"A B.dng": 1})
    token = api.share("shoot")["token"]
    status, headers, html = api.call("GET", f"/share/{token}/view/A%20B.dng", headers=HTML)
    assert status == 200
    policy = headers["content-security-policy"]
    assert "script-src" not in policy and "<script" not in html
    link = f"{BASE}/share/{token}/files/A%20B.dng"
    assert f'<img src="{link}/web" alt="A B.dng">' in html
    assert "X-Amz" not in html, "no presigned URL in the page"
    # A download per rendition, in the recipe's order (web before thumb), not by name.
    downloads = re.findall(r'<a class="button" href="([^"]+)"', html)
    assert downloads == [f"{link}/web?download=1", f"{link}/thumb?download=1"]
    assert "<title>A B.dng \u2013 a shoot</title>" in html
    # The image link it shows resolves inline.
    assert follow(api, f"{link}/web")[0] == 302


def test_a_photo_page_for_a_missing_photo_or_a_revoked_link_is_the_friendly_page(
    api: Api,
) -> None:
    _partly_developed(api, "shoot", ["A.dng", "B.dng"], ["A.dng"])
    share = api.share("shoot")
    token = share["token"]
    for missing in ("Z.dng", "B.dng", "..%2Fsecret"):
        status, headers, html = api.call("GET", f"/share/{token}/view/{missing}", headers=HTML)
        assert status == 404 and "This link does not work" in html, missing
        _assert_client_page(headers, html)
    # An API client gets the JSON error, as from every share route.
    status, _, doc = api.call("GET", f"/share/{token}/view/Z.dng")
    assert status == 404 and doc["error"] == "not_found"
    assert api.call("DELETE", f"/jobs/shoot/shares/{share['share_id']}")[0] == 204
    status, headers, html = api.call("GET", f"/share/{token}/view/A.dng", headers=HTML)
    assert status == 410 and "This link is no longer active" in html
    _assert_client_page(headers, html)


def test_a_photo_page_shows_what_is_delivered_while_the_job_is_reprocessed(api: Api) -> None:
    first = api.finish("done", {"A.dng": 1})
    token = api.share("done")["token"]
    before = api.call("GET", f"/share/{token}/view/A.dng", headers=HTML)[2]
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:again"
    api.service.jobs.register(
        job_id="done", execution_arn=arn, files=["A.dng"], name="a shoot", recipe=None
    )
    # Mid-reprocess: the page and the bytes its image resolves to are the first run's.
    assert api.call("GET", f"/share/{token}/view/A.dng", headers=HTML)[2] == before
    location = follow(api, f"{BASE}/share/{token}/files/A.dng/web")[1]["location"]
    assert f"/{first}/" in location


def test_the_gallery_lists_renditions_in_the_recipes_order_and_links_previews_to_the_viewer(
    api: Api,
) -> None:
    recipe = parse_recipe({"renditions": [{"name": "thumb"}, {"name": "web", "label": "Screen"}]})
    arn = f"arn:aws:states:{REGION}:123456789012:execution:{names.state_machine_name()}:ordered"
    api.service.jobs.register(
        job_id="ordered",
        execution_arn=arn,
        files=["A.dng"],
        name="Ordered",
        recipe=recipe.model_dump(mode="json"),
    )
    api.develop("ordered", arn, ["A.dng"])
    token = api.share("ordered")["token"]
    doc = api.call("GET", f"/share/{token}")[2]
    (photo,) = doc["files"]
    assert [r["rendition"] for r in photo["renditions"]] == ["thumb", "web"]
    assert photo["view_rendition"] == "web"
    assert photo["page_url"] == f"{BASE}/share/{token}/view/A.dng"
    html = api.call("GET", f"/share/{token}", headers=HTML)[2]
    link = f"{BASE}/share/{token}/files/A.dng"
    # The viewer shows the web rendition; its download button saves the largest.
    assert (
        f'<a class="view" href="{BASE}/share/{token}/view/A.dng" data-image="{link}/web" '
        f'data-download="{link}/web?download=1"'
    ) in html
    assert html.index(">Thumbnail</a>") < html.index(">Screen</a>")


def _rendition(
    name: str, width: int, content_type: str = "image/jpeg", label: str = ""
) -> SharedRendition:
    return SharedRendition(
        rendition=name,
        label=label or name.capitalize(),
        filename=f"A-{name}.jpg",
        url=f"{BASE}/{name}",
        download_url=f"{BASE}/{name}?download=1",
        width=width,
        height=width * 2 // 3,
        content_type=content_type,
    )


def test_the_viewer_shows_web_else_the_largest_downscaled_rendition_a_browser_can_show() -> None:
    recipe = parse_recipe(
        {
            "renditions": [
                {"name": "print", "long_edge": "full", "format": "tiff"},
                {"name": "big", "long_edge": 3000},
                {"name": "small", "long_edge": 800},
                {"name": "max", "long_edge": "full"},
            ]
        }
    )
    made = [
        _rendition("print", 6000, "image/tiff"),
        _rendition("big", 3000),
        _rendition("small", 800),
        _rendition("max", 6000),
    ]
    assert view_rendition(made, recipe) == "big"
    # A rendition labelled Web wins whatever its size.
    labelled = [*made, _rendition("screen", 1200, label="Web")]
    assert view_rendition(labelled, recipe) == "screen"
    # Only full-size ones a browser can show: the largest of them; a TIFF never.
    assert view_rendition([made[0], made[3]], recipe) == "max"
    assert view_rendition([made[0]], recipe) is None


def test_a_pale_accent_colour_still_gives_readable_links_and_buttons() -> None:
    for accent in ("#2b6cb0", "#ffd700", "#7fb3d5", "#e06666", "#000000", "#ffffff"):
        link = gallery.link_colour(accent)
        background, text = gallery.button_colours(accent)
        assert gallery.contrast(link, "#f6f6f4") >= gallery.READABLE, accent
        assert gallery.contrast(background, text) >= gallery.READABLE, accent
    # A colour that already reads is kept as the studio chose it.
    assert gallery.link_colour("#2b6cb0") == "#2b6cb0"
    assert gallery.button_colours("#2b6cb0") == ("#2b6cb0", "#ffffff")
    css = gallery.stylesheet("#ffd700")
    assert "--accent:#ffd700" in css and "--link:#ffd700" not in css
