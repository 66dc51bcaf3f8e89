"""Test inputs built from images packaged with scikit-image (no binary fixtures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data
from click.testing import CliRunner, Result
from PIL import Image

from veil.boxes import box_iou
from veil.types import Faces

#: the astronaut's face in ``skimage.data.astronaut()`` (512 x 512), ``x0, y0, x1, y1``
ASTRONAUT_FACE = np.array([176, 66, 272, 162], np.float32)
#: the cameraman's face in ``skimage.data.camera()`` (512 x 512; CenterFace's box): another
#: real person (dlib ResNet distance 0.83 from the astronaut, above the 0.6 threshold)
CAMERAMAN_FACE = np.array([202, 120, 258, 196], np.float32)


def _photo(person: str) -> tuple[np.ndarray, np.ndarray]:
    if person == "astronaut":
        return skimage.data.astronaut(), ASTRONAUT_FACE.copy()
    if person == "cameraman":
        grey = skimage.data.camera()
        return np.stack([grey] * 3, axis=-1), CAMERAMAN_FACE.copy()
    raise ValueError(f"no packaged photo of {person!r}")


def face_on_canvas(
    *,
    scale: float = 0.5,
    offset: tuple[int, int] = (40, 0),
    canvas: tuple[int, int] = (240, 320),
    mirror: bool = False,
    seed: int = 0,
    person: str = "astronaut",
) -> tuple[np.ndarray, np.ndarray]:
    """The photo of ``person`` (``"astronaut"`` or ``"cameraman"``: two different real
    people) scaled by ``scale``, pasted with its top-left corner at ``offset (x, y)`` (may
    be negative: the photo is cropped) into uniform noise of ``canvas (H, W)``, optionally
    mirrored left-right first.

    Returns ``(image uint8 (H, W, 3) RGB, face box xyxy float32 (4,))``.
    """
    photo, face = _photo(person)
    if mirror:
        photo = photo[:, ::-1]
        face[[0, 2]] = photo.shape[1] - face[[2, 0]]
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    image = np.random.default_rng(seed).integers(0, 256, (*canvas, 3), dtype=np.uint8)
    ox, oy = offset
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + photo.shape[0], canvas[0]), min(ox + photo.shape[1], canvas[1])
    image[y0:y1, x0:x1] = photo[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return image, face * scale + np.array([ox, oy, ox, oy], np.float32)


def cameraman(size: int = 256) -> np.ndarray:
    """``skimage.data.camera()`` (a face in profile, looking right) as RGB ``(size, size, 3)``."""
    grey = cv2.resize(skimage.data.camera(), (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))


def flat_grey(shape: tuple[int, int] = (240, 320), value: int = 128) -> np.ndarray:
    """A featureless RGB image ``uint8 (H, W, 3)``."""
    return np.full((*shape, 3), value, np.uint8)


def best_iou(faces: Faces, box: np.ndarray) -> float:
    """Highest IoU between any detected face and ``box (4,)``; 0 when nothing was found."""
    if len(faces) == 0:
        return 0.0
    return float(box_iou(faces.xyxy, box[None]).max())


def assert_valid_faces(faces: Faces, shape: tuple[int, ...]) -> None:
    """Boxes ``float32 (n, 4)`` inside an image of ``shape``, scores ``float32 (n,)`` in [0, 1]."""
    assert isinstance(faces, Faces)
    assert faces.xyxy.dtype == np.float32 and faces.xyxy.shape == (len(faces), 4)
    assert faces.scores is not None
    assert faces.scores.dtype == np.float32 and faces.scores.shape == (len(faces),)
    assert np.all((faces.scores >= 0) & (faces.scores <= 1))
    h, w = shape[:2]
    assert np.all(faces.xyxy >= 0)
    assert np.all(faces.xyxy[:, [0, 2]] <= w) and np.all(faces.xyxy[:, [1, 3]] <= h)


#: inputs ``detect`` must refuse with ``InputError``: (test id, value)
BAD_IMAGES = [
    ("float32", np.zeros((32, 32, 3), np.float32)),
    ("grey-2d", np.zeros((32, 32), np.uint8)),
    ("rgba", np.zeros((32, 32, 4), np.uint8)),
    ("empty", np.zeros((0, 32, 3), np.uint8)),
    ("list", [[[0, 0, 0]]]),
]


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (RGB ``uint8``) encoded as PNG."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> RGB ``uint8 (H, W, 3)``."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


# --- two people in one scene, and the helpers their CLI tests share ---------------------------

#: canvas of :func:`two_people`: the astronaut on the left half, the cameraman on the right
TWO_PEOPLE_SIZE = (300, 640)


def two_people(astronaut_scale: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image, astronaut box, cameraman box)``: two real people the detector finds, the
    astronaut on the left, the cameraman (in profile) on the right."""
    size = TWO_PEOPLE_SIZE
    left, a_box = face_on_canvas(scale=astronaut_scale, offset=(0, 10), canvas=size, seed=1)
    right, c_box = face_on_canvas(
        person="cameraman", scale=0.8, offset=(150, 0), canvas=size, seed=2
    )
    image = left.copy()
    image[:, 320:] = right[:, 150:470]
    return image, a_box, c_box + np.array([170, 0, 170, 0], np.float32)


def save_png(path: Path, image: np.ndarray) -> Path:
    """``image`` written to ``path`` (its folders made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def load_rgb(path: Path) -> np.ndarray:
    """An image file as RGB ``int`` (so differences do not wrap)."""
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def box_change(out: np.ndarray, src: np.ndarray, box: np.ndarray) -> float:
    """Mean absolute change of the pixels in ``box`` (xyxy) between two images."""
    x0, y0, x1, y1 = box.astype(int)
    return float(np.abs(out[y0:y1, x0:x1].astype(int) - src[y0:y1, x0:x1].astype(int)).mean())


def run_cli(*args: object) -> Result:
    """``veil ARGS`` in-process (exceptions propagate)."""
    from veil.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
