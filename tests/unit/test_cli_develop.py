"""`darkroom develop` on a folder as a photographer keeps it: RAWs with the XMP sidecars
Lightroom or darktable wrote beside them; and `darkroom upload` takes each sidecar with
its RAW."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from darkroom.cli import main as cli
from darkroom.cli.studio_client import raw_files
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.imaging.fixtures.sidecars import darktable_xmp, lightroom_xmp

RECIPE = '{"renditions": [{"name": "web", "long_edge": 320}], "lens": "off"}'


def _unwrapped(output: str) -> str:
    """The output as one line: rich wraps long lines at the terminal's width."""
    return " ".join(output.split())


def _shoot(tmp_path: Path) -> Path:
    folder = tmp_path / "shoot"
    make_demo_shoot(folder, count=3, width=480, height=320)
    (folder / "DRM_0001.xmp").write_bytes(lightroom_xmp(rating=-1))
    (folder / "DRM_0002.dng.xmp").write_bytes(darktable_xmp(exposure=0.5))
    (folder / "notes.xmp").write_bytes(lightroom_xmp(rating=5))  # no RAW of that name
    return folder


def test_develop_honours_sidecars_and_skips_a_reject(tmp_path: Path) -> None:
    folder = _shoot(tmp_path)
    (tmp_path / "recipe.json").write_text(RECIPE)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.app,
        ["develop", str(folder), "--out", str(out), "--recipe", str(tmp_path / "recipe.json")],
    )
    assert result.exit_code == 0, result.output
    said = _unwrapped(result.output)
    assert "skipped DRM_0001.dng: rejected in DRM_0001.xmp (Lightroom)" in said
    assert "2 of 3 files developed" in said
    assert "(1 skipped: rejected in their sidecar)" in said
    assert sorted(p.name for p in (out / "web").iterdir()) == ["DRM_0002.jpg", "DRM_0003.jpg"]


def test_an_unreadable_sidecar_fails_its_file_by_name(tmp_path: Path) -> None:
    folder = _shoot(tmp_path)
    (folder / "DRM_0003.xmp").write_bytes(b"<x:xmpmeta")
    (tmp_path / "recipe.json").write_text(RECIPE)
    result = CliRunner().invoke(
        cli.app,
        [
            "develop",
            str(folder),
            "--out",
            str(tmp_path / "o"),
            "--recipe",
            str(tmp_path / "recipe.json"),
        ],
    )
    assert result.exit_code == 1
    said = _unwrapped(result.output)
    assert "DRM_0003.xmp: sidecar is not valid XML" in said
    assert "sidecar_unreadable" in said


def test_upload_takes_each_sidecar_with_its_raw_and_leaves_strays(tmp_path: Path) -> None:
    names = [p.name for p in raw_files(_shoot(tmp_path))]
    assert names == [
        "DRM_0001.dng",
        "DRM_0002.dng",
        "DRM_0003.dng",
        "DRM_0001.xmp",
        "DRM_0002.dng.xmp",
    ]
