"""The thumbnail core against libvips' vipsthumbnail, side by side, image by image.

For each image (a 24 MP JPEG, a 24 MP PNG, and every file in ../shared/samples/images):

- darkroom: darkroom.imaging.thumbnail.make_thumbnails in this process, as the warm
  Lambda runs it (imports done; the ICC transform cache is cleared before every run, so
  a profile is never converted for free);
- vips: the `vipsthumbnail` command, whole process, as a shell would run it;

both making the same long edge (--size, default 1024) in the same output format and
quality (JPEG q85, or WebP q85 for images with transparency), neither enlarging. Runs
alternate between the two so that load from other processes hits both alike; the table
shows medians. Peak memory is the peak RSS (VmHWM) of a whole process: a fresh Python
process that imports what the Lambda imports and thumbnails the image at the Lambda's
sizes, and vipsthumbnail's own process.

    .venv/bin/python -m benchmarks.thumbnail [--repeat 5] [--size 1024] [--no-samples]

vipsthumbnail comes from Debian's libvips-tools package (apt-get install libvips-tools);
without it the darkroom side still runs and the comparison columns say so. The
benchmark installs nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

from darkroom.imaging import thumbnail as core
from darkroom.settings import TaskSettings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "images"
# A real 6000x4000 photo among the samples, the base of the 24 MP test images.
REAL_24MP = SAMPLES / "immich_craft-beer.jpg"
LAMBDA_SIZES: tuple[int, ...] = TaskSettings.model_fields["thumbnail_sizes"].default
MAX_PIXELS: int = TaskSettings.model_fields["max_image_pixels"].default
TIME_TARGET = 1.0  # darkroom time / vipsthumbnail time, per image
MEMORY_TARGET_MB = 256  # peak RSS of the whole Python process on 24 MP
VIPS_PACKAGE = "libvips-tools"

# Run in a fresh interpreter with what the Lambda imports (boto3, Powertools, the core):
# thumbnail one file at the Lambda's sizes, then report the seconds it took and the
# process's peak RSS (VmHWM: this process's own high-water mark, which, unlike
# ru_maxrss, does not inherit the benchmark's size through fork and exec).
_CHILD = """
import sys, time
from pathlib import Path
import darkroom.aws.thumbnail_store, darkroom.thumbnails
from darkroom.imaging.thumbnail import ThumbnailError, make_thumbnails
sizes = tuple(int(s) for s in sys.argv[2].split(","))
started = time.perf_counter()
try:
    make_thumbnails(Path(sys.argv[1]), sizes, max_pixels=int(sys.argv[3]), name=sys.argv[1])
except ThumbnailError:
    pass
elapsed = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
print(elapsed, hwm)
"""


@dataclass
class Case:
    label: str
    path: Path
    darkroom_seconds: list[float] = field(default_factory=list)
    vips_seconds: list[float] = field(default_factory=list)
    darkroom_peak_mb: float | None = None
    vips_peak_mb: float | None = None
    result: str = ""
    out_size: str = ""
    extension: str = "jpg"
    vips_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.result.startswith("error")

    @property
    def ratio(self) -> float | None:
        if not self.darkroom_seconds or not self.vips_seconds:
            return None
        if self.vips_error or self.failed:
            return None
        return statistics.median(self.darkroom_seconds) / statistics.median(self.vips_seconds)


# -- inputs --------------------------------------------------------------------------
def photo_24mp(console: Console) -> Image.Image:
    if REAL_24MP.is_file():
        with Image.open(REAL_24MP) as image:
            console.print(f"24 MP inputs from the real photo {REAL_24MP.name}")
            return image.convert("RGB")
    console.print(f"[yellow]{REAL_24MP} absent: synthesising a 24 MP photo-like image[/yellow]")
    width, height = 6000, 4000
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 48)
    return Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.ROTATE_180)))


def make_inputs(work: Path, console: Console, samples: bool) -> list[Case]:
    photo = photo_24mp(console)
    jpeg = REAL_24MP if REAL_24MP.is_file() else work / "24mp.jpg"
    if not REAL_24MP.is_file():
        photo.save(jpeg, "JPEG", quality=90)
    png = work / "24mp.png"
    # zlib level 1: a 24 MP photo at the default level takes ~20 s to write, and the
    # decoder's work (inflate + unfilter) hardly depends on the level.
    photo.save(png, "PNG", compress_level=1)
    cases = [
        Case(f"24 MP JPEG ({jpeg.name})", jpeg),
        Case("24 MP PNG (same photo)", png),
    ]
    if samples:
        if SAMPLES.is_dir():
            cases += [
                Case(p.name, p) for p in sorted(SAMPLES.iterdir()) if p.is_file() and p != jpeg
            ]
        else:
            console.print(f"[yellow]samples absent at {SAMPLES}: only the 24 MP images[/yellow]")
    return cases


# -- measurements ------------------------------------------------------------------------
def run_darkroom(case: Case, size: int) -> None:
    started = time.perf_counter()
    try:
        result = core.make_thumbnails(
            case.path, (size,), max_pixels=MAX_PIXELS, name=case.path.name
        )
    except core.ThumbnailError as error:
        case.result = f"error: {error.code.value}"
        case.darkroom_seconds.append(time.perf_counter() - started)
        return
    case.darkroom_seconds.append(time.perf_counter() - started)
    thumb = result.thumbnails[0]
    case.result = f"{result.source_format} {result.source_width}x{result.source_height}"
    case.out_size = f"{thumb.width}x{thumb.height} {thumb.format.extension}"
    case.extension = thumb.format.extension


def _peak_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None  # exiting: its memory is already gone


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, float, float | None]:
    """Run argv; its exit status, wall seconds, and peak RSS in MB (polled VmHWM).

    VmHWM only grows, so the last reading before the process exits is its peak.
    """
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak: int | None = None
    while process.poll() is None:
        peak = max(peak or 0, _peak_kb(process.pid) or 0) or peak
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    return process.returncode, elapsed, None if peak is None else peak / 1024


def run_vips(vips: str, case: Case, size: int, out_dir: Path) -> None:
    options = "[Q=85,effort=2]" if case.extension == "webp" else "[Q=85]"
    target = out_dir / f"vips.{case.extension}{options}"
    # "WxH>": fit the box and only shrink, as the core never enlarges.
    status, elapsed, peak = _run([vips, str(case.path), "-s", f"{size}x{size}>", "-o", str(target)])
    case.vips_seconds.append(elapsed)
    if peak is not None:
        case.vips_peak_mb = max(case.vips_peak_mb or 0.0, peak)
    if status != 0:
        case.vips_error = f"error (exit {status})"


def measure_memory(case: Case) -> None:
    sizes = ",".join(map(str, LAMBDA_SIZES))
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(case.path), sizes, str(MAX_PIXELS)],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode == 0:
        _, peak_kb = child.stdout.split()
        case.darkroom_peak_mb = int(peak_kb) / 1024


# -- report ------------------------------------------------------------------------------
def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f}" if values else "-"


def report(console: Console, cases: list[Case], size: int, vips: str | None, repeat: int) -> int:
    table = Table(
        title=f"thumbnail to {size} px: darkroom core (in-process) vs vipsthumbnail "
        f"(whole process), median of {repeat}",
        show_header=True,
        header_style="bold",
    )
    for column, justify in [
        ("image", "left"),
        ("source", "left"),
        ("out", "left"),
        ("darkroom ms", "right"),
        ("vips ms", "right"),
        ("time ratio", "right"),
        ("darkroom peak MB", "right"),
        ("vips peak MB", "right"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    over: list[str] = []
    for case in cases:
        ratio = case.ratio
        if ratio is not None and ratio > TIME_TARGET:
            over.append(f"{case.label} ({ratio:.2f}x)")
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        if ratio is not None:
            ratio_text = f"[{'red' if ratio > TIME_TARGET else 'green'}]{ratio_text}[/]"
        table.add_row(
            case.label,
            case.result,
            case.out_size or "-",
            _ms(case.darkroom_seconds),
            "not installed" if vips is None else (case.vips_error or _ms(case.vips_seconds)),
            ratio_text,
            "-" if case.darkroom_peak_mb is None else f"{case.darkroom_peak_mb:.0f}",
            "-" if case.vips_peak_mb is None else f"{case.vips_peak_mb:.0f}",
        )
    console.print(table)

    failed = 0
    jpeg = cases[0]
    peak = jpeg.darkroom_peak_mb
    if peak is None:
        console.print("[red]memory: the 24 MP measurement did not run[/red]")
        failed += 1
    else:
        ok = peak <= MEMORY_TARGET_MB
        failed += not ok
        console.print(
            f"memory target (whole Python process with the Lambda's imports, 24 MP JPEG, "
            f"sizes {LAMBDA_SIZES}): "
            f"{peak:.0f} MB peak RSS vs <= {MEMORY_TARGET_MB} MB: "
            + ("[green]met[/green]" if ok else "[red]NOT met[/red]")
        )
    if vips is None:
        console.print(
            f"[yellow]time target: not measured, vipsthumbnail is not installed "
            f"(Debian package {VIPS_PACKAGE}: apt-get install {VIPS_PACKAGE})[/yellow]"
        )
        return failed
    compared = [c for c in cases if c.ratio is not None]
    ratios = [c.ratio for c in compared if c.ratio is not None]
    if ratios:
        console.print(
            f"time target (<= {TIME_TARGET:.1f}x vipsthumbnail per image): {len(compared)} "
            f"images compared, median ratio {statistics.median(ratios):.2f}x, worst "
            f"{max(ratios):.2f}x: "
            + ("[green]met[/green]" if not over else f"[red]NOT met for {', '.join(over)}[/red]")
        )
    skipped = [c.label for c in cases if c.ratio is None and vips is not None]
    if skipped:
        console.print(
            f"[dim]not compared (an error on one side or both): {', '.join(skipped)}[/dim]"
        )
    return failed + bool(over)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per image and tool")
    parser.add_argument("--size", type=int, default=max(LAMBDA_SIZES), help="long edge, px")
    parser.add_argument("--no-samples", action="store_true", help="only the 24 MP images")
    args = parser.parse_args()
    # A table this wide needs more than the 80 columns rich assumes without a terminal.
    console = Console(width=max(150, shutil.get_terminal_size().columns))
    vips = shutil.which("vipsthumbnail")
    if vips is None:
        console.print(
            f"[bold yellow]vipsthumbnail not found: install Debian's {VIPS_PACKAGE} "
            f"(apt-get install {VIPS_PACKAGE}) for the comparison; timing darkroom alone."
            "[/bold yellow]"
        )
    else:
        version = subprocess.run([vips, "--vips-version"], capture_output=True, text=True)
        console.print(f"vipsthumbnail: {version.stdout.strip() or vips}")
    console.print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as tmp:
        work = Path(tmp)
        cases = make_inputs(work, console, samples=not args.no_samples)
        with console.status("measuring...") as status:
            for n, case in enumerate(cases, 1):
                status.update(f"measuring {n}/{len(cases)}: {case.label}")
                run_darkroom(case, args.size)  # warm-up: plugins, and the output format
                case.darkroom_seconds.clear()
                # Bad input is timed once: refusing a bomb takes no time, while vips may
                # spend half a minute decoding 4 gigapixels.
                for _ in range(1 if case.failed else args.repeat):
                    core._transform_from.cache_clear()
                    run_darkroom(case, args.size)
                    if vips is not None:
                        run_vips(vips, case, args.size, work)
                measure_memory(case)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"[dim](this benchmark process itself peaked at {own:.0f} MB)[/dim]")
    sys.exit(1 if report(console, cases, args.size, vips, args.repeat) else 0)


if __name__ == "__main__":
    main()
