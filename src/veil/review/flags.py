"""Frames worth a look, found in the analysis audit (per-frame boxes, scores, track ids,
sources) and the scene cuts:

* ``gap``: a track that disappears and comes back (flagged where it comes back);
* ``low``: a detection under :data:`LOW_SCORE` (once per run of such frames per track);
* ``unconfirmed``: boxes the tracker predicted that no later detection confirmed (the
  track ended, or went away, while predicted; flagged at the run's first frame);
* ``cut``: a scene cut (the first frame of a new shot);
* ``failed``: detection failed on the frame (it was obscured or dropped).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LOW_SCORE", "Flag", "find_flags", "photo_flags", "track_spans"]

LOW_SCORE = 0.4
"""Detections under this score are flagged (the detector's own threshold is lower)."""
OPEN_TAIL = 16
"""A predicted run reaching the clip's end is flagged from this many frames on (a face
predicted for a few frames after the last key frame is speed mode's normal)."""
MANY_FACES = 8
"""A photo with at least this many faces is flagged (crowds hide misses)."""


@dataclass(frozen=True)
class Flag:
    frame: int
    kind: str
    track: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "kind": self.kind, "track": self.track, "detail": self.detail}


def track_spans(frames: Sequence[dict[str, Any]]) -> dict[int, list[int]]:
    """``{track id: [frame indices where it has a box]}`` in frame order."""
    spans: dict[int, list[int]] = {}
    for rec in frames:
        for face in rec.get("faces", ()):
            if face.get("track_id") is not None:
                spans.setdefault(int(face["track_id"]), []).append(int(rec["index"]))
    return spans


def find_flags(frames: Sequence[dict[str, Any]], cuts: Iterable[int]) -> list[Flag]:
    """Every flag of a video, sorted by frame then kind."""
    flags = [Flag(c, "cut", None, "scene cut") for c in cuts]
    flags += [
        Flag(int(r["index"]), "failed", None, f"detection failed: {r['error']}")
        for r in frames
        if r.get("error")
    ]
    flags += _gaps(track_spans(frames))
    flags += _low(frames)
    flags += _unconfirmed(frames)
    return sorted(flags, key=lambda f: (f.frame, f.kind, f.track or 0))


def _gaps(spans: dict[int, list[int]]) -> list[Flag]:
    out = []
    for track, seen in spans.items():
        for before, after in itertools.pairwise(seen):
            if after - before > 1:
                detail = f"track {track} is back after {after - before - 1} frames without a box"
                out.append(Flag(after, "gap", track, detail))
    return out


def _low(frames: Sequence[dict[str, Any]]) -> list[Flag]:
    out, open_runs = [], set[Any]()
    for rec in frames:
        low_now = set()
        for face in rec.get("faces", ()):
            if face.get("source", "detected") == "detected" and face["score"] < LOW_SCORE:
                key = face.get("track_id")
                low_now.add(key)
                if key not in open_runs:
                    detail = f"detection score {face['score']:.2f} < {LOW_SCORE}"
                    out.append(Flag(int(rec["index"]), "low", key, detail))
        open_runs = low_now
    return out


def _unconfirmed(frames: Sequence[dict[str, Any]]) -> list[Flag]:
    """Runs of predicted boxes of a track that its next box does not confirm (the track
    ends, or disappears, before a detection)."""
    out = []
    run_start: dict[int, int] = {}  # track -> first frame of its current predicted run
    last_seen: dict[int, int] = {}
    for rec in frames:
        index = int(rec["index"])
        for face in rec.get("faces", ()):
            track = face.get("track_id")
            if track is None:
                continue
            if track in run_start and last_seen.get(track) != index - 1:
                out.append(_unconfirmed_flag(track, run_start.pop(track)))
            last_seen[track] = index
            if face.get("source") == "predicted":
                run_start.setdefault(track, index)
            else:
                run_start.pop(track, None)
    end = int(frames[-1]["index"]) if frames else 0
    for track, start in run_start.items():  # still predicted on the clip's last frames
        if last_seen[track] < end or end - start + 1 >= OPEN_TAIL:
            out.append(_unconfirmed_flag(track, start))
    return out


def _unconfirmed_flag(track: int, start: int) -> Flag:
    return Flag(start, "unconfirmed", track, f"track {track} predicted, never confirmed")


def photo_flags(faces: Sequence[dict[str, Any]]) -> list[str]:
    """Why a photo deserves a look: ``"none"`` (no face found), ``"low"`` (a face under
    :data:`LOW_SCORE`), ``"many"`` (at least :data:`MANY_FACES` faces)."""
    kinds = []
    if not faces:
        kinds.append("none")
    if any(f["score"] < LOW_SCORE for f in faces):
        kinds.append("low")
    if len(faces) >= MANY_FACES:
        kinds.append("many")
    return kinds
