"""Development in several processes at once, and `darkroom develop` on the local machine."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from darkroom.cli.develop_cmd import develop
from darkroom.imaging.develop import DevelopError, DevelopResult
from darkroom.imaging.develop_processes import DevelopProcesses
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw, write_dng
from darkroom.recipes import parse_recipe

SMALL = parse_recipe({"renditions": [{"name": "web", "long_edge": 200}]})


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_demo_shoot(tmp_path_factory.mktemp("shoot"), count=3, width=480, height=320)


def test_a_pool_develops_every_file_and_reports_failures_per_file(
    shoot: list[Path], tmp_path: Path
) -> None:
    bad = write_corrupt_raw(tmp_path / "BAD.dng", "garbage")
    with DevelopProcesses(2) as pool:
        futures = [pool.submit(p, tmp_path / "out", SMALL) for p in [*shoot, bad]]
        results = [f.exception() or f.result() for f in futures]
    assert all(isinstance(r, DevelopResult) for r in results[:-1])
    assert isinstance(results[-1], DevelopError)
    assert results[-1].code == "unsupported_format"
    assert sorted(p.name for p in (tmp_path / "out" / "web").iterdir()) == sorted(
        f"{p.stem}.jpg" for p in shoot
    )


def test_a_decoder_crash_fails_that_file_and_the_next_file_gets_a_fresh_process(
    shoot: list[Path], tmp_path: Path
) -> None:
    big = write_dng(tmp_path / "BIG.dng", width=3000, height=2000, seed=2)
    full = parse_recipe({"renditions": [{"name": "full", "long_edge": "full"}]})
    with DevelopProcesses(1) as pool:
        doomed = pool.submit(big, tmp_path / "out", full)
        while not doomed.running():
            time.sleep(0.01)
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)  # as a segfault in LibRaw would end it
        with pytest.raises(DevelopError) as caught:
            doomed.result(timeout=60)
        assert caught.value.code == "decode_failed"
        assert "crashed" in caught.value.reason
        assert caught.value.file == "BIG.dng"
        after = pool.submit(shoot[0], tmp_path / "out", SMALL).result(timeout=60)
    assert after.renditions[0].path.is_file()
    assert pool.pids() == []


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(develop)

    @app.command()
    def other() -> None:  # a second command, so `develop` is named as the lead registers it
        """Placeholder."""

    return app


def test_develop_command_writes_renditions_and_exits_nonzero_naming_the_bad_file(
    shoot: list[Path], tmp_path: Path
) -> None:
    bad = write_corrupt_raw(tmp_path / "BROKEN.dng", "truncated")
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"renditions": [{"name": "web", "long_edge": 300, "format": "webp"}]}')
    result = CliRunner().invoke(
        _cli(),
        [
            "develop",
            str(shoot[0]),
            str(bad),
            str(shoot[1]),
            "--out",
            str(tmp_path / "out"),
            "--recipe",
            str(recipe),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1, result.output
    assert "BROKEN.dng" in result.output
    assert "truncated" in result.output
    assert "2 of 3 files developed" in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "web").iterdir()) == sorted(
        f"{p.stem}.webp" for p in shoot[:2]
    )


def test_develop_command_with_a_bad_recipe_names_the_field_and_develops_nothing(
    shoot: list[Path], tmp_path: Path
) -> None:
    recipe = tmp_path / "recipe.json"
    recipe.write_text('{"exposure": {"compensation_ev": 12}}')
    result = CliRunner().invoke(
        _cli(),
        ["develop", str(shoot[0]), "--out", str(tmp_path / "out"), "--recipe", str(recipe)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "recipe.exposure.compensation_ev" in result.output
    assert not (tmp_path / "out").exists()


def test_develop_command_with_the_default_recipe_succeeds(
    shoot: list[Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(_cli(), ["develop", str(shoot[2]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} == {"web", "thumb", "full"}
