"""Recipes end to end on the embedded local cloud: a job with the default recipe and the
photographer's XMP sidecars (one file rejected, one with its own exposure), then the same
job reprocessed with another recipe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from darkroom.cli.studio_client import raw_files
from darkroom.imaging.fixtures import Capture, make_demo_shoot, write_dng
from darkroom.imaging.fixtures.sidecars import darktable_xmp, lightroom_xmp
from darkroom.jobs import JobStatus
from tests.harness import Studio

pytestmark = pytest.mark.integration

# Whole numbers only: the job store keeps recipes in DynamoDB.
OTHER_RECIPE = {
    "renditions": [
        {"name": "preview", "long_edge": 640, "format": "webp", "quality": 80},
        {"name": "master", "long_edge": "full", "format": "tiff"},
    ],
    "white_balance": {"mode": "auto"},
    "exposure": {"mode": "auto", "compensation_ev": 1},
    "highlights": "recover",
    "colour_space": "display-p3",
    "metadata": {"keep_gps": True},
}


def test_reprocessing_with_another_recipe_makes_that_recipes_renditions(
    studio: Studio, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=2, width=720, height=480)
    write_dng(
        shoot / "GPS_0001.dng", width=720, height=480, seed=8, capture=Capture(gps=(10, 20, 30))
    )
    # Lightroom rejected the first frame; darktable brightened the second.
    (shoot / "DRM_0001.xmp").write_bytes(lightroom_xmp(rating=-1))
    (shoot / "DRM_0002.dng.xmp").write_bytes(darktable_xmp(exposure=0.5))
    files = raw_files(shoot)  # as `darkroom upload` picks them: each sidecar with its RAW
    assert [p.name for p in files if p.suffix == ".xmp"] == ["DRM_0001.xmp", "DRM_0002.dng.xmp"]
    job_id = studio.upload(files, name="recipes")
    first = studio.wait(job_id, timeout=180)
    assert first.status is JobStatus.DONE, first.model_dump()
    assert (first.files_total, first.files_done, first.files_skipped) == (3, 2, 1)
    default = studio.manifest(job_id)
    entries = {f["name"]: f for f in default["files"]}
    assert {r for f in default["files"] for r in f.get("outputs", {})} == {"web", "thumb", "full"}
    assert entries["DRM_0001.dng"]["status"] == "SKIPPED"
    assert "outputs" not in entries["DRM_0001.dng"]
    assert entries["DRM_0001.dng"]["notes"]["sidecar"].startswith("Lightroom: rated -1")
    assert entries["DRM_0002.dng"]["notes"]["sidecar"] == "darktable: exposure +0.5 EV"

    arn = studio.reprocess(job_id, OTHER_RECIPE)
    second = studio.wait(job_id, timeout=180, since_execution=first.execution_arn)
    assert second.status is JobStatus.DONE, second.model_dump()
    assert second.execution_arn == arn

    manifest = studio.manifest(job_id)
    assert manifest["recipe"]["colour_space"] == "display-p3"
    for entry in manifest["files"]:
        if entry["status"] == "SKIPPED":
            continue  # the sidecar still rejects it
        assert set(entry["outputs"]) == {"preview", "master"}
        assert entry["outputs"]["preview"]["content_type"] == "image/webp"
        assert entry["outputs"]["master"]["content_type"] == "image/tiff"

    paths = studio.download(job_id, tmp_path / "out")
    previews = [p for p in paths if p.parent.name == "preview"]
    assert len(previews) == 2
    for path in previews:
        with Image.open(path) as img:
            assert img.format == "WEBP"
            assert max(img.size) == 640
            profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            gps = img.getexif().get_ifd(0x8825)
        assert "Display P3" in ImageCms.getProfileDescription(profile)
        # The recipe keeps GPS: the one file that has a location still has it.
        assert bool(gps) == path.stem.startswith("GPS")
