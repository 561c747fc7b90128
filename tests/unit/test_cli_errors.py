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
    # Wide, so that each message is on one line as a user's terminal would show it.
    return RUNNER.invoke(cli.app, list(args), env={"COLUMNS": "300", **env}, prog_name="darkroom")


def said(result) -> str:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.output


def test_a_recipe_error_keeps_its_square_brackets(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"white_balance": {"mode": "fixed"}}')
    result = invoke("develop", str(tmp_path), "--out", str(tmp_path / "o"), "--recipe", str(recipe))
    assert result.exit_code == 2
    assert 'required when mode is "fixed" ([red, green, blue])' in said(result)


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
    assert "IMG_[red]_0001.nef" in said(result)
    assert "IMG__0001.nef" not in result.output
