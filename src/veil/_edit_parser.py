"""Validation of an edit list's JSON form (:meth:`veil.edits.EditList.from_dict`): every
message starts with the source and the entry (``edits.json: add[2].box: ...``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from veil.edits import VERSION, AddEdit, Box, EditList, MethodEdit, RemoveEdit
from veil.errors import InputError

__all__ = ["EditParser"]


class EditParser:
    """Validation of the JSON form, every message prefixed with the source and entry."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> InputError:
        return InputError(f"{self.source}: {where}: {message}")

    def edit_list(self, data: Any) -> EditList:
        if not isinstance(data, Mapping):
            raise InputError(
                f"{self.source}: expected a JSON object with 'version', 'add', 'remove', "
                f"got {type(data).__name__}"
            )
        self.keys(data, "edit list", required={"version"}, optional={"add", "remove", "methods"})
        version = data["version"]
        if version != VERSION or isinstance(version, bool):
            raise self.fail("version", f"unsupported version {version!r}; this veil reads 1")
        add = [self.add(e, f"add[{i}]") for i, e in enumerate(self.items(data, "add"))]
        remove = [self.remove(e, f"remove[{i}]") for i, e in enumerate(self.items(data, "remove"))]
        methods = [
            self.method_edit(e, f"methods[{i}]") for i, e in enumerate(self.items(data, "methods"))
        ]
        return EditList(
            add=tuple(add), remove=tuple(remove), methods=tuple(methods), source=self.source
        )

    def keys(
        self, data: Mapping[str, Any], where: str, *, required: set[str], optional: set[str]
    ) -> None:
        unknown = sorted(set(data) - required - optional)
        if unknown:
            valid = ", ".join(sorted(required | optional))
            raise self.fail(where, f"unknown key {unknown[0]!r}; valid keys: {valid}")
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(where, f"missing key {missing[0]!r}")

    def items(self, data: Mapping[str, Any], key: str) -> Sequence[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def entry(
        self, data: Any, where: str, optional: set[str], extra: frozenset[str] = frozenset()
    ) -> Any:
        if not isinstance(data, Mapping):
            raise self.fail(where, f"expected an object, got {type(data).__name__}")
        self.keys(data, where, required={"frames", "box"} | extra, optional=optional)
        return data

    def add(self, data: Any, where: str) -> AddEdit:
        data = self.entry(data, where, optional={"track", "at", "method"})
        frames = self.frames(data["frames"], f"{where}.frames")
        track = data.get("track", True)
        if not isinstance(track, bool):
            raise self.fail(f"{where}.track", f"expected true or false, got {track!r}")
        at = data.get("at")
        if at is not None:
            at = self.integer(at, f"{where}.at")
            if not frames[0] <= at <= frames[1]:
                raise self.fail(f"{where}.at", f"frame {at} is outside frames {list(frames)}")
        method = data.get("method")
        if method is not None:
            method = self.method(method, f"{where}.method")
        box = self.box(data["box"], f"{where}.box")
        return AddEdit(frames=frames, box=box, track=track, at=at, method=method)

    def remove(self, data: Any, where: str) -> RemoveEdit:
        data = self.entry(data, where, optional=set())
        return RemoveEdit(
            frames=self.frames(data["frames"], f"{where}.frames"),
            box=self.box(data["box"], f"{where}.box"),
        )

    def method_edit(self, data: Any, where: str) -> MethodEdit:
        data = self.entry(data, where, optional=set(), extra=frozenset({"method"}))
        return MethodEdit(
            frames=self.frames(data["frames"], f"{where}.frames"),
            box=self.box(data["box"], f"{where}.box"),
            method=self.method(data["method"], f"{where}.method"),
        )

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected a whole frame number, got {value!r}")
        if value < 0:
            raise self.fail(where, f"frame numbers start at 0, got {value}")
        return value

    def frames(self, value: Any, where: str) -> tuple[int, int]:
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(where, f"expected [first, last], got {value!r}")
        first, last = (self.integer(v, where) for v in value)
        if last < first:
            raise self.fail(where, f"last frame {last} is before first frame {first}")
        return first, last

    def box(self, value: Any, where: str) -> Box:
        if not isinstance(value, list) or len(value) != 4:
            raise self.fail(where, f"expected [x1, y1, x2, y2], got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise self.fail(where, f"expected four numbers, got {value!r}")
        x1, y1, x2, y2 = (float(v) for v in value)
        if x1 < 0 or y1 < 0:
            raise self.fail(where, f"coordinates must be >= 0, got {value!r}")
        if x2 <= x1:
            raise self.fail(where, "x2 must be greater than x1")
        if y2 <= y1:
            raise self.fail(where, "y2 must be greater than y1")
        return x1, y1, x2, y2

    def method(self, value: Any, where: str) -> str:
        from veil.anonymize.base import ANONYMIZERS

        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a method name, got {value!r}")
        names = ANONYMIZERS.names()
        if value not in names:
            raise self.fail(where, f"unknown method {value!r}; choose one of: {', '.join(names)}")
        return value
