"""The per-video audit: running counts, per-frame lines kept in a temp file (memory does
not grow with the video), and the final JSON written atomically."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from veil.consent import kept_records
from veil.edits import EditLog, face_edit_records
from veil.errors import OutputError
from veil.files import file_sha256

if TYPE_CHECKING:
    from veil.edits import EditList
    from veil.pipeline import Pipeline
    from veil.video.pipeline import ProcessedFrame, VideoConfig, VideoReport

__all__ = ["Tally", "audit_header", "write_audit"]


class Tally:
    """Counts for :class:`VideoReport` and the audit's per-frame lines (kept in a temp file,
    so memory does not grow with the video's length)."""

    def __init__(self, log_file: IO[str] | None, *, edits: EditList | None = None) -> None:
        self.file = log_file
        self.edits = None if edits is None else EditLog(edits)
        kinds = ("out", "detected", "searched", "tracked_only", "no_face", "failed")
        self.counts = dict.fromkeys(kinds, 0)
        self.runs: dict[str, list[list[int]]] = {"tracked_only": [], "no_face": [], "failed": []}
        self.max_track = self.seen = 0

    def add(self, pf: ProcessedFrame) -> None:
        self.seen += 1
        src = pf.faces.data.get("source", [])
        kinds = {
            "out": pf.image is not None,
            "detected": pf.detected,
            "searched": pf.searched,
            "failed": pf.error is not None,
            "tracked_only": pf.error is None and any(s not in ("detected", "edit") for s in src),
            "no_face": pf.error is None and not len(pf.faces),
        }
        for kind, hit in kinds.items():
            self.counts[kind] += hit
            if hit and kind in self.runs:
                _extend_runs(self.runs[kind], pf.index)
        if pf.faces.track_id is not None and len(pf.faces):
            self.max_track = max(self.max_track, int(pf.faces.track_id.max()))
        if self.edits is not None:
            self.edits.add(pf.index, pf.edit_changes)
        if self.file is not None:
            self.file.write(json.dumps(_frame_record(pf), separators=(",", ":")) + "\n")


def _extend_runs(runs: list[list[int]], index: int) -> None:
    """Add ``index`` to inclusive ``[first, last]`` runs of consecutive indices."""
    if runs and runs[-1][1] == index - 1:
        runs[-1][1] = index
    else:
        runs.append([index, index])


def _frame_record(pf: ProcessedFrame) -> dict[str, Any]:
    faces = pf.faces.to_records()
    for rec, src in zip(faces, pf.faces.data.get("source", []), strict=False):
        rec["source"] = src
    pts = pf.meta[0] if isinstance(pf.meta, tuple) else None
    out: dict[str, Any] = {"index": pf.index, "pts": pts, "detected": pf.detected}
    if pf.searched:
        out["searched"] = True
    out["faces"] = face_edit_records(pf.faces, faces)
    if len(pf.removed):
        out["removed"] = face_edit_records(pf.removed, pf.removed.to_records())
    if len(pf.kept):
        out["kept"] = kept_records(pf.kept)  # left as they are by a consent list
    if pf.error is not None:
        out.update(error=pf.error, dropped=pf.image is None)
    return out


def audit_header(
    src: Path, dst: Path, pipeline: Pipeline, video: VideoConfig, r: VideoReport, t: Tally
) -> dict[str, Any]:
    summary = dataclasses.asdict(r)
    summary["decode_errors"] = len(r.decode_errors)
    return {
        "input": str(src),
        "input_sha256": file_sha256(src),
        "output": str(dst),
        "output_sha256": file_sha256(dst),
        "settings": {**pipeline.describe(), "video": video.to_dict()},
        "summary": summary,
        "decode_errors": [{"before_frame": i, "message": m} for i, m in r.decode_errors],
        "frame_runs": {
            "note": "inclusive [first, last] frame index runs",
            "tracked_only": t.runs["tracked_only"],
            "no_face": t.runs["no_face"],
            "detection_failed": t.runs["failed"],
        },
    } | ({"edits": t.edits.records()} if t.edits is not None else {})


def write_audit(path: Path, header: dict[str, Any], frames: IO[str] | None) -> None:
    """``header`` plus ``"frames"``: one JSON line per frame from ``frames``; atomic."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(json.dumps(header, indent=1)[:-2] + ',\n "frames": [\n')
            if frames is not None:
                frames.seek(0)
                for k, line in enumerate(frames):
                    out.write(("  " if k == 0 else ", ") + line)
            out.write(" ]\n}\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write audit file: {exc}") from exc
