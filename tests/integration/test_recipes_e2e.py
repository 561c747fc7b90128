"""Recipes end to end on the embedded local cloud: a job with the default recipe, then the
same job reprocessed with another recipe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from darkroom.cli.studio_client import raw_files
from darkroom.imaging.fixtures import Capture, make_demo_shoot, write_dng
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
    job_id = studio.upload(raw_files(shoot), name="recipes")
    first = studio.wait(job_id, timeout=180)
    assert first.status is JobStatus.DONE, first.model_dump()
    default = studio.manifest(job_id)
    assert {r for f in default["files"] for r in f["outputs"]} == {"web", "thumb", "full"}

    arn = studio.reprocess(job_id, OTHER_RECIPE)
    second = studio.wait(job_id, timeout=180, since_execution=first.execution_arn)
    assert second.status is JobStatus.DONE, second.model_dump()
    assert second.execution_arn == arn

    manifest = studio.manifest(job_id)
    assert manifest["recipe"]["colour_space"] == "display-p3"
    for entry in manifest["files"]:
        assert set(entry["outputs"]) == {"preview", "master"}
        assert entry["outputs"]["preview"]["content_type"] == "image/webp"
        assert entry["outputs"]["master"]["content_type"] == "image/tiff"

    paths = studio.download(job_id, tmp_path / "out")
    previews = [p for p in paths if p.parent.name == "preview"]
    assert len(previews) == 3
    for path in previews:
        with Image.open(path) as img:
            assert img.format == "WEBP"
            assert max(img.size) == 640
            profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            gps = img.getexif().get_ifd(0x8825)
        assert "Display P3" in ImageCms.getProfileDescription(profile)
        # The recipe keeps GPS: the one file that has a location still has it.
        assert bool(gps) == path.stem.startswith("GPS")
