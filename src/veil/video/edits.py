"""Edit lists on video files: follow tracked adds through the frames of their range
before the main pass (:func:`resolve_tracked_adds`), and check the list against the clip
(:func:`prepare_edits`).

A tracked add (``"track": true``) was drawn on frame ``at``; a :class:`~veil.track.follow.
BoxFollower` follows it forward from ``at`` to the range's last frame and backward to
its first. Forward is one decode of the frames up to ``last``; backward frames are held
in memory in chunks of at most ``memory`` bytes (the frames before ``at`` are decoded
once per chunk, each chunk from the start of the file), so a long backward range costs
decoding time, never unbounded memory. The result feeds the main pass like untracked
adds (:meth:`veil.edits.EditList.with_tracks`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from veil.edits import AddEdit, Box, EditList
from veil.io.video import VideoReader, probe_video
from veil.io.yuv import YUV420
from veil.pipeline import Pipeline
from veil.track.follow import BoxFollower

__all__ = ["BACKWARD_MEMORY", "prepare_edits", "resolve_tracked_adds"]

log = logging.getLogger(__name__)

BACKWARD_MEMORY = 512 * 1024 * 1024
"""Bytes of decoded frames held at once to follow a tracked add backward in time."""


def prepare_edits(src: Path, edits: EditList, pipeline: Pipeline) -> EditList:
    """``edits`` checked against the clip ``src`` (size, declared frame count) with its
    tracked adds followed (:func:`resolve_tracked_adds`); raises InputError naming the
    edit list and the entry."""
    info = probe_video(src)
    edits.check_media(width=info.width, height=info.height, frame_count=info.frame_count or None)
    if not any(a.track for a in edits.add):
        return edits
    return edits.with_tracks(resolve_tracked_adds(src, edits, pipeline))


def resolve_tracked_adds(
    src: Path, edits: EditList, pipeline: Pipeline, *, memory: int = BACKWARD_MEMORY
) -> dict[int, dict[int, Box]]:
    """``{add index: {frame: box}}`` for every tracked add of ``edits``: its drawn box
    on frame ``at`` (its :attr:`~veil.edits.AddEdit.seed_frame`) followed forward to the
    last frame of its range and backward to the first, with the pipeline's window
    detector and template matching (:class:`~veil.track.follow.BoxFollower`).
    Deterministic. Frames the clip does not have are left out."""
    out: dict[int, dict[int, Box]] = {}
    for index, add in enumerate(edits.add):
        if add.track:
            out[index] = _follow(src, add, pipeline, memory)
    return out


Image = np.ndarray | YUV420


def _frames(src: Path, first: int, last: int) -> Iterator[tuple[int, Image]]:
    """Decoded frames ``first..last`` (inclusive) of ``src`` as ``(index, image)``."""
    with VideoReader(src, yuv=True) as reader:
        for frame in reader:
            if frame.index > last:
                break
            if frame.index >= first:
                yield frame.index, frame.image


def _follow(src: Path, add: AddEdit, pipeline: Pipeline, memory: int) -> dict[int, Box]:
    first, last = add.frames
    at = add.seed_frame
    boxes: dict[int, Box] = {at: add.box}
    seed_image = None
    before: deque[tuple[int, Image]] = deque()
    follower = None
    for index, image in _frames(src, first, last):
        if index < at:
            before.append((index, image))
            while len(before) > 1 and _bytes(before) > memory:
                before.popleft()
            continue
        if index == at:
            seed_image = image
            follower = BoxFollower(pipeline.detect_window, image, add.box)
            continue
        assert follower is not None
        boxes[index] = follower.step(image)
    if seed_image is None:
        log.warning("%s: frame %d (a tracked add's seed) is not in the clip", src, at)
        return {}
    # backward: the frames held, then earlier chunks decoded again
    back = BoxFollower(pipeline.detect_window, seed_image, add.box)
    while before:
        chunk_first = before[0][0]
        for index, image in reversed(before):
            boxes[index] = back.step(image)
        before.clear()
        if chunk_first > first:
            for index, image in _frames(src, first, chunk_first - 1):
                before.append((index, image))
                while len(before) > 1 and _bytes(before) > memory:
                    before.popleft()
    return dict(sorted(boxes.items()))


def _bytes(frames: deque[tuple[int, Image]]) -> int:
    image = frames[0][1]
    size = image.data.nbytes if isinstance(image, YUV420) else image.nbytes
    return int(size) * len(frames)
