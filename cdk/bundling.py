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

Worker: the project's source tree as a CDK asset, with `worker-requirements.txt`, the
lock's part for the worker (markers kept: pip on the instance settles them for its own
Python and architecture), which the instance installs with --require-hashes --no-deps.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from cdk import lock
from cdk.worker_boot import WORKER_REQUIREMENTS

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR: Final = Path(__file__).resolve().parent / ".cache"
CACHE_ENV: Final = "DARKROOM_CDK_CACHE"

LAMBDA_PYTHON_VERSION: Final = "3.12"
# Every manylinux tag the python3.12 runtime (Amazon Linux 2023, glibc 2.34) can load:
# pip does not expand manylinux_2_X tags downwards by itself.
LAMBDA_PLATFORMS: Final[tuple[str, ...]] = (
    *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 35)),
    "manylinux2014_aarch64",
)
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
        environment=lock.LAMBDA_ENVIRONMENT,
        provided=RUNTIME_PROVIDED,
    )
    return tuple(p.line(with_marker=False) for p in pins)


def worker_requirements(root: Path = PROJECT_ROOT) -> str:
    """The worker's requirements file: the base and the `worker` extra, from the lock."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    roots = [*project.get("dependencies", []), *project["optional-dependencies"]["worker"]]
    pins = lock.select(lock.read_lock(root / lock.LOCK_FILE.name), roots, environment=None)
    return lock.requirements_text(pins, with_markers=True)


@dataclass(frozen=True)
class Target:
    """Where the wheels will run."""

    python_version: str = LAMBDA_PYTHON_VERSION
    implementation: str = "cp"
    platforms: tuple[str, ...] = LAMBDA_PLATFORMS

    def pip_args(self) -> list[str]:
        args = ["--implementation", self.implementation, "--python-version", self.python_version]
        for platform in self.platforms:
            args += ["--platform", platform]
        return args


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
class DependencyCache:
    """site-packages trees for a target, one per requirement set, installed once."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)) / "lambda-deps"
        self.pip_runs = 0  # for tests: a warm cache never runs pip

    def path_for(self, requirements: Sequence[str], target: Target) -> Path:
        return self.root / requirements_key(requirements, target)

    def ensure(self, requirements: Sequence[str], target: Target) -> Path:
        final = self.path_for(requirements, target)
        if (final / ".complete").is_file():
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        # Install beside, then rename: an interrupted pip never leaves a tree that
        # looks complete, and two synths racing cannot mix their files.
        building = final.with_name(f"{final.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        self.pip_install(requirements, target, building)
        (building / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        try:
            building.rename(final)
        except OSError:
            # Another process finished first; its tree is as good as ours.
            shutil.rmtree(building, ignore_errors=True)
            if not (final / ".complete").is_file():
                raise
        return final

    def pip_install(self, requirements: Sequence[str], target: Target, into: Path) -> None:
        self.pip_runs += 1
        if not requirements:
            into.mkdir(parents=True)
            return
        listing = into.with_name(f"{into.name}.requirements.txt")
        listing.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            # pip would byte-compile with the build machine's Python, not 3.12.
            "--no-compile",
            "--only-binary=:all:",
            *target.pip_args(),
            # Exactly the lock's entries: nothing resolved, every file's hash checked.
            "--require-hashes",
            "--no-deps",
            "--target",
            str(into),
            "--requirement",
            str(listing),
        ]
        print(f"darkroom: installing Lambda dependencies into {into}", file=sys.stderr)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        listing.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(into, ignore_errors=True)
            raise RuntimeError(
                "pip could not install the Lambda dependencies as manylinux wheels for "
                f"CPython {target.python_version} on arm64 (a package without such a wheel "
                f"cannot be bundled without Docker):\n{' '.join(command)}\n{result.stderr}"
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
class CopyBundling:
    """An allow-list of project files and `generated` ones (name: text), nothing else
    (the worker's source asset)."""

    def __init__(
        self,
        files: Sequence[Path],
        root: Path = PROJECT_ROOT,
        generated: dict[str, str] | None = None,
    ) -> None:
        self.files = list(files)
        self.root = root
        self.generated = dict(generated or {})

    def try_bundle(self, output_dir: str, *, image: Any, **_options: Any) -> bool:
        # jsii hands BundlingOptions over as keywords only if the signature names one.
        del image
        _copy_files(self.files, self.root, Path(output_dir))
        for name, text in self.generated.items():
            (Path(output_dir) / name).write_text(text, encoding="utf-8")
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


def worker_source_asset(scope: Construct, id: str, root: Path = PROJECT_ROOT) -> s3_assets.Asset:
    files = project_files(WORKER_SOURCES, root=root)
    generated = {WORKER_REQUIREMENTS: worker_requirements(root)}
    return s3_assets.Asset(
        scope,
        id,
        path=str(root / "worker"),
        asset_hash=files_hash(files, root, *generated.values()),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            image=_no_docker(), local=CopyBundling(files, root, generated)
        ),
    )
