"""A review session of a folder of photos: each photo analysed once by the pipeline's
detector, a preview and a thumbnail cached, flagged photos listed first, one edit list
per photo, and the folder re-rendered with them.

Edit list layout: ``EDITS/<path of the photo relative to the folder>.edits.json``, e.g.
``photos/trip/a.jpg`` -> ``photos.edits/trip/a.jpg.edits.json`` (``EDITS`` defaults to
``<folder>.edits`` beside the folder). ``veil anonymize photos/trip/a.jpg --edits
photos.edits/trip/a.jpg.edits.json`` gives the same output as the page's render.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2

from veil import __version__
from veil.config import RunConfig
from veil.edits import EditList, load_edits, save_edits
from veil.errors import InputError
from veil.files import write_json_atomic
from veil.io.images import iter_image_files, read_image
from veil.pipeline import Pipeline
from veil.review.flags import photo_flags
from veil.review.proxy import even_size, jpeg
from veil.review.render import Progress, RenderJob
from veil.review.session import Stage, default_edits_path, empty_edits, work_folder

__all__ = ["PhotoReview"]

PREVIEW_WIDTH = 1280
THUMB_WIDTH = 240


class PhotoReview:
    """A folder of photos under review (:meth:`prepare`); photo ``k`` is item ``k``."""

    kind = "photos"

    def __init__(
        self, folder: Path, *, work: Path, output: Path, edits: Path, config: RunConfig
    ) -> None:
        self.source, self.work, self.output, self.edits_path = folder, work, output, edits
        self.config = config
        self.items: list[dict[str, Any]] = json.loads(
            (work / "photos.json").read_text(encoding="utf-8")
        )["photos"]
        self.render_job = RenderJob()

    @classmethod
    def prepare(
        cls,
        folder: Path,
        *,
        output: Path | None = None,
        edits: Path | None = None,
        work: Path | None = None,
        config: RunConfig | None = None,
        progress: Stage | None = None,
    ) -> PhotoReview:
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
        config = config or RunConfig()
        files = list(iter_image_files(folder))
        if not files:
            raise InputError(f"{folder}: no image files in this folder")
        stamp = [
            (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files
        ]
        settings = {"run": config.to_dict(), "files": stamp, "veil": __version__}
        work = work_folder(folder, settings, work)
        output = output or folder.with_name(f"{folder.name}_anonymized")
        if output.resolve().is_relative_to(folder.resolve()):
            raise InputError(f"{output}: the output folder must not be inside {folder}")
        if not (work / "photos.json").is_file():
            _analyse(folder, files, work, config, progress)
        return cls(
            folder,
            work=work,
            output=output,
            edits=edits or default_edits_path(folder),
            config=config,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.source.name,
            "photos": len(self.items),
            "edits": str(self.edits_path),
            "output": str(self.output),
            "method": self.config.anonymizer.method,
            "command": f"veil anonymize PHOTO --edits {self.edits_path}/PHOTO.edits.json",
        }

    def photo_list(self) -> list[dict[str, Any]]:
        """Every photo without its faces, flagged ones first (then in folder order), with
        ``edited``: an edit list exists for it."""
        listed = [
            {k: item[k] for k in ("index", "name", "width", "height", "flags")}
            | {"faces": len(item["faces"]), "edited": self._edits_file(item["index"]).is_file()}
            for item in self.items
        ]
        return sorted(listed, key=lambda p: (not p["flags"], p["index"]))

    def flag_list(self) -> list[dict[str, Any]]:
        return [
            {"frame": p["index"], "kind": kind, "track": None, "detail": p["name"]}
            for p in self.items
            for kind in p["flags"]
        ]

    def faces(self, index: int) -> list[dict[str, Any]]:
        return list(self._item(index)["faces"])

    def frame_jpeg(self, index: int) -> bytes:
        self._item(index)
        return (self.work / f"{index}.jpg").read_bytes()

    def thumb_jpeg(self, index: int) -> bytes:
        self._item(index)
        return (self.work / f"{index}.thumb.jpg").read_bytes()

    def load_edits(self, index: int) -> dict[str, Any]:
        path = self._edits_file(index)
        return empty_edits() | (load_edits(path).to_dict() if path.is_file() else {})

    def save_edits(self, data: Any, index: int) -> dict[str, Any]:
        """Validate ``data`` against photo ``index`` and write its edit list atomically
        (an empty list deletes the file: the photo is rendered as without edits)."""
        item, path = self._item(index), self._edits_file(index)
        edits = EditList.from_dict(data, source=path.name)
        edits.check_media(
            width=item["width"], height=item["height"], frame_count=1, source=path.name
        )
        if not edits:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_edits(path, edits)
        return empty_edits() | edits.to_dict()

    def render(self) -> bool:
        return self.render_job.start(self._render)

    def _render(self, progress: Progress) -> None:
        """Every photo as ``veil anonymize PHOTO -o OUTPUT/NAME [--edits ...]`` would."""
        from veil.files import Job
        from veil.review.rerender import render_photos

        jobs, edits = [], {}
        for item in self.items:
            src, path = self.source / item["name"], self._edits_file(item["index"])
            jobs.append(Job(src, self.output / item["name"]))
            if path.is_file():
                edits[src] = load_edits(path)
        render_photos(jobs, edits, self.config, progress)

    def photo_name(self, index: int) -> str:
        return str(self._item(index)["name"])

    def _edits_file(self, index: int) -> Path:
        return self.edits_path / f"{self._item(index)['name']}.edits.json"

    def _item(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.items):
            raise InputError(f"photo {index} is outside 0..{len(self.items) - 1}")
        return self.items[index]


def _analyse(
    folder: Path, files: list[Path], work: Path, config: RunConfig, progress: Stage | None
) -> None:
    """Detect faces on every photo (the pipeline's detector, as ``veil anonymize``
    does); write a preview and a thumbnail of each, then ``photos.json``."""
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    pipeline = Pipeline.from_config(config)
    items = []
    for k, path in enumerate(files):
        image = read_image(path).image
        faces = pipeline.detect(image).to_records()
        h, w = image.shape[:2]
        for name, width in ((f"{k}.jpg", PREVIEW_WIDTH), (f"{k}.thumb.jpg", THUMB_WIDTH)):
            size = even_size(w, h, width) if w > width else (w, h)
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            (work / name).write_bytes(jpeg(small))
        name = path.relative_to(folder).as_posix()
        items.append(
            {"index": k, "name": name, "width": w, "height": h, "faces": faces}
            | {"flags": photo_flags(faces)}
        )
        if progress is not None:
            progress("photos", k + 1, len(files))
    write_json_atomic(work / "photos.json", {"photos": items})
