"""One table of formats: the API, the thumbnailer and the CLI take the same files."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from darkroom import formats
from darkroom.api.validation import file_name_problem
from darkroom.cli.develop_cmd import develop
from darkroom.cli.thumbnail_cmd import thumbnail
from darkroom.imaging.thumbnailer.sniff import looks_raw

# Formats the thumbnailer once took and the API refused: all of them LibRaw formats.
ONCE_DISPUTED = (".ari", ".bay", ".dcs", ".k25", ".raw")


def cli(command: object, name: str) -> typer.Typer:
    app = typer.Typer()
    app.command(name)(command)  # type: ignore[arg-type]

    @app.command("other")
    def other() -> None:  # a second command, so typer keeps `name` as a subcommand
        """Unused."""

    return app


@pytest.mark.parametrize("extension", sorted(formats.RAW_EXTENSIONS))
def test_every_raw_extension_is_a_job_file_and_goes_to_libraw(extension: str) -> None:
    for name in (f"IMG_0001{extension}", f"IMG_0001{extension.upper()}"):
        assert file_name_problem(name) is None
        assert looks_raw(b"", name)
        assert formats.is_raw(name) and formats.is_image(name)


def test_the_once_disputed_formats_are_accepted_everywhere() -> None:
    assert set(ONCE_DISPUTED) <= formats.RAW_EXTENSIONS
    assert all(file_name_problem(f"A{e}") is None for e in ONCE_DISPUTED)


@pytest.mark.parametrize("name", ["photo.jpg", "scan.tiff", "logo.png", "README", "a.dng.txt"])
def test_anything_else_is_no_job_file_and_no_raw(name: str) -> None:
    problem = file_name_problem(name)
    assert problem == formats.not_raw_reason(name)
    assert problem and "is not a camera RAW format" in problem and "dng" in problem
    assert not looks_raw(b"", name)


def test_every_image_extension_is_pillows_or_heifs() -> None:
    from PIL import Image

    registered = Image.registered_extensions()
    for name, extensions in formats.IMAGE_FORMATS.items():
        for extension in extensions:
            assert registered.get(extension) in (name, "MPO", None), extension
    assert "HEIF" not in formats.PILLOW_FORMATS


def test_api_thumbnailer_and_cli_read_the_same_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A format added to the table is taken by every door at once."""
    monkeypatch.setattr(formats, "RAW_EXTENSIONS", formats.RAW_EXTENSIONS | {".xyz"})
    assert file_name_problem("A.xyz") is None
    assert looks_raw(b"", "A.xyz")
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for name in ("A.xyz", "B.dng", "notes.txt", "C.jpg", ".hidden.dng"):
        (shoot / name).write_bytes(b"")
    assert [p.name for p in formats.files_in([shoot], formats.is_raw)] == ["A.xyz", "B.dng"]
    assert [p.name for p in formats.files_in([shoot])] == ["A.xyz", "B.dng", "C.jpg"]


def test_develop_takes_a_folders_raw_files_and_refuses_other_files_as_the_api_does(
    tmp_path: Path,
) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "notes.txt").write_text("not a photo")
    (shoot / "EMPTY.dng").write_bytes(b"")
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    result = CliRunner().invoke(
        cli(develop, "develop"),
        ["develop", str(shoot), str(photo), "--out", str(tmp_path / "out")],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1, result.output
    assert "0 of 2 files developed" in result.output
    assert "EMPTY.dng" in result.output and "empty_file" in result.output
    assert "holiday.jpg" in result.output and "unsupported_format" in result.output
    assert formats.not_raw_reason("holiday.jpg") in " ".join(result.output.split())
    assert "notes.txt" not in result.output


def test_thumbnail_takes_a_folders_image_and_raw_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    (folder / "EMPTY.NEF").write_bytes(b"")
    result = CliRunner().invoke(
        cli(thumbnail, "thumbnail"),
        ["thumbnail", str(folder), "--out", str(tmp_path / "out")],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1, result.output
    assert "empty.png: empty_file" in result.output
    assert "EMPTY.NEF: empty_file" in result.output
    assert "notes.txt" not in result.output
