"""The thumbnail core against libvips' vipsthumbnail, side by side, image by image.

For each image (a 24 MP JPEG, a 24 MP PNG, and every file in ../shared/samples/images):

- darkroom: darkroom.imaging.thumbnailer.make_thumbnails in this process, as the warm
  Lambda runs it (imports done; the ICC transform cache is cleared before every run, so
  a profile is never converted for free);
- vips: the `vipsthumbnail` command, whole process, as a shell would run it;

both making the same long edge (--size, default 1024) in the same output format and
quality (JPEG q85, or WebP q85 for images with transparency), neither enlarging. Runs
alternate between the two so that load from other processes hits both alike; the table
shows medians. Peak memory is the peak RSS (VmHWM) of a whole process: a fresh Python
process that imports what the Lambda imports and thumbnails the image at the Lambda's
sizes, and vipsthumbnail's own process.

Then memory at the pixel limit: images just under max_image_pixels (as deployed, from
cdk.config), one per decode path that holds more than one full-size copy (alpha, a
palette or tRNS colour turned into alpha, 16-bit grey, WebP), each thumbnailed once in a
fresh process. Their worst peak is what the thumbnail Lambda's memory
(cdk.config thumbnail_memory_mb) must exceed; the summary says whether it does.

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

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from cdk.config import DeployConfig
from darkroom.imaging import thumbnailer as core
from darkroom.imaging.thumbnailer import colour
from darkroom.settings import ThumbnailSettings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "images"
# A real 6000x4000 photo among the samples, the base of the 24 MP test images.
REAL_24MP = SAMPLES / "immich_craft-beer.jpg"
LAMBDA_SIZES: tuple[int, ...] = ThumbnailSettings.model_fields["thumbnail_sizes"].default
MAX_PIXELS: int = ThumbnailSettings.model_fields["max_image_pixels"].default
TIME_TARGET = 1.0  # darkroom time / vipsthumbnail time, per image
MEMORY_TARGET_MB = 256  # peak RSS of the whole Python process on 24 MP
# What the deployed thumbnail Lambda gets: its memory, and the pixel limit in its env.
LAMBDA_MEMORY_MB = DeployConfig().thumbnail_memory_mb
LAMBDA_MAX_PIXELS = DeployConfig().max_image_pixels
VIPS_PACKAGE = "libvips-tools"

# Run in a fresh interpreter with what the Lambda imports (boto3, Powertools, the core):
# thumbnail one file at the Lambda's sizes, then report the seconds it took, the
# process's peak RSS (VmHWM: this process's own high-water mark, which, unlike
# ru_maxrss, does not inherit the benchmark's size through fork and exec), and what came
# out (a refused file peaks low for the wrong reason).
_CHILD = """
import sys, time
from pathlib import Path
import darkroom.aws.image_buckets, darkroom.thumbnail_service
from darkroom.imaging.thumbnailer import ThumbnailError, make_thumbnails
sizes = tuple(int(s) for s in sys.argv[2].split(","))
started = time.perf_counter()
try:
    result = make_thumbnails(
        Path(sys.argv[1]), sizes, max_pixels=int(sys.argv[3]), name=sys.argv[1]
    )
    outcome = result.format.extension
except ThumbnailError as error:
    outcome = "error:" + error.code.value
elapsed = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
print(elapsed, hwm, outcome)
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
    memory_outcome: str = ""  # what the memory run made: "jpg", "webp" or "error:<code>"
    memory_seconds: float | None = None  # that run's make_thumbnails, not in the medians

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


def limit_size(max_pixels: int) -> tuple[int, int]:
    """The largest 3:2 image within `max_pixels` (12247x8164 for 100 MP)."""
    height = int((max_pixels / 1.5) ** 0.5)
    width = int(height * 1.5)
    while (width + 1) * height <= max_pixels:
        width += 1
    while width * height > max_pixels:
        width -= 1
    return width, height


def make_limit_inputs(work: Path, console: Console, max_pixels: int) -> list[Case]:
    """Honest images just under the pixel limit: every pixel is really there.

    Content does not change how much a decode holds, so it is a smooth synthetic scene
    (gradients and discs) that zlib and libwebp compress in seconds; a photo would take
    minutes to write at 100 MP. One file per decode path with the most full-size copies.
    """
    width, height = limit_size(max_pixels)
    started = time.perf_counter()
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # writing them, not reading: Pillow's guard would warn
    try:
        across = Image.linear_gradient("L").rotate(90).resize((width, height))
        down = Image.linear_gradient("L").resize((width, height))
        rgb = Image.merge("RGB", (across, down, across.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        draw = ImageDraw.Draw(rgb)
        disc = height // 4
        for i in range(12):
            x, y = i * width // 12, (i % 3) * height // 3
            draw.ellipse((x, y, x + disc, y + disc), fill=(21 * i, 200 - 9 * i, 90))
        # Translucent everywhere but one edge: thumbnails must keep it (WebP).
        alpha = down.point(lambda v: 96 + v * 159 // 255)
        del across
        cases = []

        rgba = rgb.copy()
        rgba.putalpha(alpha)
        del alpha
        path = work / "limit-rgba.png"
        rgba.save(path, "PNG", compress_level=1)
        cases.append(Case("RGBA PNG", path))
        path = work / "limit-rgba.webp"
        rgba.save(path, "WEBP", quality=80, method=0)
        cases.append(Case("RGBA WebP", path))
        del rgba

        path = work / "limit-trns.png"
        # A tRNS colour key: decoded as RGB, made RGBA to carry the transparency.
        rgb.save(path, "PNG", compress_level=1, transparency=rgb.getpixel((0, 0)))
        cases.append(Case("RGB PNG + tRNS colour", path))
        path = work / "limit-palette.png"
        rgb.quantize(64).save(path, "PNG", compress_level=1, transparency=0)
        cases.append(Case("palette PNG + transparent entry", path))
        path = work / "limit-grey16.png"
        # "I;16" from 8-bit grey: x257 spans 0-65535 as a 16-bit scan does.
        grey = down.point(lambda v: v * 257, "I").convert("I;16")
        grey.save(path, "PNG", compress_level=1)
        cases.append(Case("16-bit grey PNG", path))
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    console.print(
        f"pixel-limit inputs: {len(cases)} images of {width}x{height} "
        f"({width * height:,} pixels, limit {max_pixels:,}), written in "
        f"{time.perf_counter() - started:.0f} s"
    )
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


def measure_memory(case: Case, max_pixels: int = MAX_PIXELS) -> None:
    sizes = ",".join(map(str, LAMBDA_SIZES))
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(case.path), sizes, str(max_pixels)],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode == 0:
        seconds, peak_kb, case.memory_outcome = child.stdout.split()
        case.darkroom_peak_mb = int(peak_kb) / 1024
        case.memory_seconds = float(seconds)
    else:
        # Killed (out of memory) or crashed: no peak to report, and that is the finding.
        case.memory_outcome = f"error: exit {child.returncode}"


# -- report ------------------------------------------------------------------------------
def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f}" if values else "-"


def report_limit(console: Console, cases: list[Case], png_24mp: Case) -> int:
    """The pixel-limit table and the Lambda memory verdict; 1 when it is not met."""
    table = Table(
        title=f"peak RSS at the pixel limit ({LAMBDA_MAX_PIXELS:,} pixels, sizes "
        f"{LAMBDA_SIZES}): whole Python process with the Lambda's imports, one run each",
        show_header=True,
        header_style="bold",
    )
    for column, justify in [("image", "left"), ("out", "left"), ("s", "right")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("peak MB", justify="right")
    table.add_column(f"vs Lambda {LAMBDA_MEMORY_MB} MB", justify="right")
    for case in cases:
        peak = case.darkroom_peak_mb
        fits = peak is not None and peak < LAMBDA_MEMORY_MB and not case.failed
        table.add_row(
            case.label,
            case.memory_outcome or "-",
            "-" if case.memory_seconds is None else f"{case.memory_seconds:.1f}",
            "-" if peak is None else f"{peak:.0f}",
            "[green]fits[/]" if fits else "[red]does NOT fit[/]",
        )
    console.print(table)
    measured = [c for c in cases if c.darkroom_peak_mb is not None and not c.failed]
    broken = [c.label for c in cases if c not in measured]
    headline = cases[0]
    png_peak = png_24mp.darkroom_peak_mb
    console.print(
        f"24 MP PNG peak: {'-' if png_peak is None else f'{png_peak:.0f}'} MB; "
        f"{headline.label} at the pixel limit: "
        + ("-" if headline.darkroom_peak_mb is None else f"{headline.darkroom_peak_mb:.0f} MB")
    )
    if not measured:
        console.print("[red]pixel limit: no image was thumbnailed[/red]")
        return 1
    worst = max(measured, key=lambda c: c.darkroom_peak_mb or 0.0)
    peak = worst.darkroom_peak_mb or 0.0
    ok = peak < LAMBDA_MEMORY_MB and not broken
    console.print(
        f"Lambda memory (cdk/config.py thumbnail_memory_mb = {LAMBDA_MEMORY_MB} MB) vs the "
        f"worst peak at the pixel limit, {peak:.0f} MB ({worst.label}): "
        + (
            f"[green]met, {LAMBDA_MEMORY_MB - peak:.0f} MB to spare[/green]"
            if ok
            else "[red]NOT met"
            + (f": {', '.join(broken)} not thumbnailed" if broken else "")
            + (f", {worst.label} needs {peak:.0f} MB" if peak >= LAMBDA_MEMORY_MB else "")
            + "[/red]"
        )
    )
    return int(not ok)


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
    parser.add_argument(
        "--no-limit", action="store_true", help="skip the memory runs at the pixel limit"
    )
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
                    colour._transform_from.cache_clear()
                    run_darkroom(case, args.size)
                    if vips is not None:
                        run_vips(vips, case, args.size, work)
                measure_memory(case)
        limit_cases = [] if args.no_limit else make_limit_inputs(work, console, LAMBDA_MAX_PIXELS)
        with console.status("measuring memory at the pixel limit...") as status:
            for n, case in enumerate(limit_cases, 1):
                status.update(f"memory at the pixel limit {n}/{len(limit_cases)}: {case.label}")
                measure_memory(case, LAMBDA_MAX_PIXELS)
                case.result = case.memory_outcome
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"[dim](this benchmark process itself peaked at {own:.0f} MB)[/dim]")
    failed = report(console, cases, args.size, vips, args.repeat)
    if limit_cases:
        failed += report_limit(console, limit_cases, cases[1])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
