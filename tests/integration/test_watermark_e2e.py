"""The studio's watermark end to end on the embedded local cloud: the PNG uploaded once
through the API (`darkroom asset put`), a job whose recipe names it delivered with the
mark on its web renditions and the asset's version in its manifest; a job whose asset
was deleted after it was accepted fails each file saying why and delivers nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom import keys, names
from darkroom.api.client import ApiCallError
from darkroom.cli.studio_client import ApiTarget, StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio

pytestmark = pytest.mark.integration

ORANGE = (255, 128, 0)
RECIPE = {
    "renditions": [{"name": "web", "long_edge": 600}, {"name": "thumb", "long_edge": 150}],
    "watermark": {"asset": "studio-logo", "opacity": 1, "size": 0.3},
}


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> StudioClient:
    return StudioClient.at(ApiTarget(cloud.api_url))


def _logo(path: Path) -> Path:
    logo = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    logo.paste(Image.new("RGBA", (100, 40), (*ORANGE, 255)), (10, 10))
    logo.save(path)
    return path


def _near_corner(path: Path) -> np.ndarray:
    """A pixel inside the mark's box at the bottom-right (size 0.3, margin 0.03)."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=int)
    height, width = pixels.shape[:2]
    margin = round(0.03 * min(width, height))
    return pixels[height - margin - round(0.3 * width / 4), width - margin - round(0.3 * width / 2)]


def test_a_watermarked_job_marks_its_web_renditions_with_the_uploaded_asset(
    client: StudioClient, studio: Studio, tmp_path: Path
) -> None:
    stored = client.put_asset("studio-logo", _logo(tmp_path / "logo.png"))
    assert (stored["width"], stored["height"]) == (120, 60)
    (listed,) = [a for a in client.assets() if a["name"] == "studio-logo"]
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=2, width=900, height=600)
    job_id = client.upload(sorted(shoot.iterdir()), name="marked", recipe=RECIPE)
    job = client.wait(job_id, timeout=180)
    assert job["status"] == "DONE", job

    paths = studio.download(job_id, tmp_path / "out")
    webs = [p for p in paths if p.parent.name == "web"]
    thumbs = [p for p in paths if p.parent.name == "thumb"]
    assert len(webs) == len(thumbs) == 2
    for web in webs:
        assert _near_corner(web) == pytest.approx(ORANGE, abs=10), web
    for thumb in thumbs:
        assert _near_corner(thumb) != pytest.approx(ORANGE, abs=10), thumb

    document = studio.manifest(job_id)
    assert document["recipe"]["watermark"]["asset"] == "studio-logo"
    for entry in document["files"]:
        assert entry["notes"]["watermark"] == (
            f"studio-logo at bottom-right on web (asset version {listed['version_id']})"
        )


def test_a_job_naming_an_asset_never_uploaded_is_refused_before_any_upload(
    client: StudioClient, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=1, width=300, height=200)
    recipe = {**RECIPE, "watermark": {"asset": "no-such-logo"}}
    with pytest.raises(ApiCallError) as refused:
        client.upload(sorted(shoot.iterdir()), recipe=recipe)
    assert refused.value.status == 400
    assert "no studio asset named 'no-such-logo'" in refused.value.message


def test_an_asset_deleted_after_the_job_was_accepted_fails_each_file_and_delivers_nothing(
    cloud: LocalCloud, client: StudioClient, studio: Studio, tmp_path: Path
) -> None:
    client.put_asset("fleeting", _logo(tmp_path / "logo.png"))
    client.delete_asset("fleeting")
    assert "fleeting" not in {a["name"] for a in client.assets()}
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=2, width=300, height=200)
    # Straight to S3, as a job accepted before the delete would be.
    job_id = studio.upload(
        sorted(shoot.iterdir()), recipe={**RECIPE, "watermark": {"asset": "fleeting"}}
    )
    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.FAILED, job.model_dump()
    records = studio.jobs.files(job_id)
    assert {r.error_code for r in records} == {"watermark_unavailable"}
    assert all("the watermark asset 'fleeting' does not exist" in (r.error or "") for r in records)
    delivered = cloud.client("s3").list_objects_v2(
        Bucket=names.PROCESSED_BUCKET, Prefix=keys.processed_prefix(job_id)
    )
    renditions = [o["Key"] for o in delivered.get("Contents", []) if "/web/" in o["Key"]]
    assert renditions == []
