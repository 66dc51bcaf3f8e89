"""Edit lists: a reviewer's corrections to what the detector found (see docs/edits.md).

An edit list is a JSON file::

    {"version": 1,
     "add":     [{"frames": [10, 40], "box": [100, 80, 160, 150], "track": true, "at": 25}],
     "remove":  [{"frames": [0, 99], "box": [400, 300, 440, 350]}],
     "methods": [{"frames": [0, 99], "box": [200, 90, 260, 160], "method": "pixelate"}]}

- ``frames`` are inclusive ``[first, last]`` frame indices (0-based); an image is frame 0,
  so its entries use ``[0, 0]``.
- ``box`` is ``[x1, y1, x2, y2]`` in pixels of the source (the decoded frame, after EXIF
  rotation for photos), ``x2 > x1``, ``y2 > y1``, all ``>= 0``.
- ``add``: anonymize this box as a face (score 1) on every frame of the range. With
  ``"track": false`` exactly this box; with ``"track": true`` (the default) the box was
  drawn on frame ``at`` (default ``first``) and follows the face forward and backward
  within the range (video; an image has nothing to follow). ``method`` (optional) picks
  the anonymization method for this box.
- ``remove``: detections overlapping the box with IoU >= :data:`IOU` in those frames are
  left as they are (a false alarm: a fist, a poster).
- ``methods``: detections overlapping the box with IoU >= :data:`IOU` in those frames use
  that anonymization method instead of the run's.

:func:`load_edits` / :meth:`EditList.from_dict` validate everything and raise
:class:`~veil.errors.InputError` naming the file and the entry
(``edits.json: add[2].box: x2 must be greater than x1``); :func:`save_edits` writes one
atomically. :meth:`EditList.check_media` checks the entries against a picture's size and
frame count (frames beyond the clip are an error, never silently clamped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from veil.boxes import box_iou
from veil.errors import InputError
from veil.types import Faces

__all__ = [
    "IOU",
    "AddEdit",
    "Box",
    "EditList",
    "EditLog",
    "FrameEdits",
    "MethodEdit",
    "RemoveEdit",
    "face_edit_records",
    "load_edits",
    "save_edits",
]

IOU = 0.3
"""A detection overlapping a ``remove`` or ``methods`` box with at least this IoU is
affected by it."""

VERSION = 1

Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in source pixels."""


@dataclass(frozen=True)
class AddEdit:
    """Anonymize ``box`` as a face on frames ``first..last`` (inclusive).

    ``track=False``: exactly ``box`` on every frame of the range. ``track=True``: ``box``
    was drawn on frame :attr:`seed_frame` and follows the face forward and backward
    within the range. ``method``: the anonymization method for this box (``None``: the
    run's method).
    """

    frames: tuple[int, int]
    box: Box
    track: bool = True
    at: int | None = None
    method: str | None = None

    @property
    def seed_frame(self) -> int:
        """The frame the box was drawn on: ``at``, or the first frame of the range."""
        return self.frames[0] if self.at is None else self.at

    def covers(self, frame: int) -> bool:
        return self.frames[0] <= frame <= self.frames[1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames": list(self.frames),
            "box": list(self.box),
            "track": self.track,
        }
        if self.at is not None:
            out["at"] = self.at
        if self.method is not None:
            out["method"] = self.method
        return out


@dataclass(frozen=True)
class RemoveEdit:
    """Leave detections overlapping ``box`` (IoU >= :data:`IOU`) on frames ``first..last``
    (inclusive) as they are."""

    frames: tuple[int, int]
    box: Box

    def covers(self, frame: int) -> bool:
        return self.frames[0] <= frame <= self.frames[1]

    def to_dict(self) -> dict[str, Any]:
        return {"frames": list(self.frames), "box": list(self.box)}


@dataclass(frozen=True)
class MethodEdit:
    """Anonymize detections overlapping ``box`` (IoU >= :data:`IOU`) on frames
    ``first..last`` (inclusive) with ``method`` instead of the run's method."""

    frames: tuple[int, int]
    box: Box
    method: str

    def covers(self, frame: int) -> bool:
        return self.frames[0] <= frame <= self.frames[1]

    def to_dict(self) -> dict[str, Any]:
        return {"frames": list(self.frames), "box": list(self.box), "method": self.method}


@dataclass(frozen=True)
class EditList:
    """A validated edit list: ``add``, ``remove`` and ``methods`` entries, in file order
    (an entry's index in its list is how audits and error messages name it, ``add[2]``)."""

    add: tuple[AddEdit, ...] = ()
    remove: tuple[RemoveEdit, ...] = ()
    methods: tuple[MethodEdit, ...] = ()
    version: int = field(default=VERSION)
    tracks: Mapping[int, Mapping[int, Box]] = field(default_factory=dict, compare=False, repr=False)
    """Where tracked adds were followed to: ``{add index: {frame: box}}`` (video, see
    :func:`veil.video.edits.resolve_tracked_adds`); not part of the file. A tracked add
    with no box for a frame uses its drawn box there."""
    source: str = field(default="edit list", compare=False, repr=False)
    """Where the list came from (its file), the start of every error message about it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "add", tuple(self.add))
        object.__setattr__(self, "remove", tuple(self.remove))
        object.__setattr__(self, "methods", tuple(self.methods))

    def __bool__(self) -> bool:
        return bool(self.add or self.remove or self.methods)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "edit list") -> EditList:
        """Validate parsed JSON; ``source`` (a file name) starts every error message."""
        from veil._edit_parser import EditParser

        return EditParser(source).edit_list(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``from_dict(to_dict())`` gives back an equal list)."""
        out: dict[str, Any] = {
            "version": self.version,
            "add": [e.to_dict() for e in self.add],
            "remove": [e.to_dict() for e in self.remove],
        }
        if self.methods:
            out["methods"] = [e.to_dict() for e in self.methods]
        return out

    def entries(self) -> list[tuple[str, AddEdit | RemoveEdit | MethodEdit]]:
        """Every entry with its name (``"add[0]"``, ``"remove[1]"``, ``"methods[0]"``)."""
        named: list[tuple[str, AddEdit | RemoveEdit | MethodEdit]] = []
        named += [(f"add[{i}]", e) for i, e in enumerate(self.add)]
        named += [(f"remove[{i}]", e) for i, e in enumerate(self.remove)]
        named += [(f"methods[{i}]", e) for i, e in enumerate(self.methods)]
        return named

    def with_tracks(self, tracks: Mapping[int, Mapping[int, Box]]) -> EditList:
        """A copy whose tracked adds use the followed boxes ``tracks``."""
        return replace(self, tracks=tracks)

    def add_box(self, index: int, frame: int) -> Box | None:
        """Where ``add[index]`` is on ``frame`` (``None`` outside its range)."""
        entry = self.add[index]
        if not entry.covers(frame):
            return None
        if entry.track:
            return self.tracks.get(index, {}).get(frame, entry.box)
        return entry.box

    def apply(self, frame: int, faces: Faces, *, shape: tuple[int, int]) -> FrameEdits:
        """Apply the entries covering ``frame`` to its detected (or tracked) ``faces`` in a
        picture of ``shape = (height, width)``.

        ``remove``: faces with IoU >= :data:`IOU` against a remove box go to
        ``removed`` (``data["edit"]`` names the entry). ``methods``: faces overlapping a
        methods box (IoU >= :data:`IOU`; the best-overlapping entry wins) get
        ``data["method"]``. ``add``: each add's box (clipped to the picture) joins the
        faces with score 1, track id -1, ``data["edit"] = "add[i]"``, ``data["source"] =
        "edit"`` and its ``method``. Every face returned has ``data["edit"]`` and
        ``data["method"]`` (``None`` when no entry touched it).
        """
        n = len(faces)
        edit: list[str | None] = [None] * n
        method: list[str | None] = [None] * n
        gone = np.zeros(n, bool)
        changes: list[tuple[str, Box]] = []
        groups: tuple[tuple[str, Sequence[RemoveEdit | MethodEdit]], ...] = (
            ("remove", self.remove),
            ("methods", self.methods),
        )
        for kind, entries in groups:
            if not n:
                break
            live = [(i, entries[i]) for i in self._covering(kind, frame)]
            if not live:
                continue
            iou = box_iou(faces.xyxy, np.array([e.box for _, e in live], np.float32))
            for row in np.flatnonzero((iou >= IOU).any(axis=1) & ~gone):
                k = int(np.argmax(iou[row]))
                i, entry = live[k]
                name = f"{kind}[{i}]"
                edit[row] = name
                changes.append((name, _box(faces.xyxy[row])))
                if isinstance(entry, MethodEdit):
                    method[row] = entry.method
                else:
                    gone[row] = True
        kept = faces[np.flatnonzero(~gone)]
        kept.data = {**kept.data, "edit": [edit[i] for i in np.flatnonzero(~gone)]}
        kept.data["method"] = [method[i] for i in np.flatnonzero(~gone)]
        removed = faces[np.flatnonzero(gone)]
        removed.data = {**removed.data, "edit": [edit[i] for i in np.flatnonzero(gone)]}
        added = self._added(frame, kept, shape)
        if not len(added):
            return FrameEdits(kept, removed, changes)
        changes += [(name, _box(b)) for b, name in zip(added.xyxy, added.data["edit"], strict=True)]
        return FrameEdits(Faces.merge([kept, added]), removed, changes)

    def _added(self, frame: int, like: Faces, shape: tuple[int, int]) -> Faces:
        """The add boxes of ``frame`` as faces with the fields of ``like``."""
        boxes, names, methods = [], [], []
        for i in self._covering("add", frame):
            box = self.add_box(i, frame)
            if box is not None:
                boxes.append(box)
                names.append(f"add[{i}]")
                methods.append(self.add[i].method)
        if not boxes:
            return Faces.empty()
        data: dict[str, Any] = {key: [None] * len(boxes) for key in like.data}
        data.update(edit=names, method=methods)
        if "source" in like.data:
            data["source"] = ["edit"] * len(boxes)
        added = Faces(
            xyxy=np.array(boxes, np.float32),
            track_id=None if like.track_id is None else np.full(len(boxes), -1),
            data=data,
        )
        return added.clip(shape)

    def _covering(self, kind: str, frame: int) -> list[int]:
        """Indices of the ``kind`` entries whose range holds ``frame``, in file order (one
        vectorized test, so lists of thousands of entries stay cheap per frame)."""
        ranges = self._ranges[kind]
        return np.flatnonzero((ranges[:, 0] <= frame) & (ranges[:, 1] >= frame)).tolist()

    @cached_property
    def _ranges(self) -> dict[str, np.ndarray]:
        def ranges(entries: Sequence[AddEdit | RemoveEdit | MethodEdit]) -> np.ndarray:
            return np.array([e.frames for e in entries], np.int64).reshape(-1, 2)

        return {
            "add": ranges(self.add),
            "remove": ranges(self.remove),
            "methods": ranges(self.methods),
        }

    def check_media(
        self, *, width: int, height: int, frame_count: int | None, source: str | None = None
    ) -> None:
        """Raise :class:`InputError` if an entry does not fit a picture of ``width`` x
        ``height`` with ``frame_count`` frames (1 for an image; ``None``: unknown, frames
        are not checked): a frame past the last one, or a box wholly outside the picture.
        Messages start with ``source`` (default: :attr:`source`).
        """
        source = source or self.source
        for name, entry in self.entries():
            last = entry.frames[1]
            if frame_count is not None and last >= frame_count:
                what = (
                    "an image has only frame 0"
                    if frame_count == 1
                    else f"the video has {frame_count} frames (0-{frame_count - 1})"
                )
                raise InputError(f"{source}: {name}.frames: frame {last} is beyond the end; {what}")
            x1, y1, _, _ = entry.box
            if x1 >= width or y1 >= height:
                raise InputError(
                    f"{source}: {name}.box: {list(entry.box)} lies outside the "
                    f"{width}x{height} picture"
                )


@dataclass(frozen=True)
class FrameEdits:
    """What :meth:`EditList.apply` did to one frame.

    Attributes:
        faces: the faces to anonymize: the detections not removed, then the added boxes;
            ``data["edit"]`` (``"add[i]"``, ``"methods[i]"`` or ``None``) and
            ``data["method"]`` (a method name or ``None`` for the run's).
        removed: detections left as they are, ``data["edit"] = "remove[i]"``.
        changes: ``(entry name, box)`` for every face an entry changed on this frame.
    """

    faces: Faces
    removed: Faces
    changes: list[tuple[str, Box]]


class EditLog:
    """The audit of an edit list over a run: for each entry, the frames and boxes it
    changed. Feed it every frame's :attr:`FrameEdits.changes` in frame order."""

    def __init__(self, edits: EditList) -> None:
        self.edits = edits
        self.changed: dict[str, list[dict[str, Any]]] = {n: [] for n, _ in edits.entries()}

    def add(self, frame: int, changes: Sequence[tuple[str, Box]]) -> None:
        for name, box in changes:
            self.changed[name].append({"frame": frame, "box": [round(v, 2) for v in box]})

    def records(self) -> list[dict[str, Any]]:
        """One record per entry, in file order: ``entry`` (``"add[0]"``), ``kind``,
        ``index``, the entry's fields, ``frames_changed`` (how many) and ``changed``
        (``[{"frame", "box"}]``: the box anonymized for an add, the detection left
        as it is for a remove, the detection whose method changed for a methods entry)."""
        out = []
        for name, entry in self.edits.entries():
            kind, _, rest = name.partition("[")
            changed = self.changed[name]
            frames = len({c["frame"] for c in changed})
            out.append(
                {"entry": name, "kind": kind, "index": int(rest[:-1]), **entry.to_dict()}
                | {"frames_changed": frames, "changed": changed}
            )
        return out


def face_edit_records(faces: Faces, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` (``faces.to_records()``) with ``edit`` and ``method`` added where an
    edit set them (audit files)."""
    for key in ("edit", "method"):
        for rec, value in zip(records, faces.data.get(key, []), strict=False):
            if value is not None:
                rec[key] = value
    return records


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def load_edits(path: str | Path) -> EditList:
    """Read and validate an edit list file; :class:`InputError` names the file and entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read edit list: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    return EditList.from_dict(data, source=str(path))


def save_edits(path: str | Path, edits: EditList) -> None:
    """Write ``edits`` as JSON, atomically (a reader never sees half a file)."""
    from veil.files import write_json_atomic

    write_json_atomic(Path(path), edits.to_dict())
