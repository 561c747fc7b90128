"""RAW development speed and memory, side by side with the tools a studio would script.

On a 24 MP DNG mosaiced at run time from a real 6000x4000 photograph
(../shared/samples/images/immich_craft-beer.jpg; a synthetic scene when it is absent), and
on the real RAW files in ../shared/samples/raw when present, in one run:

- darkroom's per-file time for the web+thumb recipe (web 2048 + thumb 400 JPEG), in a
  warm process as the worker runs it;
- `dcraw_emu -w -h` (LibRaw's own converter, half size: the floor);
- `darktable-cli` and `rawtherapee-cli`, each producing a 2048 px JPEG;
- peak memory (max RSS) of each developing process;
- darkroom's throughput with one core and with every core.

Each timing is the median of --runs rounds; tools take turns within a round, so a busy
machine slows them alike. Nothing is installed: a missing tool is reported as missing.
Debian packages: libraw-bin (dcraw_emu), darktable (darktable-cli), rawtherapee
(rawtherapee-cli).

    .venv/bin/python -m benchmarks.raw_develop [--runs 5] [--files 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples"
PHOTO = SAMPLES / "images" / "immich_craft-beer.jpg"
WEB_THUMB = {
    "renditions": [
        {"name": "web", "long_edge": 2048, "quality": 90},
        {"name": "thumb", "long_edge": 400, "quality": 85},
    ]
}
TARGETS = {
    "vs_dcraw": 1.3,  # darkroom per file <= 1.3x dcraw_emu -h
    "vs_darktable": 5.0,  # darkroom >= 5x faster than darktable-cli
    "peak_mb": 400.0,  # per developing process, 24 MP
    "scaling": 1.7,  # all cores vs one core, on 2 cores
}
RT_RESIZE = """[Resize]
Enabled=true
Scale=1
AppliesTo=Cropped area
Method=Lanczos
DataSpecified=3
Width=2048
Height=2048
AllowUpscaling=false
"""

console = Console()


@dataclass
class Measure:
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def peak(self) -> float | None:
        return max(self.peak_mb) if self.peak_mb else None


# Runs a command and reports its peak RSS. A small process of its own does the fork: a
# child's max RSS counts what it inherited before exec, so forking from this (large)
# process would add this process's size to every tool's figure.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - started
err = proc.stderr.read().decode(errors="replace")[-300:]
print(json.dumps([os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss / 1024, err]))
"""


def run_measured(cmd: Sequence[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    code, elapsed, peak, stderr = json.loads(done.stdout.strip().splitlines()[-1])
    if code != 0:
        raise RuntimeError(f"{cmd[0]} exited {code}: {stderr.strip()}")
    return float(elapsed), float(peak)


# -- inputs -----------------------------------------------------------------------------
def make_24mp(dest: Path) -> tuple[Path, str]:
    import numpy as np
    from PIL import Image

    from darkroom.imaging.fixtures import render_scene, write_photo_dng

    if PHOTO.is_file():
        with Image.open(PHOTO) as img:
            pixels = np.asarray(img.convert("RGB"))
        source = f"{PHOTO.name} ({pixels.shape[1]}x{pixels.shape[0]})"
    else:
        scene = render_scene(6000, 4000, seed=1)
        pixels = (np.clip(scene, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
        source = f"synthetic scene 6000x4000 ({PHOTO} not present)"
    return write_photo_dng(dest, pixels, seed=1, model="Photo 24MP"), source


def real_samples(work: Path) -> list[Path]:
    """The samples darkroom develops (the rest are the damaged files of the tests)."""
    raw_dir = SAMPLES / "raw"
    if not raw_dir.is_dir():
        return []
    from darkroom.imaging.develop import DevelopError, develop_file
    from darkroom.recipes import parse_recipe

    good = []
    for path in sorted(raw_dir.iterdir()):
        try:
            develop_file(path, work / "probe", parse_recipe(WEB_THUMB))
        except DevelopError:
            continue
        good.append(path)
    return good


# -- tools ------------------------------------------------------------------------------
class Darkroom:
    """A warm process developing one file per request, as a worker's pool process does."""

    SCRIPT = """
import json, sys, time
from pathlib import Path
from darkroom.imaging.develop import develop_file
from darkroom.recipes import parse_recipe
recipe = parse_recipe(json.loads(sys.argv[1]))
for line in sys.stdin:
    src, out = line.rstrip("\\n").split("\\t")
    started = time.perf_counter()
    develop_file(Path(src), Path(out), recipe, threads=int(sys.argv[2]))
    print(time.perf_counter() - started, flush=True)
"""

    def __init__(self, recipe: dict, threads: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, json.dumps(recipe), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def develop(self, src: Path, out: Path) -> float:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{src}\t{out}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the darkroom process ended")
        return float(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def darkroom_peak(src: Path, out: Path, recipe: dict) -> float:
    script = (
        "import json,sys; from pathlib import Path; "
        "from darkroom.imaging.develop import develop_file; "
        "from darkroom.recipes import parse_recipe; "
        "develop_file(Path(sys.argv[1]), Path(sys.argv[2]), parse_recipe(json.loads(sys.argv[3])))"
    )
    _, peak = run_measured([sys.executable, "-c", script, str(src), str(out), json.dumps(recipe)])
    return peak


def dcraw_emu(src: Path, work: Path) -> tuple[float, float]:
    # dcraw_emu writes <input>.ppm beside its input: give it a copy in a scratch directory.
    local = work / src.name
    if not local.exists():
        shutil.copy(src, local)
    return run_measured(["dcraw_emu", "-w", "-h", str(local)])


def darktable(src: Path, work: Path) -> tuple[float, float]:
    out = work / f"{src.stem}-dt.jpg"
    out.unlink(missing_ok=True)
    config = work / "darktable-config"
    return run_measured(
        [
            "darktable-cli",
            str(src),
            str(out),
            "--width",
            "2048",
            "--height",
            "2048",
            "--hq",
            "true",
            "--core",
            "--configdir",
            str(config),
            "--library",
            ":memory:",
        ]
    )


def rawtherapee(src: Path, work: Path) -> tuple[float, float]:
    profile = work / "resize-2048.pp3"
    if not profile.exists():
        profile.write_text(RT_RESIZE)
    out = work / f"{src.stem}-rt.jpg"
    return run_measured(
        ["rawtherapee-cli", "-o", str(out), "-j90", "-Y", "-d", "-p", str(profile), "-c", str(src)],
        cwd=work,
    )


EXTERNAL: dict[str, tuple[str, Callable[[Path, Path], tuple[float, float]]]] = {
    "dcraw_emu -h": ("dcraw_emu", dcraw_emu),
    "darktable-cli (2048 JPEG)": ("darktable-cli", darktable),
    "rawtherapee-cli (2048 JPEG)": ("rawtherapee-cli", rawtherapee),
}


def throughput(files: list[Path], out: Path, workers: int, cpus: set[int]) -> float:
    """Files per second for DevelopProcesses of `workers` processes confined to `cpus`."""
    from darkroom.imaging.develop_processes import DevelopProcesses
    from darkroom.recipes import parse_recipe

    recipe = parse_recipe(WEB_THUMB)
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)  # inherited by the pool's processes
    try:
        with DevelopProcesses(workers) as pool:
            # Warm: each process has its libraries loaded before the clock starts.
            for future in [pool.submit(files[0], out / "warm", recipe) for _ in range(workers)]:
                future.result()
            started = time.perf_counter()
            futures = [pool.submit(f, out / f"t{i}", recipe) for i, f in enumerate(files)]
            for future in futures:
                future.result()
            return len(files) / (time.perf_counter() - started)
    finally:
        os.sched_setaffinity(0, original)


# -- the run ----------------------------------------------------------------------------
def bench_file(src: Path, work: Path, runs: int, tools: list[str]) -> dict[str, Measure]:
    results = {name: Measure() for name in ["darkroom (web+thumb)", *tools]}
    available = {name for name in tools if shutil.which(EXTERNAL[name][0])}
    for name in tools:
        if name not in available:
            results[name].error = f"{EXTERNAL[name][0]} not installed"
    threads = len(os.sched_getaffinity(0))
    warm = Darkroom(WEB_THUMB, threads)
    try:
        warm.develop(src, work / "dr-warm")
        for _ in range(runs):
            results["darkroom (web+thumb)"].seconds.append(warm.develop(src, work / "dr"))
            for name in tools:
                if name in available and results[name].error is None:
                    try:
                        seconds, peak = EXTERNAL[name][1](src, work)
                    except Exception as exc:
                        results[name].error = str(exc)[:200]
                        continue
                    results[name].seconds.append(seconds)
                    results[name].peak_mb.append(peak)
    finally:
        warm.close()
    results["darkroom (web+thumb)"].peak_mb.append(darkroom_peak(src, work / "peak", WEB_THUMB))
    return results


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def table(title: str, results: dict[str, Measure]) -> Table:
    base = results.get("dcraw_emu -h")
    ours = results["darkroom (web+thumb)"].median
    t = Table(title=title)
    for column in (
        "tool",
        "per file (s, median)",
        "x dcraw_emu -h",
        "darkroom faster by",
        "peak MB",
    ):
        t.add_column(column, justify="left" if column == "tool" else "right")
    for name, m in results.items():
        if m.error:
            t.add_row(name, m.error, "", "", "")
            continue
        ratio = m.median / base.median if base and base.median and m.median else None
        faster = m.median / ours if ours and m.median else None
        t.add_row(
            name, fmt(m.median), fmt(ratio, ".2f"), fmt(faster, ".1f") + "x", fmt(m.peak, ".0f")
        )
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds per file (median)")
    parser.add_argument("--files", type=int, default=8, help="files in the throughput run")
    parser.add_argument("--no-samples", action="store_true", help="skip ../shared/samples/raw")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--tools",
        default="dcraw,darktable,rawtherapee",
        help="comparison tools to run (comma-separated; dcraw is needed for the ratio)",
    )
    args = parser.parse_args()
    wanted = {t.strip() for t in args.tools.split(",") if t.strip()}
    tools = [name for name in EXTERNAL if any(name.startswith(w) for w in wanted)]
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as tmp:
        work = Path(tmp)
        console.print("writing the 24 MP DNG ...")
        dng, source = make_24mp(work / "photo24.dng")
        console.print(f"24 MP DNG from {source}: {dng.stat().st_size / 1e6:.0f} MB")
        main_results = bench_file(dng, work, args.runs, tools)
        console.print(table(f"24 MP DNG ({source}), {args.runs} rounds", main_results))

        full = {"renditions": [*WEB_THUMB["renditions"], {"name": "full", "long_edge": "full"}]}
        full_peak = darkroom_peak(dng, work / "peak-full", full)
        console.print(f"darkroom peak memory with a full-size rendition too: {full_peak:.0f} MB")

        cores = sorted(os.sched_getaffinity(0))
        copies = []
        for i in range(args.files):
            copy = work / "many" / f"P{i:03d}.dng"
            copy.parent.mkdir(exist_ok=True)
            os.link(dng, copy)
            copies.append(copy)
        # A shared host's speed drifts by half over minutes (one core measured 1.1 to 1.7
        # files/s within one run), so a single pair can show anything: alternate, and
        # take the median of each pair's ratio, the two halves of a pair being seconds
        # apart.
        ones, everys, scalings = [], [], []
        for _ in range(max(3, args.runs)):
            ones.append(throughput(copies, work / "tp1", 1, {cores[0]}))
            everys.append(throughput(copies, work / "tpn", len(cores), set(cores)))
            scalings.append(everys[-1] / ones[-1])
        one, every = statistics.median(ones), statistics.median(everys)
        scaling = statistics.median(scalings)
        console.print(
            f"throughput: one core {one:.2f} files/s, {len(cores)} cores {every:.2f} files/s; "
            f"per-pair ratios {', '.join(f'{r:.2f}' for r in scalings)} (median {scaling:.2f}x)"
        )

        samples = [] if args.no_samples else real_samples(work)
        sample_rows: dict[str, dict[str, Measure]] = {}
        for path in samples:
            sample_rows[path.name] = bench_file(
                path, work, max(1, args.runs // 2), ["dcraw_emu -h"]
            )
        if sample_rows:
            t = Table(title="real RAW samples (darkroom web+thumb vs dcraw_emu -h)")
            for column in ("file", "darkroom (s)", "dcraw_emu -h (s)", "ratio", "darkroom peak MB"):
                t.add_column(column, justify="left" if column == "file" else "right")
            for name, r in sample_rows.items():
                ours, base = r["darkroom (web+thumb)"], r["dcraw_emu -h"]
                ratio = ours.median / base.median if ours.median and base.median else None
                t.add_row(
                    name,
                    fmt(ours.median),
                    fmt(base.median) if not base.error else base.error,
                    fmt(ratio, ".2f"),
                    fmt(ours.peak, ".0f"),
                )
            console.print(t)

    ours = main_results["darkroom (web+thumb)"]
    dcraw = main_results.get("dcraw_emu -h", Measure())
    dt = main_results.get("darktable-cli (2048 JPEG)", Measure())
    checks = [
        (
            "darkroom per file <= 1.3x dcraw_emu -h",
            ours.median / dcraw.median if dcraw.median and ours.median else None,
            lambda v: v <= TARGETS["vs_dcraw"],
            ".2f",
            "x",
        ),
        (
            ">= 5x faster than darktable-cli",
            dt.median / ours.median if dt.median and ours.median else None,
            lambda v: v >= TARGETS["vs_darktable"],
            ".1f",
            "x",
        ),
        (
            "peak memory per developing process <= 400 MB (24 MP)",
            ours.peak,
            lambda v: v <= TARGETS["peak_mb"],
            ".0f",
            " MB",
        ),
        (
            f"all-cores throughput >= 1.7x one core ({len(cores)} cores)",
            scaling,
            lambda v: v >= TARGETS["scaling"],
            ".2f",
            "x",
        ),
    ]
    t = Table(title="targets")
    for column in ("target", "measured", "met"):
        t.add_column(column)
    for label, value, ok, spec, unit in checks:
        met = "n/a (tool missing)" if value is None else ("yes" if ok(value) else "NO")
        t.add_row(label, "—" if value is None else f"{value:{spec}}{unit}", met)
        report[label] = value
    console.print(t)
    if args.json:
        report["per_file"] = {
            k: {"median_s": m.median, "peak_mb": m.peak, "error": m.error}
            for k, m in main_results.items()
        }
        report["throughput_files_per_s"] = {
            "one_core": one,
            "all_cores": every,
            "pair_ratios": scalings,
        }
        report["full_rendition_peak_mb"] = full_peak
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
