"""File suffixes veil treats as videos, in a module that imports nothing heavy: the
image runner needs them at start-up without loading PyAV (:mod:`veil.io.video`)."""

from __future__ import annotations

__all__ = ["VIDEO_SUFFIXES"]

_SUFFIXES = ".mp4 .mov .mkv .avi .webm .m4v .mpg .mpeg .ts .wmv .flv"
VIDEO_SUFFIXES: frozenset[str] = frozenset(_SUFFIXES.split())
"""Lower-case file suffixes veil treats as videos (FFmpeg reads many more)."""
