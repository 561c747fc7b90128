"""Developing camera RAW files into web renditions, and synthetic RAW fixtures."""
