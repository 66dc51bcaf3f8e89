"""Synthetic RGB-D scenes with ground truth: people at several depths in front of a wall.

A scene is rendered with a z-buffered painter (no 3-D library): a textured back wall and
floor, then for each person a rounded torso, legs, a neck and an ellipsoid head (metric
size 0.16 m wide, 0.22 m tall) projected with pinhole intrinsics. Depth on every body part
follows its curved surface, so heads have a facial relief. People facing the camera get
the astronaut's face (``skimage.data.astronaut()``, a public-domain NASA photo) warped onto
the front of the head; people facing away get hair all over. Ground truth per person:
the visible head pixels and the visible face pixels.

With ``distractors=n`` the scene also gets ``n`` static objects that a head finder can
mistake for heads (:data:`DISTRACTORS`, cycled in order): a floor lamp, a door-frame
post, a loudspeaker box on a thin stand and a box on a cabinet, with their own ground
truth (:attr:`SynthFrame.objects`). They are drawn from their own random stream, so the
people, walls and noise of a seed are the same with and without them.

The depth map then gets Kinect-like defects: noise with a standard deviation of
``1.5 mm * Z^2`` (Z in metres), holes along depth edges, random dropouts and blobs, and
no reading beyond 8 m (0 means invalid). The colour image gets mild sensor noise.

Everything is deterministic in ``seed``; a 640x480 frame renders in about 15-30 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

__all__ = ["DISTRACTORS", "HEAD_SIZE", "SynthFrame", "default_intrinsics", "make_scene"]

#: metric head size used by the renderer and the maskers: width, height, depth (metres)
HEAD_SIZE = (0.16, 0.22, 0.19)
CAMERA_HEIGHT = 1.5  # metres above the floor, looking horizontally
MAX_RANGE = 8.0
NOISE_PER_M2 = 0.0015
_FACE_CROP = (168, 40, 280, 172)  # astronaut: forehead to chin, x0, y0, x1, y1
_FACE_RECT = (-0.068, -0.06, 0.068, 0.115)  # where the crop lands on the head, metres
#: the non-person objects of ``make_scene(distractors=...)``, in the order they are added
DISTRACTORS = ("lamp", "door post", "speaker on stand", "box on cabinet")
_OBJECT_ID = 1000  # part ids of objects: 1000 + 10 * object + part


@dataclass(frozen=True)
class SynthFrame:
    """One rendered RGB-D frame with ground truth (one row per person, ``n = people``).

    Attributes:
        color: RGB ``uint8 (H, W, 3)``.
        depth: ``float32 (H, W)`` in metres, 0 where the sensor gives no reading.
        face_masks: ``bool (n, H, W)``, the visible face pixels (all False when the
            person faces away or the face is hidden).
        head_masks: ``bool (n, H, W)``, the visible head pixels (face, hair, ears).
        face_boxes: ``float32 (n, 4)`` xyxy bounding box of each face mask; all-zero rows
            for people without a visible face (see :attr:`face_visible`).
        intrinsics: ``{"fx", "fy", "cx", "cy"}`` in pixels.
        clean_depth: the noiseless depth before sensor defects, ``float32 (H, W)``.
        objects: ``bool (m, H, W)``, the visible pixels of each distractor object
            (``m = 0`` without distractors); ``object_kinds`` names them.
    """

    color: np.ndarray
    depth: np.ndarray
    face_masks: np.ndarray
    head_masks: np.ndarray
    face_boxes: np.ndarray
    intrinsics: dict[str, float]
    clean_depth: np.ndarray
    objects: np.ndarray
    object_kinds: tuple[str, ...]

    @property
    def face_visible(self) -> np.ndarray:
        """``bool (n,)``: the person's face is visible (at least 20 pixels)."""
        return np.asarray(self.face_masks.sum(axis=(1, 2)) >= 20)


def default_intrinsics(size: tuple[int, int]) -> dict[str, float]:
    """Kinect-like pinhole intrinsics (fx = fy = 525 at 640 px wide) for ``(H, W)``."""
    h, w = size
    f = 525.0 * w / 640.0
    return {"fx": f, "fy": f, "cx": (w - 1) / 2, "cy": (h - 1) / 2}


@dataclass
class _Person:
    x: float
    z: float
    vx: float
    vz: float
    height: float
    front: bool
    shirt: np.ndarray
    pants: np.ndarray
    hair: np.ndarray
    skin: np.ndarray


def make_scene(
    seed: int,
    *,
    size: tuple[int, int] = (480, 640),
    people: int = 3,
    frames: int = 1,
    intrinsics: dict[str, float] | None = None,
    noise: bool = True,
    distractors: int = 0,
) -> list[SynthFrame]:
    """Render ``frames`` frames of ``people`` people walking in front of a wall.

    Person 0 always faces the camera; with two people or more the last one faces away;
    the others face the camera with probability 0.65. ``noise=False`` skips the sensor
    defects (depth equals ``clean_depth``). ``distractors`` static objects of the kinds
    in :data:`DISTRACTORS` (cycled) stand 0.8-2.2 m in front of the wall.
    """
    rng = np.random.default_rng(seed)
    k = dict(intrinsics) if intrinsics is not None else default_intrinsics(size)
    rays = _rays(size, k)
    wall_z = float(rng.uniform(5.0, 7.0))
    bg_color, bg_depth = _background(rng, rays, wall_z)
    crowd = [_new_person(rng, i, people, k, size) for i in range(people)]
    obj_rng = np.random.default_rng([seed & 0xFFFFFFFF, 0xFFFFFFFF])
    objects = [_new_object(obj_rng, j, k, size, wall_z) for j in range(distractors)]
    bg = _Canvas(bg_color, bg_depth, rays, k)
    for j, obj in enumerate(objects):
        for centre, axes, power in obj.parts:
            bg.paint(_OBJECT_ID + 10 * j, centre, axes, obj.colour, power=power)
    out = []
    for t in range(frames):
        frame_rng = np.random.default_rng([seed & 0xFFFFFFFF, t])
        canvas = _Canvas(bg.color, bg.depth, rays, k, bg.ids)
        out.append(_render(crowd, t, canvas, k, frame_rng, noise, objects))
    return out


@dataclass
class _Object:
    kind: str
    colour: np.ndarray
    parts: list[tuple[tuple[float, float, float], tuple[float, float, float], float]]


def _new_object(
    rng: np.random.Generator, j: int, k: dict[str, float], size: tuple[int, int], wall_z: float
) -> _Object:
    """One distractor: parts as (centre, half-axes, superellipsoid power), metres."""
    kind = DISTRACTORS[j % len(DISTRACTORS)]
    z = float(rng.uniform(max(1.5, wall_z - 2.2), wall_z - 0.8))  # mostly behind people
    x = float(rng.uniform(-0.8, 0.8) * (size[1] / 2) / k["fx"] * z)
    floor = CAMERA_HEIGHT  # y grows downward from the camera
    parts: list[tuple[tuple[float, float, float], tuple[float, float, float], float]] = []
    if kind == "lamp":  # a shade on a thin pole
        top = floor - rng.uniform(1.6, 1.9)
        sw, sh = rng.uniform(0.14, 0.2), rng.uniform(0.11, 0.15)
        parts.append(((x, top + sh, z), (sw, sh, sw), 4.0))
        parts.append(((x, (top + floor) / 2, z), (0.015, (floor - top) / 2, 0.015), 6.0))
    elif kind == "door post":  # a jamb from the floor to above the door
        top = floor - rng.uniform(2.0, 2.4)
        parts.append(
            ((x, (top + floor) / 2, z), (rng.uniform(0.04, 0.08), (floor - top) / 2, 0.06), 10.0)
        )
    elif kind == "speaker on stand":
        top = floor - rng.uniform(1.5, 1.85)
        bw, bh = rng.uniform(0.09, 0.14), rng.uniform(0.12, 0.17)
        parts.append(((x, top + bh, z), (bw, bh, 0.1), 10.0))
        parts.append(((x, (top + floor) / 2, z), (0.02, (floor - top) / 2, 0.02), 6.0))
    else:  # "box on cabinet"
        top = floor - rng.uniform(1.5, 1.8)
        bw, bh = rng.uniform(0.09, 0.14), rng.uniform(0.1, 0.15)
        cab_top = top + 2 * bh
        parts.append(((x, top + bh, z), (bw, bh, 0.1), 10.0))
        cw = rng.uniform(0.25, 0.45)
        parts.append(((x, (cab_top + floor) / 2, z + 0.05), (cw, (floor - cab_top) / 2, 0.2), 10.0))
    colour = rng.uniform(30, 230, 3).astype(np.float32)
    return _Object(kind, colour, parts)


def _rays(size: tuple[int, int], k: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    rx = ((np.arange(w, dtype=np.float32) - k["cx"]) / k["fx"])[None, :]
    ry = ((np.arange(h, dtype=np.float32) - k["cy"]) / k["fy"])[:, None]
    return rx, ry


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    small = rng.standard_normal((max(2, shape[0] // cells), max(2, shape[1] // cells)))
    return cv2.resize(small.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _background(
    rng: np.random.Generator, rays: tuple[np.ndarray, np.ndarray], wall_z: float
) -> tuple[np.ndarray, np.ndarray]:
    """Textured wall at ``wall_z`` and a checkered floor; colour float32, depth float32."""
    rx, ry = rays
    h, w = ry.shape[0], rx.shape[1]
    floor_z = np.where(ry > 1e-4, CAMERA_HEIGHT / np.maximum(ry, 1e-4), np.inf)
    depth = np.broadcast_to(np.minimum(floor_z, wall_z), (h, w)).astype(np.float32)
    is_floor = np.broadcast_to(floor_z < wall_z, (h, w))
    wall = rng.uniform(120, 220, 3).astype(np.float32)
    floor = rng.uniform(60, 150, 3).astype(np.float32)
    tex = 12 * _smooth_noise(rng, (h, w), 24) + 5 * _smooth_noise(rng, (h, w), 4)
    xw, zw = rx * depth, depth
    checker = ((np.floor(xw / 0.5) + np.floor(zw / 0.5)) % 2).astype(np.float32)
    color = np.where(is_floor[..., None], floor * (0.8 + 0.3 * checker[..., None]), wall)
    color = color + tex[..., None]
    for _ in range(int(rng.integers(2, 5))):  # posters on the wall
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h // 2))
        pw, ph = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        patch = color[y0 : y0 + ph, x0 : x0 + pw]
        patch[~is_floor[y0 : y0 + ph, x0 : x0 + pw]] = rng.uniform(30, 250, 3)
    return color.astype(np.float32), depth


def _new_person(
    rng: np.random.Generator, i: int, n: int, k: dict[str, float], size: tuple[int, int]
) -> _Person:
    z = float(rng.uniform(1.3, 4.2))
    half_w = (size[1] / 2) / k["fx"] * z * 0.8
    slot = (i + 0.5) / n * 2 - 1 + rng.uniform(-0.15, 0.15) / n
    front = i == 0 or (i < n - 1 and bool(rng.random() < 0.65))
    skin = np.array(rng.choice([[224, 180, 150], [180, 130, 100], [120, 80, 60]]), np.float32)
    return _Person(
        x=float(slot * half_w),
        z=z,
        vx=float(rng.uniform(-0.04, 0.04)),
        vz=float(rng.uniform(-0.05, 0.03)),
        height=float(rng.uniform(1.6, 1.9)),
        front=front,
        shirt=rng.uniform(20, 240, 3).astype(np.float32),
        pants=rng.uniform(20, 120, 3).astype(np.float32),
        hair=rng.uniform(10, 90, 3).astype(np.float32) * np.array([1.0, 0.8, 0.6], np.float32),
        skin=skin,
    )


@lru_cache(maxsize=1)
def _face_texture() -> np.ndarray:
    import skimage.data

    x0, y0, x1, y1 = _FACE_CROP
    return skimage.data.astronaut()[y0:y1, x0:x1].astype(np.float32)


class _Canvas:
    """z-buffer, colour and part-id buffers; ``paint`` draws one curved part."""

    def __init__(
        self,
        color: np.ndarray,
        depth: np.ndarray,
        rays: Any,
        k: dict[str, float],
        ids: np.ndarray | None = None,
    ):
        self.color = color.copy()
        self.depth = depth.copy()
        self.ids = np.zeros(depth.shape, np.int32) if ids is None else ids.copy()
        self.rx, self.ry = rays
        self.k = k

    def paint(
        self,
        part_id: int,
        centre: tuple[float, float, float],
        axes: tuple[float, float, float],
        colour: np.ndarray,
        *,
        power: float = 2.0,
    ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """Draw a superellipsoid (``power`` 2: ellipsoid, larger: rounded box).

        Returns the bounding slices, the written pixels and the local metric x, y there.
        """
        cx, cy, cz = centre
        ax, ay, az = axes
        h, w = self.depth.shape
        k = self.k
        u0 = max(0, int((cx - ax) / cz * k["fx"] + k["cx"]))
        u1 = min(w, int((cx + ax) / cz * k["fx"] + k["cx"]) + 2)
        v0 = max(0, int((cy - ay) / cz * k["fy"] + k["cy"]))
        v1 = min(h, int((cy + ay) / cz * k["fy"] + k["cy"]) + 2)
        if u1 <= u0 or v1 <= v0 or cz <= 0.3:
            return None
        sl = (slice(v0, v1), slice(u0, u1))
        x = self.rx[:, u0:u1] * cz - cx
        y = self.ry[v0:v1] * cz - cy
        qx, qy = np.abs(x / ax), np.abs(y / ay)
        inside = (qx**power + qy**power) < 1
        bulge = np.sqrt(np.clip(1 - qx**2 - (qy**2 if power == 2 else 0), 0, 1))
        bulge = np.broadcast_to(bulge, inside.shape)
        z = (cz - az * bulge).astype(np.float32)
        write = inside & (z < self.depth[sl])
        self.depth[sl][write] = z[write]
        self.ids[sl][write] = part_id
        shade = (0.55 + 0.45 * bulge)[..., None]
        self.color[sl][write] = (colour * shade)[write]
        return sl, write, np.broadcast_to(x, z.shape), np.broadcast_to(y, z.shape)


def _paint_person(canvas: _Canvas, p: _Person, t: int, pid: int) -> np.ndarray | None:
    """Paint one person; return the face-texture mask (full image) or None."""
    x, z = _position(p, t)
    hw, hh, hd = (s / 2 for s in HEAD_SIZE)
    top = CAMERA_HEIGHT - p.height
    head_y = top + hh
    shoulder = top + 0.27
    hip = shoulder + 0.6
    body = 10 * pid
    legs_h = (CAMERA_HEIGHT - hip) / 2
    for dx in (-0.1, 0.1):
        canvas.paint(body + 1, (x + dx, hip + legs_h, z), (0.08, legs_h, 0.08), p.pants, power=6)
    canvas.paint(body + 2, (x, shoulder + 0.3, z), (0.22, 0.32, 0.12), p.shirt, power=5)
    canvas.paint(body + 3, (x, shoulder - 0.03, z + 0.01), (0.05, 0.06, 0.05), p.skin, power=4)
    head = canvas.paint(body + 5, (x, head_y, z - 0.02), (hw, hh, hd), p.hair)
    if head is None or not p.front:
        return None
    sl, write, lx, ly = head
    fx0, fy0, fx1, fy1 = _FACE_RECT
    face = write & (((lx / 0.062) ** 2 + ((ly - 0.033) / 0.077) ** 2) < 1)
    if not face.any():
        return None
    tex = _face_texture()
    gu = ((lx - fx0) / (fx1 - fx0) * (tex.shape[1] - 1)).astype(np.float32)
    gv = ((ly - fy0) / (fy1 - fy0) * (tex.shape[0] - 1)).astype(np.float32)
    warped = cv2.remap(tex, gu, gv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    canvas.color[sl][face] = warped[face]
    full = np.zeros(canvas.depth.shape, bool)
    full[sl] = face
    return full


def _position(p: _Person, t: int) -> tuple[float, float]:
    """Walk with constant speed, bouncing between limits (lateral and toward the camera)."""
    z = _bounce(p.z + p.vz * t, 1.2, 4.5)
    x = _bounce(p.x + p.vx * t, -0.45 * z, 0.45 * z)
    return x, z


def _bounce(v: float, lo: float, hi: float) -> float:
    span = hi - lo
    r = (v - lo) % (2 * span)
    return lo + (r if r <= span else 2 * span - r)


def _render(
    crowd: list[_Person],
    t: int,
    canvas: _Canvas,
    k: dict[str, float],
    rng: np.random.Generator,
    noise: bool,
    objects: list[_Object],
) -> SynthFrame:
    order = sorted(range(len(crowd)), key=lambda i: -_position(crowd[i], t)[1])
    faces: dict[int, np.ndarray] = {}
    for i in order:
        face = _paint_person(canvas, crowd[i], t, i + 1)
        if face is not None:
            faces[i] = face
    shape = canvas.depth.shape
    heads = np.stack([canvas.ids == 10 * (i + 1) + 5 for i in range(len(crowd))])
    face_masks = np.zeros_like(heads)
    for i, face in faces.items():
        face_masks[i] = face & heads[i]
    boxes = np.zeros((len(crowd), 4), np.float32)
    for i in range(len(crowd)):
        ys, xs = np.nonzero(face_masks[i])
        if len(ys):
            boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    clean = canvas.depth.astype(np.float32)
    depth = _sensor_depth(clean, rng) if noise else clean.copy()
    color = canvas.color
    if noise:
        color = color + rng.standard_normal(color.shape, dtype=np.float32) * 3
    color8 = np.clip(color, 0, 255).astype(np.uint8)
    assert color8.shape[:2] == shape
    objs = np.zeros((len(objects), *shape), bool)
    for j in range(len(objects)):
        objs[j] = canvas.ids == _OBJECT_ID + 10 * j
    kinds = tuple(o.kind for o in objects)
    return SynthFrame(color8, depth, face_masks, heads, boxes, dict(k), clean, objs, kinds)


def _sensor_depth(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise ~ Z^2, holes along depth edges, random dropouts and blobs, range limit."""
    h, w = clean.shape
    depth = clean + rng.standard_normal(clean.shape, dtype=np.float32) * (NOISE_PER_M2 * clean**2)
    kernel = np.ones((3, 3), np.uint8)
    grad = cv2.dilate(clean, kernel) - cv2.erode(clean, kernel)
    edges = grad > 0.05 + 0.03 * clean
    holes = edges & (rng.random((h, w), dtype=np.float32) < 0.8)
    holes |= rng.random((h, w), dtype=np.float32) < 0.003
    blobs = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, 12)), int(rng.integers(2, 12)))
        cv2.ellipse(blobs, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    holes |= blobs > 0
    depth[holes | (clean > MAX_RANGE)] = 0
    return depth.astype(np.float32)
