"""Core types: :class:`Frame` (what flows in) and :class:`Faces` (what detectors find).

Colour order is **RGB** everywhere inside veil; conversion from/to BGR happens only at
the I/O boundary (``veil.io``) and inside backends that need BGR (OpenCV cascades).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veil.errors import InputError

__all__ = ["Faces", "Frame", "check_image"]


def check_image(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Return ``image`` if it is an RGB ``uint8 (H, W, 3)`` array, else raise ``InputError``."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"{name}: expected RGB uint8 array of shape (H, W, 3), "
            f"got {image.dtype} array of shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name}: image is empty, shape {image.shape}")
    return image


@dataclass(frozen=True)
class Frame:
    """One image to anonymize.

    Attributes:
        image: RGB ``uint8`` array ``(H, W, 3)``.
        depth: optional depth in metres, ``float32 (H, W)``; 0 or NaN means unknown.
        index: position in its sequence (0 for a still image).
        timestamp: seconds from the start of its sequence, if known.
    """

    image: np.ndarray
    depth: np.ndarray | None = None
    index: int = 0
    timestamp: float | None = None

    def __post_init__(self) -> None:
        check_image(self.image, name="Frame.image")
        if self.depth is not None:
            d = self.depth
            if d.dtype != np.float32 or d.shape != self.image.shape[:2]:
                raise InputError(
                    f"Frame.depth: expected float32 array of shape {self.image.shape[:2]}, "
                    f"got {d.dtype} array of shape {d.shape}"
                )

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def _as_array(
    value: Any, dtype: type, shape_tail: tuple[int, ...], name: str, n: int
) -> np.ndarray:
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.size == 0 and n == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.shape != (n, *shape_tail):
        raise InputError(f"Faces.{name}: expected shape {(n, *shape_tail)}, got {arr.shape}")
    return arr


@dataclass
class Faces:
    """A set of faces in one frame, as parallel numpy arrays (one row per face).

    Attributes:
        xyxy: boxes ``float32 (n, 4)``, pixel coordinates ``x0, y0, x1, y1``.
        scores: detector confidence ``float32 (n,)`` in ``[0, 1]``.
        landmarks: optional 5-point landmarks ``float32 (n, 5, 2)`` (eyes, nose, mouth
            corners) as ``x, y``.
        masks: optional per-face masks ``bool (n, H, W)`` (e.g. depth-refined heads).
        track_id: optional track ids ``int64 (n,)``; ``-1`` for untracked faces.
        data: free per-face metadata, each value a sequence of length ``n``.
    """

    xyxy: np.ndarray
    scores: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    masks: np.ndarray | None = None
    track_id: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise InputError(f"Faces.xyxy: expected shape (n, 4), got {xyxy.shape}")
        n = len(xyxy)
        if not np.all(np.isfinite(xyxy)):
            raise InputError("Faces.xyxy: boxes contain NaN or infinite values")
        if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
            raise InputError("Faces.xyxy: boxes must satisfy x0 <= x1 and y0 <= y1")
        self.xyxy = xyxy
        scores = np.ones(n, np.float32) if self.scores is None else self.scores
        self.scores = _as_array(scores, np.float32, (), "scores", n)
        if self.landmarks is not None:
            self.landmarks = _as_array(self.landmarks, np.float32, (5, 2), "landmarks", n)
        if self.masks is not None:
            masks = np.asarray(self.masks, dtype=bool)
            if masks.ndim != 3 or len(masks) != n:
                raise InputError(f"Faces.masks: expected shape ({n}, H, W), got {masks.shape}")
            self.masks = masks
        if self.track_id is not None:
            self.track_id = _as_array(self.track_id, np.int64, (), "track_id", n)
        for key, value in self.data.items():
            if len(value) != n:
                raise InputError(f"Faces.data[{key!r}]: expected length {n}, got {len(value)}")

    @classmethod
    def empty(cls) -> Faces:
        """A set with no faces."""
        return cls(xyxy=np.zeros((0, 4), np.float32))

    @classmethod
    def merge(cls, parts: Sequence[Faces]) -> Faces:
        """Concatenate face sets; optional fields survive only if every part has them."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()

        def cat(attr: str) -> np.ndarray | None:
            values = [getattr(p, attr) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)

        keys = set.intersection(*(set(p.data) for p in parts))
        data = {k: [v for p in parts for v in p.data[k]] for k in keys}
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            scores=cat("scores"),
            landmarks=cat("landmarks"),
            masks=cat("masks"),
            track_id=cat("track_id"),
            data=data,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[Faces]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Faces:
        """Select faces by int, slice, index array or boolean mask; always returns Faces."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Faces(
            xyxy=self.xyxy[idx],
            scores=pick(self.scores),
            landmarks=pick(self.landmarks),
            masks=pick(self.masks),
            track_id=pick(self.track_id),
            data={k: [v[i] for i in idx] for k, v in self.data.items()},
        )

    @property
    def sizes(self) -> np.ndarray:
        """Face size in pixels, ``float32 (n,)``: the mean of box width and height."""
        return ((self.xyxy[:, 2] - self.xyxy[:, 0]) + (self.xyxy[:, 3] - self.xyxy[:, 1])) / 2

    def clip(self, shape: tuple[int, int]) -> Faces:
        """Boxes clipped to an image of ``(height, width)``; boxes left empty are dropped."""
        h, w = shape
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
        out = self[np.arange(len(self))]
        out.xyxy = xyxy
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return out[keep]

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready list of dicts: ``box`` as ``[x0, y0, x1, y1]``, ``score``, ..."""
        records = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "box": [round(float(v), 2) for v in self.xyxy[i]],
                "score": round(float(self.scores[i]), 4),  # type: ignore[index]
            }
            if self.landmarks is not None:
                rec["landmarks"] = np.round(self.landmarks[i].astype(np.float64), 2).tolist()
            if self.track_id is not None:
                rec["track_id"] = int(self.track_id[i])
            records.append(rec)
        return records
