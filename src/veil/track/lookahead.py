"""Backward fill: a short delay line that masks a face in the frames just before the
tracker first saw it (a detector often finds a face a few frames late)."""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

import numpy as np

from veil.boxes import scale_boxes
from veil.errors import ConfigError
from veil.types import Faces

__all__ = ["LookaheadBuffer"]

T = TypeVar("T")


class LookaheadBuffer(Generic[T]):
    """Hold ``delay`` frames so that faces found later can be masked in them too.

    ``push(item, faces)`` takes one frame (``item`` is opaque, e.g. a
    :class:`~veil.types.Frame`) with its tracked ``faces`` and returns the frames that
    leave the buffer, oldest first, with their final ``Faces``; ``flush()`` returns the
    rest at the end of the stream. Output order and count equal the input's.

    When a track id appears that the buffered frames just before it lack, its box is
    added to each of those frames, walking back until a frame already has the id or the
    buffer ends: the box ``k`` frames back is grown by ``1 + grow * k`` (capped at
    ``max_growth``) about its centre, since the face may have moved, and clipped to the
    item's ``shape`` when it has one. Added faces carry ``data["source"] ==
    "backfilled"``. Only ids in the buffer are remembered, so memory is bounded by
    ``delay``; an id absent for longer than ``delay`` frames counts as new.
    """

    def __init__(self, delay: int = 8, *, grow: float = 0.05, max_growth: float = 1.5) -> None:
        if delay < 0:
            raise ConfigError(f"LookaheadBuffer: delay must be >= 0, got {delay}")
        if grow < 0 or max_growth < 1:
            raise ConfigError(
                f"LookaheadBuffer: need grow >= 0 and max_growth >= 1, "
                f"got grow={grow}, max_growth={max_growth}"
            )
        self.delay, self.grow, self.max_growth = delay, grow, max_growth
        self._buffer: deque[tuple[T, Faces]] = deque()

    def __len__(self) -> int:
        return len(self._buffer)

    def push(self, item: T, faces: Faces) -> list[tuple[T, Faces]]:
        """Add one frame; return the frames (0 or 1) that leave the buffer."""
        faces = _with_source(faces)
        if faces.track_id is not None:
            for i in np.flatnonzero(faces.track_id >= 0):
                self._backfill(faces[int(i)])
        self._buffer.append((item, faces))
        out = []
        while len(self._buffer) > self.delay:
            out.append(self._buffer.popleft())
        return out

    def flush(self) -> list[tuple[T, Faces]]:
        """Return every buffered frame, oldest first, and empty the buffer."""
        out = list(self._buffer)
        self._buffer.clear()
        return out

    def _backfill(self, face: Faces) -> None:
        """Add ``face`` (one row) to the trailing buffered frames that lack its track id."""
        tid = int(face.track_id[0])  # type: ignore[index]
        for k, pos in enumerate(range(len(self._buffer) - 1, -1, -1), start=1):
            item, faces = self._buffer[pos]
            if faces.track_id is not None and tid in faces.track_id:
                return
            scale = min(1.0 + self.grow * k, self.max_growth)
            added = Faces(
                xyxy=scale_boxes(face.xyxy, scale),
                scores=face.scores,
                track_id=np.array([tid], np.int64),
                data={"source": ["backfilled"]},
            )
            shape = getattr(item, "shape", None)
            if shape is not None and len(shape) >= 2:
                added = added.clip((int(shape[0]), int(shape[1])))
            self._buffer[pos] = (item, _append(faces, added))


def _with_source(faces: Faces) -> Faces:
    """``faces`` with ``data["source"]`` (``"detected"`` where missing) and track ids."""
    if "source" in faces.data and faces.track_id is not None:
        return faces
    out = faces[np.arange(len(faces))]
    out.data.setdefault("source", ["detected"] * len(faces))
    if out.track_id is None:
        out.track_id = np.full(len(faces), -1, np.int64)
    return out


def _append(faces: Faces, added: Faces) -> Faces:
    """``faces`` followed by ``added``; data keys of ``faces`` are padded with ``None``,
    landmarks and masks survive only if ``added`` is empty."""
    if not len(added):
        return faces
    data: dict[str, list[Any]] = {k: [*v, *([None] * len(added))] for k, v in faces.data.items()}
    data["source"] = [*faces.data["source"], *added.data["source"]]
    return Faces(
        xyxy=np.concatenate([faces.xyxy, added.xyxy]),
        scores=np.concatenate([faces.scores, added.scores]),
        track_id=np.concatenate([faces.track_id, added.track_id]),
        data=data,
    )
