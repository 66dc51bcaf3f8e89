"""Edit lists on video files: follow tracked adds through the frames of their range
before the main pass (:func:`resolve_tracked_adds`), and check the list against the clip
(:func:`prepare_edits`).

A tracked add (``"track": true``) was drawn on frame ``at``; a :class:`~veil.track.follow.
BoxFollower` follows it forward from ``at`` to the range's last frame and backward to
its first. One decode of the clip up to the last tracked frame serves every add's
forward part; the frames before each ``at`` are held in memory, at most ``memory`` bytes
shared by all adds, and when a backward range holds more than that, its earlier chunks
are decoded again from the start of the file: a long backward range costs decoding
time, never unbounded memory. The result feeds the main pass like untracked
adds (:meth:`veil.edits.EditList.with_tracks`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
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


def prepare_edits(
    src: Path,
    edits: EditList,
    pipeline: Pipeline,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> EditList:
    """``edits`` checked against the clip ``src`` (size, declared frame count) with its
    tracked adds followed (:func:`resolve_tracked_adds`, ``progress`` passed on); raises
    InputError naming the edit list and the entry. A list whose tracked adds were all
    followed already (a previous call's result) is only checked, so a caller can run this
    stage with its own progress and hand the result to
    :func:`~veil.video.pipeline.anonymize_video`."""
    info = probe_video(src)
    edits.check_media(width=info.width, height=info.height, frame_count=info.frame_count or None)
    todo = [i for i, a in enumerate(edits.add) if a.track and i not in edits.tracks]
    if not todo:
        return edits
    return edits.with_tracks(resolve_tracked_adds(src, edits, pipeline, progress=progress))


def resolve_tracked_adds(
    src: Path,
    edits: EditList,
    pipeline: Pipeline,
    *,
    memory: int = BACKWARD_MEMORY,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, dict[int, Box]]:
    """``{add index: {frame: box}}`` for every tracked add of ``edits``: its drawn box
    on frame ``at`` (its :attr:`~veil.edits.AddEdit.seed_frame`) followed forward to the
    last frame of its range and backward to the first, with the pipeline's window
    detector and template matching (:class:`~veil.track.follow.BoxFollower`).
    Deterministic. Frames the clip does not have are left out. ``progress(done, total)``
    is called after each frame followed (``total``: the frames of every tracked range)."""
    adds = {i: a for i, a in enumerate(edits.add) if a.track}
    if not adds:
        return {}
    count = _Count(sum(a.frames[1] - a.frames[0] for a in adds.values()), progress)
    budget = max(1, memory // len(adds))
    follows = {i: _Follow(src, a, pipeline, budget, count) for i, a in adds.items()}
    first = min(a.frames[0] for a in adds.values())
    last = max(a.frames[1] for a in adds.values())
    for index, image in _frames(src, first, last):  # one decode: every add's forward part
        for follow in follows.values():
            follow.feed(index, image)
    return {i: follow.backward() for i, follow in follows.items()}


class _Count:
    def __init__(self, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


Image = np.ndarray | YUV420


def _frames(src: Path, first: int, last: int) -> Iterator[tuple[int, Image]]:
    """Decoded frames ``first..last`` (inclusive) of ``src`` as ``(index, image)``."""
    with VideoReader(src, yuv=True) as reader:
        for frame in reader:
            if frame.index > last:
                break
            if frame.index >= first:
                yield frame.index, frame.image


class _Follow:
    """One tracked add: :meth:`feed` it the decoded frames in order (it follows the box
    forward from ``at`` and holds up to ``memory`` bytes of the frames before ``at``),
    then :meth:`backward` follows it back to ``first`` and returns every box."""

    def __init__(
        self, src: Path, add: AddEdit, pipeline: Pipeline, memory: int, count: _Count
    ) -> None:
        self.src, self.add, self.pipeline = src, add, pipeline
        self.memory, self.count = memory, count
        self.boxes: dict[int, Box] = {add.seed_frame: add.box}
        self.before: deque[tuple[int, Image]] = deque()
        self.seed: Image | None = None
        self.forward: BoxFollower | None = None

    def feed(self, index: int, image: Image) -> None:
        (first, last), at = self.add.frames, self.add.seed_frame
        if first <= index < at:
            self._hold(index, image)
        elif index == at:
            self.seed = image
            self.forward = BoxFollower(self.pipeline.detect_window, image, self.add.box)
        elif at < index <= last and self.forward is not None:
            self.boxes[index] = self.forward.step(image)
            self.count.step()

    def _hold(self, index: int, image: Image) -> None:
        self.before.append((index, image))
        while len(self.before) > 1 and _bytes(self.before) > self.memory:
            self.before.popleft()

    def backward(self) -> dict[int, Box]:
        """Follow the box from ``at`` back to ``first``: the frames held, then earlier
        chunks decoded again; every box, by frame."""
        if self.seed is None:
            log.warning(
                "%s: frame %d (a tracked add's seed) is not in the clip",
                self.src,
                self.add.seed_frame,
            )
            return {}
        back = BoxFollower(self.pipeline.detect_window, self.seed, self.add.box)
        self.seed = self.forward = None
        first = self.add.frames[0]
        while self.before:
            chunk_first = self.before[0][0]
            for index, image in reversed(self.before):
                self.boxes[index] = back.step(image)
                self.count.step()
            self.before.clear()
            if chunk_first > first:
                for index, image in _frames(self.src, first, chunk_first - 1):
                    self._hold(index, image)
        return dict(sorted(self.boxes.items()))


def _bytes(frames: deque[tuple[int, Image]]) -> int:
    image = frames[0][1]
    size = image.data.nbytes if isinstance(image, YUV420) else image.nbytes
    return int(size) * len(frames)
