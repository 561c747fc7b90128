"""darkroom: photo post-production pipeline for studios."""

__version__ = "0.1.0"
