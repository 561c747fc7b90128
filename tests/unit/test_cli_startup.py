"""`darkroom --help` stays quick: the CLI imports nothing heavy until a command runs.

No timing here (a busy machine would make it flaky): what is checked is what makes the
time, the modules a fresh process has loaded. The times are benchmarks' business.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from darkroom.cli import thumbnail_cmd
from darkroom.cli.main import app
from darkroom.settings import ThumbnailSettings

REPO = Path(__file__).resolve().parents[2]

# Each costs tens to hundreds of milliseconds to import; none is needed to show the help.
HEAVY = (
    "boto3",
    "botocore",
    "s3transfer",
    "moto",
    "numpy",
    "rawpy",
    "PIL",
    "cv2",
    "lensfunpy",
    "pydantic",
    "pydantic_settings",
    "darkroom.api.client",
    "darkroom.api.models",
    "darkroom.imaging",
    "darkroom.local",
    "darkroom.recipes",
    "darkroom.settings",
)

# Runs in a fresh interpreter; prints the heavy modules loaded by what it is told to do,
# less those typer itself loaded (a typer that validates with pydantic imports it).
_PROBE = """
import json, sys
heavy = json.loads(sys.argv[1])
def loaded():
    return {m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)}
import typer
import typer.main
before = loaded()
import darkroom.cli.main
argv = sys.argv[2:]
if argv:
    try:
        darkroom.cli.main.app(argv, prog_name="darkroom")
    except SystemExit:
        pass
print(json.dumps(sorted(loaded() - before)), file=sys.stderr)
"""


def heavy_modules_loaded(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert heavy_modules_loaded() == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["develop", "--help"],
        ["thumbnail", "--help"],
        ["--stack", "other", "upload", "--help"],
        ["local", "up", "--help"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_help_loads_no_heavy_module(argv: list[str]) -> None:
    assert heavy_modules_loaded(*argv) == []


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["develop", "--help"], "Usage: darkroom develop [OPTIONS]"),
        (["status", "--help", "--api-url", "http://127.0.0.1:9"], "Usage: darkroom status"),
        (["local", "up", "--help"], "Usage: darkroom local up [OPTIONS]"),
        (["local", "--help"], "Usage: darkroom local [OPTIONS] COMMAND"),
    ],
)
def test_a_commands_help_is_shown_whatever_the_groups_options(argv: list[str], usage: str) -> None:
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"}, prog_name="darkroom")
    assert result.exit_code == 0, result.output
    assert usage in result.output
    assert "--help" in result.output


def test_help_as_an_options_value_is_not_a_request_for_help() -> None:
    # --sizes takes "--help" as its value: then FILES is missing, as ever.
    result = CliRunner().invoke(app, ["thumbnail", "--sizes", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Missing argument" in result.output
    # After `--`, it is a file name.
    result = CliRunner().invoke(app, ["develop", "--", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Missing option" in result.output and "--out" in result.output


def test_the_thumbnail_commands_defaults_are_the_settings_defaults() -> None:
    # Written out in the CLI so that its help needs no pydantic.
    fields = ThumbnailSettings.model_fields
    assert fields["thumbnail_sizes"].default == thumbnail_cmd.DEFAULT_SIZES
    assert fields["max_image_pixels"].default == thumbnail_cmd.DEFAULT_MAX_PIXELS


def test_version_prints_the_packages_version_and_loads_no_heavy_module() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"], prog_name="darkroom")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"darkroom {version('darkroom')}"
    assert heavy_modules_loaded("--version") == []
