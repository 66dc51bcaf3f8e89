"""Temporal quality of an anonymized video: stable masks, stable identities, no bare frame.

Tracks come from veil's audit JSON (per-frame boxes with ``track_id``) or, for another
tool's output, from CenterFace + veil's tracker run on the original. Per track:

* **mask flicker**: the track's mask is the set of changed pixels (original vs anonymized,
  :func:`veil.evaluate.coverage.changed_mask`, holes filled) within its box grown by half
  its size; the IoU of that mask between consecutive frames of the track (1 = stable;
  motion of the face lowers it too, the number is raw, not motion-compensated).
* **identity drift**: dlib embeddings of the anonymized face along the track; drift is
  the mean distance to the track's median embedding, and the largest step between
  consecutive frames. A replaced face that changes identity from frame to frame drifts.
* **bare frames** (needs ground truth ``{"frames": [{"index", "faces": [[x,y,w,h],...]}]}``):
  frames where some ground-truth face is not covered (<90% of its ellipse changed).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InputError
from veil.evaluate.coverage import COVERED_THRESHOLD, changed_mask, face_coverage
from veil.types import Faces

__all__ = [
    "DriftStats",
    "VideoEvaluation",
    "evaluate_video",
    "identity_drift",
    "load_video_gt",
    "mask_iou",
    "track_flicker",
    "track_mask",
]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``bool (H, W)`` masks; 1 when both are empty."""
    union = int((a | b).sum())
    return 1.0 if union == 0 else float((a & b).sum() / union)


def track_flicker(masks: Sequence[np.ndarray]) -> np.ndarray:
    """IoU between consecutive masks of one track: ``float64 (len(masks) - 1,)``."""
    return np.asarray([mask_iou(a, b) for a, b in itertools.pairwise(masks)])


def track_mask(changed: np.ndarray, box_xyxy: Sequence[float]) -> np.ndarray:
    """Changed pixels (holes filled) within ``box_xyxy`` grown by half its size, ``bool (H, W)``."""
    from veil.evaluate.coverage import _fill_holes

    h, w = changed.shape
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    gx, gy = (x1 - x0) / 2, (y1 - y0) / 2
    c0, r0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
    c1, r1 = min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
    out = np.zeros_like(changed)
    if c1 > c0 and r1 > r0:
        out[r0:r1, c0:c1] = _fill_holes(changed[r0:r1, c0:c1])
    return out


@dataclass(frozen=True)
class DriftStats:
    """Identity drift of one track (embedding distances; dlib: < 0.6 = same person)."""

    mean_to_centroid: float
    max_step: float


def identity_drift(embeddings: np.ndarray) -> DriftStats:
    """Drift of ``embeddings (n, d)`` along a track; zeros for ``n < 2``."""
    e = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
    if len(e) < 2:
        return DriftStats(0.0, 0.0)
    centre = np.median(e, axis=0)  # exact for a constant track, robust to a few outliers
    return DriftStats(
        mean_to_centroid=float(np.linalg.norm(e - centre, axis=1).mean()),
        max_step=float(np.linalg.norm(np.diff(e, axis=0), axis=1).max()),
    )


def load_video_gt(path: str | Path) -> dict[int, np.ndarray]:
    """``{frame index: faces (n, 4) x, y, w, h}`` from a video ground-truth JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            int(f["index"]): np.asarray(f.get("faces", []), np.float64).reshape(-1, 4)
            for f in data["frames"]
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a video ground-truth JSON ({exc!r})") from exc


def audit_tracks(path: str | Path) -> dict[int, Faces]:
    """Per-frame faces (boxes + track ids) from veil's video audit JSON."""
    path = Path(path)
    try:
        frames = json.loads(path.read_text(encoding="utf-8"))["frames"]
        out = {}
        for f in frames:
            recs = f.get("faces", [])
            out[int(f["index"])] = Faces(
                xyxy=np.asarray([r["box"] for r in recs], np.float32).reshape(-1, 4),
                track_id=np.asarray([r.get("track_id", -1) for r in recs], np.int64),
            )
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a veil video audit JSON ({exc!r})") from exc


@dataclass
class VideoEvaluation:
    """Per-frame timeline and per-track summaries of one anonymized clip."""

    frames: int = 0
    frame_mismatch: int = 0  # frames present in only one of the two videos
    timeline: list[dict[str, Any]] = field(default_factory=list)  # per frame
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)
    bare_frames: list[int] | None = None  # None without ground truth
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ious = [v for t in self.tracks.values() for v in t["flicker_ious"]]
        drift = [t["drift_mean"] for t in self.tracks.values() if t.get("drift_mean") is not None]
        return {
            "frames": self.frames,
            "frame_mismatch": self.frame_mismatch,
            "tracks": len(self.tracks),
            "mask_iou_mean": round(float(np.mean(ious)), 6) if ious else None,
            "mask_iou_min": round(float(np.min(ious)), 6) if ious else None,
            "identity_drift_mean": round(float(np.mean(drift)), 6) if drift else None,
            "bare_frames": self.bare_frames,
            "bare_frame_count": None if self.bare_frames is None else len(self.bare_frames),
            "per_track": {
                str(k): {kk: vv for kk, vv in v.items() if kk != "flicker_ious"}
                for k, v in self.tracks.items()
            },
            "timeline": self.timeline,
            "unavailable": self.unavailable,
        }


def _frames(path: Path) -> Iterable[np.ndarray]:
    from veil.io.video import VideoReader

    with VideoReader(path) as reader:
        for frame in reader:
            yield frame.frame.image


class _Tracking:
    """Faces per frame from the audit, or CenterFace + tracker on the original."""

    def __init__(self, audit: str | Path | None) -> None:
        self.audit = audit_tracks(audit) if audit is not None else None
        if self.audit is None:
            from veil.detect.base import DETECTORS
            from veil.track.tracker import Tracker

            self.detector, self.tracker = DETECTORS.create("centerface"), Tracker()

    def faces(self, index: int, original: np.ndarray) -> Faces:
        if self.audit is not None:
            return self.audit.get(index, Faces.empty())
        return self.tracker.update(self.detector.detect(original)).clip(original.shape[:2])


def evaluate_video(
    original: str | Path,
    anonymized: str | Path,
    *,
    audit: str | Path | None = None,
    gt: str | Path | None = None,
    embedder: Any = None,
    identity: bool = True,
) -> VideoEvaluation:
    """Mask flicker, identity drift and bare frames of ``anonymized`` (see module docs).

    Frames are paired by decode order; frames only one video has are counted in
    ``frame_mismatch``. ``identity=False`` skips the dlib embeddings.
    """
    from veil.errors import MissingExtraError

    result = VideoEvaluation()
    truth = load_video_gt(gt) if gt is not None else None
    tracking = _Tracking(audit)
    if identity and embedder is None:
        try:
            from veil.evaluate.identity import FaceEmbedder

            embedder = FaceEmbedder()
        except MissingExtraError as exc:
            result.unavailable["identity_drift"] = str(exc)
    masks: dict[int, list[np.ndarray]] = {}
    embeds: dict[int, list[np.ndarray]] = {}
    bare: list[int] = []
    pairs = itertools.zip_longest(_frames(Path(original)), _frames(Path(anonymized)))
    for index, (orig, anon) in enumerate(pairs):
        if orig is None or anon is None:
            result.frame_mismatch += 1
            continue
        if orig.shape != anon.shape:
            raise InputError(f"frame {index}: sizes differ {orig.shape} vs {anon.shape}")
        changed = changed_mask(orig, anon)
        faces = tracking.faces(index, orig)
        ids = faces.track_id if faces.track_id is not None else np.full(len(faces), -1)
        for box, tid in zip(faces.xyxy, ids, strict=True):
            masks.setdefault(int(tid), []).append(track_mask(changed, box))
            if embedder is not None:
                embeds.setdefault(int(tid), []).append(embedder.embed(anon, box))
        row: dict[str, Any] = {"index": index, "faces": len(faces)}
        row["changed"] = round(float(changed.mean()), 6)
        if truth is not None:
            cov = [face_coverage(changed, b) for b in truth.get(index, np.zeros((0, 4)))]
            row["gt_faces"], row["bare"] = len(cov), any(c < COVERED_THRESHOLD for c in cov)
            if row["bare"]:
                bare.append(index)
        result.timeline.append(row)
        result.frames += 1
    result.bare_frames = bare if truth is not None else None
    _summarize_tracks(result, masks, embeds)
    return result


def _summarize_tracks(
    result: VideoEvaluation, masks: dict[int, list[np.ndarray]], embeds: dict[int, list[Any]]
) -> None:
    for tid, seq in masks.items():
        ious = track_flicker(seq)
        entry: dict[str, Any] = {
            "frames": len(seq),
            "flicker_ious": ious.tolist(),
            "mask_iou_mean": round(float(ious.mean()), 6) if len(ious) else None,
        }
        if tid in embeds:
            drift = identity_drift(np.asarray(embeds[tid]))
            entry["drift_mean"] = round(drift.mean_to_centroid, 6)
            entry["drift_max_step"] = round(drift.max_step, 6)
        result.tracks[tid] = entry
