"""`darkroom thumbnail` (the command body, as typer runs it) and the demo images."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from darkroom.cli.thumbnail_cmd import demo_images, thumbnail
from darkroom.imaging.fixtures import images as fx
from darkroom.imaging.thumbnailer import WEBP, make_thumbnails


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("thumbnail")(thumbnail)

    @app.command("other")
    def other() -> None:  # a second command, so typer keeps "thumbnail" as a subcommand
        """Unused."""

    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["thumbnail", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_good_files_give_thumbnails_in_one_folder_per_file(
    app: typer.Typer, tmp_path: Path
) -> None:
    photo = tmp_path / "in" / "holiday photo.jpg"
    photo.parent.mkdir()
    photo.write_bytes(fx.encoded(fx.quadrants(1200, 800), "JPEG"))
    code, output = run(app, str(photo), "--out", str(tmp_path / "out"))
    assert code == 0, output
    made = tmp_path / "out" / "holiday photo.jpg"
    assert sorted(p.name for p in made.iterdir()) == ["1024.jpg", "256.jpg"]
    assert Image.open(made / "256.jpg").size == (256, 171)
    assert "1 thumbnailed" in output


def test_any_failure_exits_non_zero_with_the_reason_per_file(
    app: typer.Typer, tmp_path: Path
) -> None:
    (tmp_path / "good.png").write_bytes(fx.encoded(fx.quadrants(), "PNG"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "letter.jpg").write_text("not a picture")
    code, output = run(app, str(tmp_path), "--out", str(tmp_path / "out"), "--sizes", "64")
    assert code == 1
    assert "empty.jpg: empty_file" in output
    assert "letter.jpg: not_an_image" in output
    assert (tmp_path / "out" / "good.png" / "64.jpg").is_file()
    assert not (tmp_path / "out" / "empty.jpg").exists()


def test_bad_sizes_are_a_usage_error(app: typer.Typer, tmp_path: Path) -> None:
    code, output = run(app, str(tmp_path), "--out", str(tmp_path), "--sizes", "0,abc")
    assert code == 2
    assert "--sizes" in output


def test_no_files_at_all_is_a_usage_error(app: typer.Typer, tmp_path: Path) -> None:
    code, _ = run(app, str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2


def test_it_is_a_plain_function_too(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(fx.encoded(fx.quadrants(), "PNG"))
    thumbnail([tmp_path / "a.png"], tmp_path / "out")
    assert (tmp_path / "out" / "a.png" / "1024.jpg").is_file()
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(typer.Exit) as caught:
        thumbnail([tmp_path / "b.jpg"], tmp_path / "out")
    assert caught.value.exit_code == 1


def test_the_demo_images_each_need_something_done_right(tmp_path: Path) -> None:
    paths = {p.name: p for p in demo_images(tmp_path)}
    assert len(paths) >= 3
    results = {
        name: make_thumbnails(path, (256,), max_pixels=10**8, name=name)
        for name, path in paths.items()
    }
    assert all(" " in n or "+" in n or not n.isascii() for n in paths if n != "animated.gif")
    portrait = results["portrait rotated.jpg"].thumbnails[0]
    assert portrait.height > portrait.width
    assert results["logo+alpha.png"].format is WEBP
    assert results["affiche été cmyk.jpg"].source_format == "JPEG"
    assert Image.open(paths["animated.gif"]).n_frames > 1  # type: ignore[attr-defined]
