"""A user's mistake gets one line saying what to do, and an exit status (2 for a usage
mistake, 1 for a failure): never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from darkroom.cli import main as cli

RUNNER = CliRunner()


def invoke(*args: str, **env: str):  # type: ignore[no-untyped-def]
    return RUNNER.invoke(cli.app, list(args), env=env, prog_name="darkroom")


def said(result) -> str:  # type: ignore[no-untyped-def]
    """What the command printed, with no whitespace: rich folds a line, even inside a
    long path, at the terminal's width (the consoles are made before a test runs)."""
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return "".join(result.output.split())


def says(text: str) -> str:
    return "".join(text.split())


def test_a_recipe_error_keeps_its_square_brackets(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"white_balance": {"mode": "fixed"}}')
    result = invoke("develop", str(tmp_path), "--out", str(tmp_path / "o"), "--recipe", str(recipe))
    assert result.exit_code == 2
    assert says('required when mode is "fixed" ([red, green, blue])') in said(result)


def test_an_api_error_is_printed_as_the_server_wrote_it(capsys: pytest.CaptureFixture[str]) -> None:
    from darkroom.api.client import ApiCallError
    from darkroom.cli.connection import api_call

    def refused() -> None:
        raise ApiCallError(400, "BadRequest", "IMG_[red]_0001.nef: bad name", {"files": ["[b]x"]})

    with pytest.raises(typer.Exit) as exited:
        api_call(refused)
    assert exited.value.exit_code == 1
    shown = capsys.readouterr().err
    assert "IMG_[red]_0001.nef: bad name" in shown
    assert "[b]x" in shown


@pytest.mark.parametrize("command", ["develop", "thumbnail"])
def test_a_file_name_with_square_brackets_is_named_as_it_is(tmp_path: Path, command: str) -> None:
    (tmp_path / "IMG_[red]_0001.nef").write_bytes(b"not a raw at all" * 64)
    result = invoke(command, str(tmp_path / "IMG_[red]_0001.nef"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert says("IMG_[red]_0001.nef") in said(result)
    assert "IMG__0001.nef" not in result.output


@pytest.mark.parametrize("command", ["develop", "thumbnail"])
def test_out_naming_a_file_is_refused_before_any_work(tmp_path: Path, command: str) -> None:
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "A.jpg").write_bytes(b"x")
    result = invoke(command, str(tmp_path / "A.jpg"), "--out", str(tmp_path / "taken"))
    assert result.exit_code == 2
    assert says(f"--out {tmp_path / 'taken'}: is a file; give a folder") in said(result)


@pytest.mark.parametrize("command", ["develop", "thumbnail"])
def test_a_path_that_is_not_there_is_named(tmp_path: Path, command: str) -> None:
    result = invoke(command, str(tmp_path / "nope.nef"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert says(f"{tmp_path / 'nope.nef'}: no such file or folder") in said(result)


def test_develop_of_a_folder_with_no_raw_says_what_the_folder_holds(tmp_path: Path) -> None:
    shoot = tmp_path / "shoot.nef"  # a folder, whatever its name
    (shoot / "day1").mkdir(parents=True)
    (shoot / "notes.txt").write_text("x")
    result = invoke("develop", str(shoot), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert says(
        f"{shoot}: no camera RAW files in it (1 other file, 1 subfolder, not looked into)"
    ) in said(result)
    assert "truncated" not in result.output


def test_a_folder_with_a_raw_name_is_a_folder_not_a_truncated_raw(tmp_path: Path) -> None:
    (tmp_path / "odd.dng").mkdir()
    result = invoke("develop", str(tmp_path / "odd.dng"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert says(f"{tmp_path / 'odd.dng'}: no camera RAW files in it") in said(result)
    assert "truncated" not in result.output


def test_develop_and_thumbnail_outputs_follow_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    from darkroom.imaging.fixtures import make_demo_shoot

    make_demo_shoot(tmp_path / "shoot", count=1, width=300, height=200)
    (tmp_path / "recipe.json").write_text('{"renditions": [{"name": "web", "long_edge": 200}]}')
    previous = os.umask(0o022)
    try:
        developed = invoke(
            "develop",
            str(tmp_path / "shoot"),
            "--out",
            str(tmp_path / "dev"),
            "--recipe",
            str(tmp_path / "recipe.json"),
        )
        thumbnailed = invoke("thumbnail", str(tmp_path / "shoot"), "--out", str(tmp_path / "th"))
    finally:
        os.umask(previous)
    assert developed.exit_code == 0, developed.output
    assert thumbnailed.exit_code == 0, thumbnailed.output
    written = [p for d in ("dev", "th") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert written
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {oct(0o644)}


def test_with_no_api_configured_a_cloud_command_says_what_to_configure(tmp_path: Path) -> None:
    result = RUNNER.invoke(
        cli.app,
        ["status"],
        env={
            "AWS_DEFAULT_REGION": None,
            "AWS_REGION": None,
            "AWS_PROFILE": None,
            "DARKROOM_API_URL": None,
            "DARKROOM_ENDPOINT_URL": None,
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
        },
    )
    assert result.exit_code == 2
    shown = said(result)
    assert (
        says("no darkroom API configured: give --endpoint-url (or DARKROOM_ENDPOINT_URL)") in shown
    )
    assert "--api-url" in shown and "--region" in shown
    assert "You must specify a region" not in result.output


@pytest.mark.parametrize(("made", "why"), [(False, "no such folder"), (True, "is a file")])
def test_upload_of_anything_but_a_folder_says_it_takes_a_folder(
    tmp_path: Path, made: bool, why: str
) -> None:
    target = tmp_path / "IMG_0001.nef"
    if made:
        target.write_bytes(b"raw")
    result = invoke("upload", str(target), "--api-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert says(f"{target}: {why}; upload takes a folder of RAW files") in said(result)


def _shoot_with_strays(tmp_path: Path) -> Path:
    shoot = tmp_path / "shoot"
    (shoot / "day2").mkdir(parents=True)
    for name in ("A.dng", "day2/B.dng", "notes.txt", "stray.xmp", ".DS_Store"):
        (shoot / name).write_bytes(b"x")
    return shoot


def test_upload_says_what_it_skips_and_why_before_it_starts(tmp_path: Path) -> None:
    result = invoke("upload", str(_shoot_with_strays(tmp_path)), "--api-url", "http://127.0.0.1:9")
    shown = said(result)
    assert (
        says(
            "skipping day2/ (a folder: --recursive takes its RAW files), "
            "notes.txt (not a camera RAW file), "
            "stray.xmp (an XMP sidecar with no RAW file of its name)"
        )
        in shown
    )
    assert "DS_Store" not in shown
    # Said before anything is sent (here, to an API that is not there).
    assert shown.index("skipping") < shown.index("cannotreach")


def test_recursive_takes_the_raw_files_in_subfolders(tmp_path: Path) -> None:
    from darkroom.cli.studio_client import shoot_files

    shoot = shoot_files(_shoot_with_strays(tmp_path), recursive=True)
    assert [p.name for p in shoot.files] == ["A.dng", "B.dng"]
    assert [entry for entry, _ in shoot.skipped] == ["notes.txt", "stray.xmp"]


def test_recursive_refuses_two_files_of_one_name_in_different_subfolders(tmp_path: Path) -> None:
    shoot = _shoot_with_strays(tmp_path)
    (shoot / "day1").mkdir()
    (shoot / "day1" / "B.dng").write_bytes(b"x")
    result = invoke("upload", str(shoot), "--recursive", "--api-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert says(
        "B.dng is in day1/ and day2/: a job's file names must be unique; rename one, or upload "
        "each folder as a job of its own"
    ) in said(result)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--expires-in", "100d", "'100d' is 100 days"),
        ("--expires-in", "59m", "'59m' is 59 minutes"),
        ("--expires-in", "600", "'600' is 10 minutes"),
        ("--extend", "13w", "'13w' is 91 days"),
    ],
)
def test_a_link_life_out_of_range_says_the_range_in_words(
    option: str, value: str, words: str
) -> None:
    # Refused before any connection is made: no API is configured here.
    result = invoke("share", "job1", option, value)
    assert result.exit_code == 2
    assert says(f"{option}: must be between 1 hour and 90 days; {words}") in said(result)


def test_a_link_life_that_is_not_a_duration_names_the_forms() -> None:
    result = invoke("share", "job1", "--expires-in", "a month")
    assert result.exit_code == 2
    assert says("use seconds, or a number with s, m, h, d or w (e.g. 12h, 30d)") in said(result)


def test_local_up_refuses_a_studio_colour_that_is_not_one_before_starting() -> None:
    result = invoke("local", "up", "--port", "0", "--studio-accent-colour", "red")
    assert result.exit_code == 2
    assert says("--studio-accent-colour: 'red' is not a colour: use #rgb or #rrggbb") in said(
        result
    )


def test_local_up_refuses_a_pool_maximum_below_its_minimum_before_starting() -> None:
    result = invoke("local", "up", "--port", "0", "--pool-size", "2", "--pool-max", "1")
    assert result.exit_code == 2
    assert says("--pool-max 1 is below --pool-size 2, the pool's minimum") in said(result)
