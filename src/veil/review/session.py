"""A review session of one video: veil's normal analysis (the video pipeline's per-frame
audit), a proxy and thumbnails for fast frame access, flags, the edit list and renders.

:meth:`VideoReview.prepare` does the slow part once and keeps it in a work folder keyed
by the source file (path, size, modification time) and the settings, so opening the same
clip again is instant. Work folder::

    review.json    what the page needs besides the frames: sizes, frame rate, cuts (last
                   written: its presence means the folder is complete)
    audit.json     the analysis audit (anonymize_video's audit: boxes, scores, track ids,
                   sources per frame)
    proxy.mp4      PROXY_WIDTH-px proxy, a key frame every PROXY_GOP frames
    thumbs.jpg     the thumbnail strip
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from veil import __version__
from veil._machine import cache_dir
from veil.boxes import box_iou
from veil.config import RunConfig
from veil.edits import EditList, load_edits, save_edits
from veil.errors import InputError
from veil.files import write_json_atomic
from veil.review.flags import Flag, find_flags, track_spans
from veil.review.proxy import ProxyInfo, ProxyReader, build_proxy
from veil.review.render import Progress, RenderJob
from veil.video.job import default_video_target
from veil.video.pipeline import VideoConfig, anonymize_video

__all__ = ["Stage", "VideoReview", "default_edits_path", "work_folder"]

Stage = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` while a session is prepared (``total`` 0: unknown)."""

FORMAT = 1  # of the work folder; bump to invalidate old ones
CHUNK_IOU = 0.6  # a track's remove/method entries split where its box moved this much


def default_edits_path(source: Path) -> Path:
    """``clip.mp4`` -> ``clip.edits.json`` beside it; a folder ``photos`` -> ``photos.edits``."""
    if source.is_dir():
        return source.with_name(f"{source.name}.edits")
    return source.with_name(f"{source.stem}.edits.json")


def work_folder(source: Path, settings: dict[str, Any], root: Path | None = None) -> Path:
    """``<root or veil cache>/review/<key>``: the key hashes the source's absolute path,
    size and modification time, and ``settings``."""
    st = source.stat()
    ident = {"path": str(source.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns}
    blob = json.dumps({**ident, "settings": settings, "format": FORMAT}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:20]
    return (root or cache_dir() / "review") / key


def empty_edits() -> dict[str, Any]:
    return EditList().to_dict() | {"methods": []}


class VideoReview:
    """One video under review. Built by :meth:`prepare`; read-only afterwards except
    for the edit list (:meth:`save_edits`) and the render job."""

    kind = "video"

    def __init__(
        self,
        source: Path,
        *,
        work: Path,
        output: Path,
        edits: Path,
        config: RunConfig,
        video: VideoConfig,
    ) -> None:
        self.source, self.work, self.output, self.edits_path = source, work, output, edits
        self.config, self.video = config, video
        meta = json.loads((work / "review.json").read_text(encoding="utf-8"))
        self.info = ProxyInfo.from_dict(meta["proxy"])
        audit = json.loads((work / "audit.json").read_text(encoding="utf-8"))
        self.frames: list[dict[str, Any]] = [
            {"index": i, "faces": []} for i in range(self.info.frames)
        ]
        for rec in audit["frames"]:
            if 0 <= rec["index"] < len(self.frames):
                self.frames[rec["index"]] = rec
        self.reader = ProxyReader(work / "proxy.mp4", self.info.frames)
        self.spans = track_spans(self.frames)
        self.flags: list[Flag] = find_flags(self.frames, self.info.cuts)
        self._timeline = self._build_timeline()
        self.render_job = RenderJob()

    @classmethod
    def prepare(
        cls,
        source: Path,
        *,
        output: Path | None = None,
        edits: Path | None = None,
        work: Path | None = None,
        config: RunConfig | None = None,
        video: VideoConfig | None = None,
        progress: Stage | None = None,
    ) -> VideoReview:
        """Analyse ``source`` (or reuse a complete work folder) and open the session.
        Raises InputError for a missing or unreadable video, ConfigError for bad settings."""
        if not source.is_file():
            raise InputError(f"{source}: no such video file")
        config, video = config or RunConfig(), video or VideoConfig()
        settings = {"run": config.to_dict(), "video": _tracking(video), "veil": __version__}
        work = work_folder(source, settings, work)
        output = output or default_video_target(source)
        if output.resolve() == source.resolve():
            raise InputError(f"{output}: the output would replace the video under review")
        if not (work / "review.json").is_file():
            _analyse(source, work, config, video, progress)
        return cls(
            source,
            work=work,
            output=output,
            edits=edits or default_edits_path(source),
            config=config,
            video=video,
        )

    def describe(self) -> dict[str, Any]:
        i = self.info
        return {
            "kind": self.kind,
            "name": self.source.name,
            "width": i.width,
            "height": i.height,
            "frames": i.frames,
            "fps": i.fps,
            "proxy": list(i.proxy_size),
            "edits": str(self.edits_path),
            "output": str(self.output),
            "method": self.config.anonymizer.method,
            "command": f"veil video {self.source} --edits {self.edits_path} -o {self.output}",
        }

    def timeline(self) -> dict[str, Any]:
        return self._timeline

    def _build_timeline(self) -> dict[str, Any]:
        """Per frame: faces, the lowest confidence among them (``null``: none) and how
        many are tracker predictions not confirmed lately; the thumbnail strip layout.

        A predicted box carries its track's last detection score for ``detect_every``
        frames (speed mode detects only every N frames; that is not doubt); older
        predictions count as ``tracked``, not as a score."""
        counts, scores, tracked = [], [], []
        last: dict[int, tuple[int, float]] = {}  # track -> (frame, score) of its last box
        for rec in self.frames:
            index, here, unsure = int(rec["index"]), [], 0
            for face in rec.get("faces", []):
                track = face.get("track_id")
                if face.get("source", "detected") != "predicted":
                    here.append(face["score"])
                    if track is not None:
                        last[track] = (index, face["score"])
                elif track in last and index - last[track][0] <= self.video.detect_every:
                    here.append(last[track][1])
                else:
                    unsure += 1
            counts.append(len(rec.get("faces", [])))
            scores.append(round(min(here), 3) if here else None)
            tracked.append(unsure)
        i = self.info
        return {
            "frames": i.frames,
            "fps": i.fps,
            "counts": counts,
            "scores": scores,
            "tracked": tracked,
            "cuts": list(i.cuts),
            "tracks": {str(t): [s[0], s[-1]] for t, s in self.spans.items()},
            "thumbs": {"every": i.thumb_every, "size": list(i.thumb_size), "count": i.thumbs},
        }

    def flag_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.flags]

    def faces(self, index: int) -> list[dict[str, Any]]:
        self._check(index)
        return list(self.frames[index].get("faces", []))

    def frame_jpeg(self, index: int) -> bytes:
        self._check(index)
        return self.reader.jpeg(index)

    def thumbs_jpeg(self) -> bytes:
        return (self.work / "thumbs.jpg").read_bytes()

    def track(self, track: int) -> dict[str, Any]:
        """A track's frames and its boxes as a few ``{frames, box}`` chunks: within a
        chunk every box overlaps the chunk's box with IoU >= :data:`CHUNK_IOU`, so a
        ``remove`` or ``methods`` entry per chunk covers the moving face."""
        seen = self.spans.get(track)
        if not seen:
            raise InputError(f"no track {track} in this video")
        chunks: list[dict[str, Any]] = []
        for index in seen:
            box = next(f["box"] for f in self.frames[index]["faces"] if f.get("track_id") == track)
            last = chunks[-1] if chunks else None
            if last and last["frames"][1] == index - 1 and _iou(last["box"], box) >= CHUNK_IOU:
                last["frames"][1] = index
            else:
                chunks.append({"frames": [index, index], "box": box})
        return {"track": track, "first": seen[0], "last": seen[-1], "chunks": chunks}

    def shot(self, index: int) -> list[int]:
        """``[first, last]`` frames of the shot (between scene cuts) holding ``index``."""
        self._check(index)
        first = max([c for c in self.info.cuts if c <= index], default=0)
        last = min([c - 1 for c in self.info.cuts if c > index], default=self.info.frames - 1)
        return [first, last]

    def load_edits(self) -> dict[str, Any]:
        if not self.edits_path.is_file():
            return empty_edits()
        return empty_edits() | load_edits(self.edits_path).to_dict()

    def save_edits(self, data: Any) -> dict[str, Any]:
        """Validate ``data`` (InputError naming the entry) against this video and write it
        atomically to the session's edit list file."""
        edits = EditList.from_dict(data, source=self.edits_path.name)
        edits.check_media(
            width=self.info.width,
            height=self.info.height,
            frame_count=self.info.frames,
            source=self.edits_path.name,
        )
        save_edits(self.edits_path, edits)
        return empty_edits() | edits.to_dict()

    def render(self) -> bool:
        """Start re-rendering with the saved edit list; False if one is running."""
        return self.render_job.start(self._render)

    def _render(self, progress: Progress) -> None:
        from veil.review.rerender import render_video

        edits = load_edits(self.edits_path) if self.edits_path.is_file() else None
        render_video(self.source, self.output, edits, self.config, self.video, progress)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.info.frames:
            raise InputError(f"frame {index} is outside 0..{self.info.frames - 1}")


def _tracking(video: VideoConfig) -> dict[str, Any]:
    """The video settings that change what the analysis finds (not the encoder's)."""
    keep = ("detect_every", "search", "max_age", "lookahead", "on_error", "yuv")
    return {k: getattr(video, k) for k in keep}


def _analyse(
    source: Path, work: Path, config: RunConfig, video: VideoConfig, progress: Stage | None
) -> None:
    """Proxy + thumbnails + cuts, then the video pipeline itself with its audit (the
    anonymized analysis output is a by-product, encoded fast and deleted)."""
    work.mkdir(parents=True, exist_ok=True, mode=0o700)

    def stage(name: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(name, done, total) if progress else None

    info = build_proxy(source, work, progress=stage("proxy"))
    fast = dataclasses.replace(video, preset="ultrafast", crf=35, keep_audio=False)
    scratch = work / ".analysis.mkv"
    try:
        anonymize_video(
            source, scratch, config, fast, audit=work / "audit.json", progress=stage("analysis")
        )
    finally:
        scratch.unlink(missing_ok=True)
    meta = {"format": FORMAT, "source": str(source), "proxy": info.to_dict()}
    write_json_atomic(work / "review.json", meta)
    os.chmod(work, 0o700)


def _iou(a: list[float], b: list[float]) -> float:
    return float(box_iou(np.array([a], np.float32), np.array([b], np.float32))[0, 0])
