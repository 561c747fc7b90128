"""The one lock file (`requirements.lock`): every version the tests, the Lambda bundle
and the worker install, each with its hashes.

It is written by uv from pyproject.toml for every extra and every platform at once
(`make lock`), so one file serves a laptop's Python 3.11, Lambda's 3.12 on arm64 and a
worker's 3.12 on either architecture; a target takes the part of it that it needs.
Which part: the packages its own requirements name and, transitively, what uv recorded
requires them (its `# via` lines), so no second resolution ever runs at synth or boot.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.markers import Marker
from packaging.requirements import Requirement

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
LOCK_FILE: Final = PROJECT_ROOT / "requirements.lock"
PROJECT: Final = "darkroom"


def environment(python: str, machine: str) -> dict[str, str]:
    """The marker environment of CPython `python` (e.g. "3.12") on Linux on `machine`
    (aarch64, x86_64): pip evaluates a requirement's markers against the interpreter
    running it, not the --platform it installs for, so a target's are settled here."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


LAMBDA_ENVIRONMENT: Final[Mapping[str, str]] = environment("3.12", "aarch64")


def dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One entry of the lock: a distribution at one version, for the platforms its
    marker admits (a distribution may have one entry per Python, say)."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    required_by: frozenset[str]

    def applies(self, environment: Mapping[str, str] | None) -> bool:
        """Whether this entry is for `environment` (None: leave it to the installer)."""
        if self.marker is None or environment is None:
            return True
        return Marker(self.marker).evaluate(dict(environment))

    def line(self, *, with_marker: bool) -> str:
        marker = f" ; {self.marker}" if with_marker and self.marker else ""
        hashes = "".join(f" \\\n    --hash={h}" for h in self.hashes)
        return f"{self.name}=={self.version}{marker}{hashes}"


def read_lock(path: Path = LOCK_FILE) -> list[Pin]:
    """The entries of a `uv pip compile --generate-hashes` file, with uv's `# via` lines."""
    pins: list[Pin] = []
    entry: dict[str, object] | None = None
    via: list[str] = []
    in_via = False

    def close() -> None:
        if entry is not None:
            pins.append(Pin(**entry, required_by=frozenset(via)))  # type: ignore[arg-type]

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw.startswith((" ", "#")):
            close()
            requirement, _, marker = line.rstrip(" \\").partition(";")
            name, _, version = requirement.strip().partition("==")
            if not version:
                raise ValueError(f"{path.name}: {line!r} is not pinned with ==")
            entry = {
                "name": dist_name(name),
                "version": version.strip(),
                "marker": marker.strip() or None,
                "hashes": (),
            }
            via, in_via = [], False
        elif line.startswith("--hash=") and entry is not None:
            entry["hashes"] = (*entry["hashes"], line.removeprefix("--hash=").rstrip(" \\"))  # type: ignore[misc]
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            via.extend([rest] if rest else [])
            in_via = not rest
        elif line.startswith("#   ") and in_via:
            via.append(line.removeprefix("#").strip())
    close()
    for pin in pins:
        if not pin.hashes:
            raise ValueError(f"{path.name}: {pin.name} has no hash: regenerate it with `make lock`")
    return pins


def _requirer(via: str) -> str:
    # "darkroom (pyproject.toml)" names the project itself; anything else is a package.
    return dist_name(via.split(" ", 1)[0])


def select(
    pins: Iterable[Pin],
    roots: Iterable[str],
    *,
    environment: Mapping[str, str] | None,
    provided: Collection[str] = (),
) -> list[Pin]:
    """The entries a target installs: its `roots` (requirements) and everything uv
    recorded as required by what is already chosen, for `environment`; `provided`: what
    the target's runtime brings itself, left out along with what only it requires."""
    candidates = [p for p in pins if p.applies(environment)]
    names = {p.name for p in candidates}
    chosen = {dist_name(Requirement(r).name) for r in roots} - set(provided)
    missing = sorted(chosen - names)
    if missing:
        raise ValueError(f"the lock has no entry for {', '.join(missing)}: run `make lock`")
    grew = True
    while grew:
        grew = False
        for pin in candidates:
            if pin.name in chosen or pin.name in provided:
                continue
            if any(_requirer(v) in chosen for v in pin.required_by):
                chosen.add(pin.name)
                grew = True
    return sorted((p for p in candidates if p.name in chosen), key=lambda p: p.name)


def requirements_text(pins: Iterable[Pin], *, with_markers: bool) -> str:
    """A requirements file pip installs with --require-hashes --no-deps."""
    return "".join(p.line(with_marker=with_markers) + "\n" for p in pins)


def unsatisfied(requirements: Iterable[str], pins: Iterable[Pin]) -> list[str]:
    """The requirements (PEP 508 strings) no entry of the lock satisfies: pyproject.toml
    changed and the lock did not follow."""
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    stale = []
    for text in requirements:
        requirement = Requirement(text)
        name = dist_name(requirement.name)
        if name == PROJECT:
            continue
        found = by_name.get(name, [])
        if not found or not all(
            requirement.specifier.contains(p.version, prereleases=True) for p in found
        ):
            stale.append(text)
    return stale
