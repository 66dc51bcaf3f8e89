"""RGB-D sequences: colour + depth frames through veil's video tracking, then depth masks.

:class:`RGBDAnonymizer` is the RGB-D counterpart of :class:`veil.video.FrameAnonymizer`
and runs one inside::

    colour ─> FrameAnonymizer.track (detect / speed-mode search / track; forward fill,
    look-ahead backward fill) ─> final boxes ─> DepthMasker.refine (head masks from depth)
    [+ find_heads_without_faces] ─> Pipeline.anonymize ─> depth policy

The depth rides along as the frame's ``meta`` and is used only once a frame leaves the
look-ahead buffer with its final boxes, so faces the detector missed on a frame (filled
from the track) get depth-refined head masks like detected ones. With ``video=None``
every frame is detected on its own (unrelated photos) and leaves at once.

Fail closed: a frame whose detection, masking or anonymization fails comes back with
``error`` set and no colour or depth; the stream goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veil.errors import ConfigError, VeilError
from veil.io.rgbd import DEPTH_POLICIES, apply_depth_policy
from veil.pipeline import Pipeline
from veil.rgbd.depthmask import DepthMasker, check_depth
from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.synth import default_intrinsics
from veil.types import Faces, check_image
from veil.video import Ahead, FrameAnonymizer, Pending, VideoConfig

__all__ = ["RGBDAnonymizer", "RGBDConfig", "RGBDResult", "Tracked"]

#: a frame out of tracking, ready for :meth:`RGBDAnonymizer.finish`:
#: ``(index, colour, depth, final faces, error, meta)``
Tracked = tuple[int, Any, np.ndarray, Faces, "str | None", Any]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RGBDConfig:
    """How faces become head masks and what happens to the depth inside them.

    Attributes:
        heads: also mask heads without a visible face, found from depth alone
            (:func:`~veil.rgbd.heads.find_heads_without_faces`).
        head_margin: metres added around each of those heads (colour and depth that are
            not exactly registered).
        depth_policy: one of :data:`~veil.io.rgbd.DEPTH_POLICIES` (``keep``, ``flatten``,
            ``noise``) for the depth inside every mask.
        seed: seeds the ``noise`` policy (each frame draws from ``default_rng(seed)``).
        masker: grows each face box into a head mask with depth.
    """

    heads: bool = False
    head_margin: float = 0.0
    depth_policy: str = "flatten"
    seed: int | None = None
    masker: DepthMasker = field(default_factory=DepthMasker)

    def __post_init__(self) -> None:
        if self.depth_policy not in DEPTH_POLICIES:
            raise ConfigError(
                f"RGBDConfig: depth_policy={self.depth_policy!r}; expected one of {DEPTH_POLICIES}"
            )
        if not 0.0 <= self.head_margin <= 1.0:
            raise ConfigError(f"RGBDConfig: head_margin={self.head_margin!r}; expected 0-1 m")


@dataclass(frozen=True)
class RGBDResult:
    """One frame leaving :class:`RGBDAnonymizer`.

    Attributes:
        index: the index it was pushed with.
        color: anonymized RGB ``uint8 (H, W, 3)``; ``None`` when ``error`` is set (never
            the input as it was).
        depth: ``float32 (H, W)`` metres after the depth policy; ``None`` on error.
        faces: what was masked, each with its head mask in ``masks``: the (tracked) faces,
            then heads without a face; ``data["mask_source"]`` says how each mask was made
            and, when tracking, ``data["source"]`` is ``detected``, ``predicted`` or
            ``backfilled`` for the faces (``depth-head`` for heads found from depth).
        error: why the frame failed, else ``None``.
        meta: whatever was pushed with it.
    """

    index: int
    color: np.ndarray | None
    depth: np.ndarray | None
    faces: Faces
    error: str | None = None
    meta: Any = None


class RGBDAnonymizer:
    """Stateful anonymizer for one stream of RGB-D frames.

    ``push(color, depth, index)`` returns the frames that leave (with ``video`` set: 0 or
    1, ``video.lookahead`` frames late; without: this one), ``flush()`` the rest at the
    end of the stream. ``intrinsics`` (``fx, fy, cx, cy``) size the head search in metres;
    ``None`` falls back to Kinect-like defaults for heads without a face. Of ``video``
    only ``detect_every``, ``search``, ``max_age`` and ``lookahead`` matter. Not
    thread-safe: one stream, one caller.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        config: RGBDConfig | None = None,
        video: VideoConfig | None = None,
        *,
        intrinsics: dict[str, float] | None = None,
    ) -> None:
        self.pipeline, self.config, self.intrinsics = pipeline, config or RGBDConfig(), intrinsics
        self.frames = None if video is None else FrameAnonymizer(pipeline, video)

    def push(
        self, color: np.ndarray, depth: np.ndarray, index: int, *, meta: Any = None
    ) -> list[RGBDResult]:
        """Take one frame: RGB ``uint8 (H, W, 3)`` and ``float32 (H, W)`` metres (0/NaN =
        unknown). Raises ``InputError`` (and takes nothing) when they do not match."""
        return [self.finish(t) for t in self.track(color, depth, index, meta=meta)]

    def flush(self) -> list[RGBDResult]:
        """Return every buffered frame; call at the end of the stream."""
        return [self.finish(t) for t in self.track_flush()]

    # :meth:`push` in three parts, so a caller can run them in threads of their own, each
    # in frame order: ``ahead`` (the full detector) -> ``track`` -> ``finish`` (depth
    # masks, heads, anonymization, depth policy). The results are those of ``push``.

    def ahead(self, color: np.ndarray, index: int) -> Ahead:
        """The full detection of frame ``index`` (what :meth:`track` would run), worked
        out ahead; call once per frame, in order, and pass the result to :meth:`track`."""
        check_image(color, name=f"frame {index}")
        if self.frames is not None:
            return self.frames.ahead(color, index)
        try:
            return Ahead(True, self.pipeline.detect(color))
        except VeilError as exc:
            return Ahead(True, error=str(exc))

    def track(
        self,
        color: np.ndarray,
        depth: np.ndarray,
        index: int,
        *,
        meta: Any = None,
        ahead: Ahead | None = None,
    ) -> list[Tracked]:
        """The frames leaving tracking (with ``video``: 0 or 1, ``lookahead`` frames
        late; without: this one) with their final faces, for :meth:`finish`."""
        check_image(color, name=f"frame {index}")
        depth = check_depth(depth, color.shape[:2], name=f"frame {index} depth")
        if self.frames is None:
            ahead = ahead or self.ahead(color, index)
            if ahead.error is not None:
                log.warning("frame %d: detection failed: %s", index, ahead.error)
            faces = ahead.faces if ahead.faces is not None else Faces.empty()
            return [(index, color, depth, faces, ahead.error, meta)]
        return self._leave(self.frames.track(color, index, meta=(depth, meta), ahead=ahead))

    def track_flush(self) -> list[Tracked]:
        """Every frame still in the look-ahead buffer, for :meth:`finish`."""
        return [] if self.frames is None else self._leave(self.frames.track_flush())

    def finish(self, tracked: Tracked) -> RGBDResult:
        """Depth masks, heads, anonymization and depth policy of one tracked frame."""
        return self._finish(*tracked)

    @staticmethod
    def _leave(pending: list[Pending]) -> list[Tracked]:
        out: list[Tracked] = []
        for pf, faces in pending:
            depth, meta = pf.meta
            out.append((pf.index, pf.image, depth, faces, pf.error, meta))
        return out

    def _finish(
        self,
        index: int,
        color: Any,
        depth: np.ndarray,
        faces: Faces,
        error: str | None,
        meta: Any,
    ) -> RGBDResult:
        if error is None:
            try:
                return self._anonymize(index, color, depth, faces, meta)
            except VeilError as exc:
                log.warning("frame %d: masking or anonymization failed: %s", index, exc)
                error = str(exc)
        return RGBDResult(index, None, None, Faces.empty(), error, meta)

    def _anonymize(
        self, index: int, color: np.ndarray, depth: np.ndarray, faces: Faces, meta: Any
    ) -> RGBDResult:
        c = self.config
        faces = c.masker.refine(faces.clip(depth.shape), depth, self.intrinsics)
        if c.heads:
            k = self.intrinsics or default_intrinsics(depth.shape)
            extra = find_heads_without_faces(depth, k, faces, margin=c.head_margin)
            if "source" in faces.data and len(extra):
                extra.data = {**extra.data, "source": ["depth-head"] * len(extra)}
            faces = Faces.merge([faces, extra])
        faces, _ = self.pipeline.apply_regions(faces, depth.shape)  # heads decided as faces
        image = self.pipeline.anonymize(color, faces).image
        masks = faces.masks if faces.masks is not None else np.zeros((0, *depth.shape), bool)
        rng = np.random.default_rng(c.seed)
        new_depth = apply_depth_policy(depth, masks, c.depth_policy, rng=rng)
        return RGBDResult(index, image, new_depth, faces, None, meta)
