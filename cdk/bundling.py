"""Packaging the project for Lambda and for the worker, locally: no Docker, no account.

Lambda: one zip shared by every function, holding the runtime packages (darkroom/
without its dev-only subpackages, tasks/, and workflows' package marker + ASL) and the
runtime dependencies, installed by pip for Lambda's platform: CPython 3.12 on arm64
(Amazon Linux 2023, glibc 2.34), wheels only, so nothing compiles on the build machine.

The dependencies are the lock's (`requirements.lock`, see cdk/lock.py): exact versions,
installed with --require-hashes --no-deps, so synth never resolves anything. They are
installed once per set of pins into a cache directory keyed by a hash of the pins and the
target platform; later synths copy from the cache and never run pip. Delete the cache
(`cdk/.cache/`, or $DARKROOM_CDK_CACHE) to install again.

boto3 (and botocore) are left out: the python3.12 runtime ships a boto3 that satisfies
the project's `boto3>=1.34`, and bundling our own would add ~80 MB unzipped to every
function for no behaviour we rely on.

Worker: the project's source tree as a CDK asset, with `worker-requirements.txt` (the
lock's part for the instance's Python and architecture), the wheels it names and the
project's own wheel: the instance installs from them with no index, hashes checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from cdk import lock
from cdk.worker_boot import WORKER_PROJECT_WHEELS, WORKER_REQUIREMENTS, WORKER_WHEELS

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR: Final = Path(__file__).resolve().parent / ".cache"
CACHE_ENV: Final = "DARKROOM_CDK_CACHE"

LAMBDA_PYTHON_VERSION: Final = "3.12"
# The worker's Python: Amazon Linux 2023's python3.12 package.
WORKER_PYTHON_VERSION: Final = "3.12"
# Amazon Linux 2023's, under both the Lambda runtime and the worker's AMI.
AL2023_GLIBC_MINOR: Final = 34


def manylinux_platforms(machine: str, glibc_minor: int = AL2023_GLIBC_MINOR) -> tuple[str, ...]:
    """Every manylinux tag a glibc 2.`glibc_minor` system on `machine` can load: pip does
    not expand manylinux_2_X tags downwards by itself."""
    return (
        *(f"manylinux_2_{minor}_{machine}" for minor in range(17, glibc_minor + 1)),
        f"manylinux2014_{machine}",
    )


LAMBDA_PLATFORMS: Final[tuple[str, ...]] = manylinux_platforms("aarch64")
# Provided by the Lambda runtime (see the module docstring).
RUNTIME_PROVIDED: Final = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
# The big ones, removed again when a dependency pulls them in (aws-xray-sdk needs
# botocore, which the runtime's satisfies).
PRUNED: Final = frozenset({"boto3", "botocore", "s3transfer"})

# What each bundle copies, relative to the project root. Dev-only code stays out: the
# local cloud (moto) and the CLI (typer/rich) never run in Lambda, and workflows'
# authoring module imports the stepfunctions SDK.
LAMBDA_SOURCES: Final = ("darkroom", "tasks", "workflows/__init__.py", "workflows/*.asl.json")
LAMBDA_EXCLUDED_DIRS: Final = ("darkroom/local", "darkroom/cli")
WORKER_SOURCES: Final = (
    "pyproject.toml",
    "README.md",  # pyproject's `readme`: setuptools refuses to build without it
    "darkroom",
    "tasks",
    "worker",
    "workflows",
)
_SKIP_NAMES: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIP_SUFFIXES: Final = (".pyc", ".pyo", ".egg-info")


# -- requirements -------------------------------------------------------------------
def _dist_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"unreadable requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def lambda_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> tuple[str, ...]:
    """The base dependencies plus the `lambda` extra, minus what the runtime provides."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    own = _dist_name(project["name"])
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = []
    pending = [*project.get("dependencies", []), *extras.get("lambda", [])]
    seen_extras: set[str] = set()
    while pending:
        requirement = pending.pop(0)
        if _dist_name(requirement) == own:
            # "darkroom[x]": pull in that extra's requirements instead of the project.
            for extra in re.findall(r"\[([^\]]*)\]", requirement)[0].split(","):
                extra = extra.strip()
                if extra and extra not in seen_extras:
                    seen_extras.add(extra)
                    pending.extend(extras.get(extra, []))
            continue
        if _dist_name(requirement) in RUNTIME_PROVIDED:
            continue
        if requirement not in found:
            found.append(requirement)
    return tuple(sorted(found, key=str.lower))


def lambda_pins(root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """The Lambda bundle's requirements from the lock: one pinned, hashed entry each."""
    pins = lock.select(
        lock.read_lock(root / lock.LOCK_FILE.name),
        lambda_requirements(root / "pyproject.toml"),
        environment=Target().environment(),
        provided=RUNTIME_PROVIDED,
    )
    return tuple(p.line(with_marker=False) for p in pins)


def worker_pins(target: Target, root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """The worker's requirements from the lock (the base and the `worker` extra) for
    `target`'s Python and architecture: one pinned, hashed entry each."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    roots = [*project.get("dependencies", []), *project["optional-dependencies"]["worker"]]
    pins = lock.select(
        lock.read_lock(root / lock.LOCK_FILE.name), roots, environment=target.environment()
    )
    return tuple(p.line(with_marker=False) for p in pins)


@dataclass(frozen=True)
class Target:
    """Where the wheels will run (by default: Lambda's)."""

    python_version: str = LAMBDA_PYTHON_VERSION
    implementation: str = "cp"
    platforms: tuple[str, ...] = LAMBDA_PLATFORMS
    machine: str = "aarch64"

    def environment(self) -> dict[str, str]:
        return lock.environment(self.python_version, self.machine)

    def pip_args(self) -> list[str]:
        args = ["--implementation", self.implementation, "--python-version", self.python_version]
        for platform in self.platforms:
            args += ["--platform", platform]
        return args


def worker_target(
    machine: str,
    python_version: str = WORKER_PYTHON_VERSION,
    glibc_minor: int = AL2023_GLIBC_MINOR,
) -> Target:
    """A pool instance's: CPython 3.12 on Amazon Linux 2023 on `machine`."""
    return Target(
        python_version=python_version,
        platforms=manylinux_platforms(machine, glibc_minor),
        machine=machine,
    )


def requirements_key(requirements: Sequence[str], target: Target) -> str:
    digest = hashlib.sha256()
    for part in (
        *requirements,
        "|",
        target.implementation,
        target.python_version,
        *target.platforms,
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


# -- the dependency cache -----------------------------------------------------------
def _once(
    final: Path,
    requirements: Sequence[str],
    target: Target,
    make: Callable[[Sequence[str], Target, Path], None],
) -> Path:
    """`final`, made by `make` unless a complete one is there already."""
    if (final / ".complete").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Made beside, then renamed: an interrupted pip never leaves a tree that looks
    # complete, and two synths racing cannot mix their files.
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    make(requirements, target, building)
    (building / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    try:
        building.rename(final)
    except OSError:
        # Another process finished first; its tree is as good as ours.
        shutil.rmtree(building, ignore_errors=True)
        if not (final / ".complete").is_file():
            raise
    return final


def _pip_locked(
    verb: str,
    requirements: Sequence[str],
    target: Target,
    where: Sequence[str],
    into: Path,
    what: str,
) -> None:
    """pip `verb` of exactly `requirements`, the lock's pinned and hashed entries, as
    wheels for `target`: nothing is resolved and every file's hash is checked."""
    listing = into.with_name(f"{into.name}.requirements.txt")
    listing.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    try:
        arguments = [verb, "--only-binary=:all:", *target.pip_args()]
        arguments += ["--require-hashes", "--no-deps", *where, "--requirement", str(listing)]
        _pip(arguments, into, what)
    finally:
        listing.unlink(missing_ok=True)


def _pip(arguments: Sequence[str], into: Path, what: str) -> None:
    command = [sys.executable, "-m", "pip", *arguments[:1], "--quiet"]
    command += ["--disable-pip-version-check", *arguments[1:]]
    print(f"darkroom: pip {arguments[0]} into {into}", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(into, ignore_errors=True)
        raise RuntimeError(f"pip could not {what}:\n{' '.join(command)}\n{result.stderr}")


class DependencyCache:
    """What synth makes once and keeps: site-packages trees for Lambda and wheelhouses
    for the worker, one per set of pins and target, and the project's own wheel, one per
    version of its files."""

    def __init__(self, root: Path | None = None) -> None:
        base = root or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)
        self.root = base / "lambda-deps"
        self.wheel_root = base / "worker-wheels"
        self.project_root = base / "project-wheels"
        self.pip_runs = 0  # for tests: a warm cache never runs pip

    def path_for(self, requirements: Sequence[str], target: Target) -> Path:
        return self.root / requirements_key(requirements, target)

    def ensure(self, requirements: Sequence[str], target: Target) -> Path:
        """A site-packages tree of `requirements` for `target`."""
        return _once(self.path_for(requirements, target), requirements, target, self.pip_install)

    def wheels(self, requirements: Sequence[str], target: Target) -> Path:
        """A directory of `requirements`' wheels for `target`, hashes checked."""
        final = self.wheel_root / requirements_key(requirements, target)
        return _once(final, requirements, target, self.pip_download)

    def project_wheel(self, files: Sequence[Path], root: Path) -> Path:
        """A directory holding the wheel of the project as `files` are now."""
        final = self.project_root / files_hash(files, root)[:24]

        def build(_requirements: Sequence[str], _target: Target, into: Path) -> None:
            self.pip_runs += 1
            with tempfile.TemporaryDirectory() as staging:
                _copy_files(files, root, Path(staging))
                _pip(["wheel", "--no-deps", "--wheel-dir", str(into), staging], into, "build")

        return _once(final, (), Target(), build)

    def pip_download(self, requirements: Sequence[str], target: Target, into: Path) -> None:
        self.pip_runs += 1
        what = f"download the worker's wheels for CPython {target.python_version}"
        what += f" on {target.machine}"
        _pip_locked("download", requirements, target, ["--dest", str(into)], into, what)

    def pip_install(self, requirements: Sequence[str], target: Target, into: Path) -> None:
        self.pip_runs += 1
        if not requirements:
            into.mkdir(parents=True)
            return
        _pip_locked(
            "install",
            requirements,
            target,
            # pip would byte-compile with the build machine's Python, not 3.12.
            ["--no-compile", "--target", str(into)],
            into,
            "install the Lambda dependencies as manylinux wheels for CPython "
            f"{target.python_version} on {target.machine} (a package without such a "
            "wheel cannot be bundled without Docker)",
        )
        remove_distributions(into, PRUNED)


def remove_distributions(site: Path, dist_names: Iterable[str]) -> None:
    """Uninstall distributions from a `pip install --target` tree, by their RECORDs."""
    from importlib.metadata import distributions

    unwanted = {_dist_name(n) for n in dist_names}
    root = site.resolve()
    for dist in distributions(path=[str(site)]):
        if _dist_name(dist.metadata["Name"] or "") not in unwanted:
            continue
        # Resolved before anything goes: the list comes from the RECORD file itself.
        files = [(site / f).resolve() for f in dist.files or ()]
        for path in files:
            if path.is_relative_to(root) and path.is_file():
                path.unlink()
        for directory in sorted({path.parent for path in files}, reverse=True):
            while directory != root and directory.is_relative_to(root):
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()
                directory = directory.parent


# -- project files ------------------------------------------------------------------
def _skipped(relative: Path) -> bool:
    return any(part in _SKIP_NAMES or part.endswith(_SKIP_SUFFIXES) for part in relative.parts)


def project_files(
    patterns: Iterable[str],
    *,
    excluded_dirs: Iterable[str] = (),
    root: Path = PROJECT_ROOT,
) -> list[Path]:
    """Relative paths of the files the patterns name (directories recursively), sorted."""
    excluded = [Path(d) for d in excluded_dirs]
    chosen: set[Path] = set()
    for pattern in patterns:
        matches = sorted(root.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"{pattern}: nothing to package under {root}")
        for match in matches:
            candidates = [p for p in match.rglob("*") if p.is_file()] if match.is_dir() else [match]
            for path in candidates:
                relative = path.relative_to(root)
                if _skipped(relative) or any(relative.is_relative_to(d) for d in excluded):
                    continue
                chosen.add(relative)
    return sorted(chosen)


def files_hash(files: Iterable[Path], root: Path = PROJECT_ROOT, *extra: str) -> str:
    digest = hashlib.sha256()
    for relative in files:
        digest.update(relative.as_posix().encode())
        digest.update(b"\0")
        digest.update((root / relative).read_bytes())
        digest.update(b"\0")
    for part in extra:
        digest.update(part.encode())
    return digest.hexdigest()


def _copy_tree(source: Path, dest: Path) -> None:
    """Hard links where the file system allows (the cache is read-only to us), else copies."""

    def link_or_copy(src: str, dst: str) -> Any:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(
        source,
        dest,
        dirs_exist_ok=True,
        copy_function=link_or_copy,
        ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc"),
    )


def _copy_files(files: Iterable[Path], root: Path, dest: Path) -> None:
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)


# -- ILocalBundling -----------------------------------------------------------------
@jsii.implements(cdk.ILocalBundling)
class LambdaBundling:
    """Project runtime files + cached manylinux dependencies into CDK's output dir."""

    def __init__(
        self,
        files: Sequence[Path],
        requirements: Sequence[str],
        *,
        cache: DependencyCache,
        target: Target,
        root: Path = PROJECT_ROOT,
    ) -> None:
        self.files = list(files)
        self.requirements = list(requirements)
        self.cache = cache
        self.target = target
        self.root = root

    def try_bundle(self, output_dir: str, *, image: Any, **_options: Any) -> bool:
        # jsii hands BundlingOptions over as keywords only if the signature names one.
        del image
        out = Path(output_dir)
        _copy_tree(self.cache.ensure(self.requirements, self.target), out)
        # Project files last: a dependency can never shadow our own packages.
        _copy_files(self.files, self.root, out)
        return True


@jsii.implements(cdk.ILocalBundling)
class WorkerBundling:
    """The worker's source asset: an allow-list of project files, the lock's pins for
    the instance (`worker-requirements.txt`), their wheels and the project's own wheel,
    so the instance installs with no index at all."""

    def __init__(
        self,
        files: Sequence[Path],
        *,
        cache: DependencyCache,
        target: Target,
        root: Path = PROJECT_ROOT,
    ) -> None:
        self.files = list(files)
        self.cache = cache
        self.target = target
        self.root = root
        self.pins = worker_pins(target, root)

    def try_bundle(self, output_dir: str, *, image: Any, **_options: Any) -> bool:
        # jsii hands BundlingOptions over as keywords only if the signature names one.
        del image
        out = Path(output_dir)
        _copy_files(self.files, self.root, out)
        (out / WORKER_REQUIREMENTS).write_text("\n".join(self.pins) + "\n", encoding="utf-8")
        _copy_tree(self.cache.wheels(self.pins, self.target), out / WORKER_WHEELS)
        project = self.cache.project_wheel(self.files, self.root)
        _copy_tree(project, out / WORKER_WHEELS / WORKER_PROJECT_WHEELS)
        return True


def _no_docker() -> cdk.DockerImage:
    # Required by BundlingOptions, never pulled: local bundling always succeeds or raises.
    return cdk.DockerImage.from_registry("local-bundling-only")


def lambda_code(cache: DependencyCache | None = None, root: Path = PROJECT_ROOT) -> lambda_.Code:
    """The one code asset every darkroom function uses."""
    target = Target()
    requirements = lambda_pins(root)
    files = project_files(LAMBDA_SOURCES, excluded_dirs=LAMBDA_EXCLUDED_DIRS, root=root)
    bundler = LambdaBundling(files, requirements, cache=cache or DependencyCache(), target=target)
    return lambda_.Code.from_asset(
        str(root / "tasks"),  # any directory: the custom hash below stands for the content
        asset_hash=files_hash(files, root, requirements_key(requirements, target)),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(image=_no_docker(), local=bundler),
    )


def worker_source_asset(
    scope: Construct,
    id: str,
    machine: str,
    cache: DependencyCache | None = None,
    root: Path = PROJECT_ROOT,
) -> s3_assets.Asset:
    """The worker's code and every wheel it needs, for instances on `machine`."""
    files = project_files(WORKER_SOURCES, root=root)
    target = worker_target(machine)
    bundler = WorkerBundling(files, cache=cache or DependencyCache(), target=target, root=root)
    return s3_assets.Asset(
        scope,
        id,
        path=str(root / "worker"),
        asset_hash=files_hash(files, root, requirements_key(bundler.pins, target)),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(image=_no_docker(), local=bundler),
    )
