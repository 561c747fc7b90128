"""The software a darkroom process runs, by name and version: what the worker's start line
reports (`darkroom doctor` compares the pool's), and, with LibRaw's, what each run's
manifest records per file (darkroom.imaging.develop.software).

Read from the installed packages' metadata, never by importing them: the worker's main
process only feeds the develop processes and must not load the imaging libraries."""

from __future__ import annotations

import functools
from importlib import metadata

import darkroom

# The decoder (LibRaw is built into rawpy) and the encoder.
IMAGING = ("rawpy", "pillow")
NOT_INSTALLED = "not installed"


@functools.cache
def installed() -> dict[str, str]:
    found = {"darkroom": darkroom.__version__}
    for dist in IMAGING:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = NOT_INSTALLED
    return found
