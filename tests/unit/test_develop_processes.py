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
from darkroom.imaging.develop import DevelopError, DevelopResult, develop_file
from darkroom.imaging.develop_processes import DevelopProcesses
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw, write_dng
from darkroom.recipes import Recipe, parse_recipe
from tests.checks import run_fresh_python

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


def test_the_process_feeding_the_decoders_loads_no_imaging_library(
    shoot: list[Path], tmp_path: Path
) -> None:
    # The worker's own process: its develop processes load numpy, LibRaw and Pillow, it
    # only passes paths and results (memory and start-up time, once per shard).
    bad = write_corrupt_raw(tmp_path / "BAD.dng", "garbage")
    good, out = str(shoot[0]), str(tmp_path)
    run_fresh_python(
        "import sys\n"
        "from pathlib import Path\n"
        "import worker.main\n"
        "from darkroom.imaging.develop_processes import DevelopProcesses\n"
        "from darkroom.recipes import DEFAULT_RECIPE\n"
        "with DevelopProcesses(1) as pool:\n"
        f"    done = pool.submit(Path({good!r}), Path({out!r}), DEFAULT_RECIPE)\n"
        f"    failed = pool.submit(Path({str(bad)!r}), Path({out!r}), DEFAULT_RECIPE)\n"
        "    assert done.result().renditions, done\n"
        "    assert failed.exception().code == 'unsupported_format'\n"
        "loaded = {'numpy', 'PIL', 'rawpy', 'lensfunpy'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
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


# What a develop process runs instead of develop_file, to play a hostile file: imported by
# name in the process, so module-level.
def hang_on_hang(src: Path, out_dir: Path, recipe: Recipe, *, threads: int) -> DevelopResult:
    if src.stem.startswith("HANG"):
        time.sleep(3600)  # as LibRaw spinning on a malformed file would
    return develop_file(src, out_dir, recipe, threads=threads)


def hog_on_hog(src: Path, out_dir: Path, recipe: Recipe, *, threads: int) -> DevelopResult:
    if src.stem.startswith("HOG"):
        hoard = bytearray(2 * 1024**3)  # past the 512 MiB limit below
        hoard[-1] = 1
    return develop_file(src, out_dir, recipe, threads=threads)


def test_a_file_past_its_time_limit_is_killed_and_the_rest_develop_in_a_fresh_process(
    shoot: list[Path], tmp_path: Path
) -> None:
    hung = write_dng(tmp_path / "HANG.dng", width=480, height=320, seed=3)
    with DevelopProcesses(1, file_timeout_seconds=3, develop=hang_on_hang) as pool:
        first = pool.submit(shoot[0], tmp_path / "out", SMALL)
        doomed = pool.submit(hung, tmp_path / "out", SMALL)
        rest = [pool.submit(p, tmp_path / "out", SMALL) for p in shoot[1:]]
        assert isinstance(first.result(timeout=60), DevelopResult)
        while not doomed.running():
            time.sleep(0.01)
        (hung_pid,) = pool.pids()
        started = time.monotonic()
        with pytest.raises(DevelopError) as caught:
            doomed.result(timeout=60)
        assert time.monotonic() - started < 30
        assert caught.value.code == "timeout"
        assert caught.value.file == "HANG.dng"
        assert str(caught.value) == (
            "HANG.dng: not developed within the 3 s limit per file; its decoder was stopped"
        )
        assert all(isinstance(f.result(timeout=60), DevelopResult) for f in rest)
        assert hung_pid not in pool.pids()
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)
    assert sorted(p.name for p in (tmp_path / "out" / "web").iterdir()) == sorted(
        f"{p.stem}.jpg" for p in shoot
    )


def test_a_file_that_allocates_past_the_memory_limit_fails_alone(
    shoot: list[Path], tmp_path: Path
) -> None:
    hog = write_dng(tmp_path / "HOG.dng", width=480, height=320, seed=4)
    with DevelopProcesses(1, memory_limit_mb=512, develop=hog_on_hog) as pool:
        futures = [pool.submit(p, tmp_path / "out", SMALL) for p in [shoot[0], hog, *shoot[1:]]]
        with pytest.raises(DevelopError) as caught:
            futures[1].result(timeout=60)
        others = [f.result(timeout=60) for f in [futures[0], *futures[2:]]]
    assert caught.value.code == "out_of_memory"
    assert caught.value.file == "HOG.dng"
    assert "limit 512 MiB per process" in caught.value.reason
    assert all(isinstance(r, DevelopResult) for r in others)


def test_the_decoder_running_out_of_memory_fails_the_file_out_of_memory(tmp_path: Path) -> None:
    # 12 MP at full size wants ~170 MB beyond the interpreter's own; 160 MiB in all is
    # enough to start, not to decode.
    big = write_dng(tmp_path / "BIG.dng", width=4000, height=3000, seed=5)
    full = parse_recipe({"renditions": [{"name": "full", "long_edge": "full"}]})
    with DevelopProcesses(1, memory_limit_mb=160) as pool, pytest.raises(DevelopError) as caught:
        pool.submit(big, tmp_path / "out", full).result(timeout=120)
    assert caught.value.code == "out_of_memory", caught.value
    assert caught.value.reason == (
        "not enough memory to develop this file (limit 160 MiB per process)"
    )
    assert not list(tmp_path.rglob("*.jpg"))


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
