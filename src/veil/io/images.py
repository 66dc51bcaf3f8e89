"""Still-image I/O: the boundary where files become RGB ``uint8 (H, W, 3)`` arrays and back.

Reading decodes fully (a truncated or corrupt file is an :class:`~veil.errors.InputError`,
never a silently grey image), checks the pixel count from the header *before* decoding,
applies the EXIF orientation and converts every mode (L, LA, P, RGBA, CMYK, 16-bit, 1-bit)
to RGB, keeping transparency aside as an ``alpha`` plane.

Writing is atomic (temporary file in the target folder, ``fsync``, ``os.replace``) and
strips identifying metadata by default: no EXIF (so no GPS), no XMP, no IPTC, no comments.
The ICC profile is kept because it describes colour, not the person or the place; it is
dropped when it does not describe an RGB space (e.g. the CMYK profile of a converted JPEG).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import logging
import os
import secrets
import struct
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError

from veil.errors import ConfigError, InputError, OutputError
from veil.types import check_image

__all__ = [
    "IMAGE_SUFFIXES",
    "PNG_COMPRESSION",
    "LoadedImage",
    "iter_image_files",
    "read_image",
    "write_image",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
)
"""Lower-case file suffixes that :func:`iter_image_files` treats as images."""

PNG_COMPRESSION = 1
"""Default zlib level of PNG writes: fast; Pillow's own default is 6 (smaller, slower)."""

_WRITE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"})
# Pillow's name for a readable format -> the name veil reports and writes (MPO: camera JPEG).
_READ_FORMATS = {name: name for name in _WRITE_FORMATS} | {"MPO": "JPEG", "DIB": "BMP"}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_ORIENTATION = 0x0112
# IFD0 tags worth keeping on request: descriptive ones plus the Exif and GPS sub-IFDs.
# Structural TIFF tags (strip offsets, sample formats, ...) would be wrong in a new file.
_KEPT_IFD0_TAGS = frozenset({270, 271, 272, _ORIENTATION, 305, 306, 315, 33432, 0x8769, 0x8825})


@dataclass(frozen=True)
class LoadedImage:
    """An image read from disk, ready for the pipeline.

    Attributes:
        path: the file it came from.
        image: RGB ``uint8 (H, W, 3)``, EXIF orientation already applied.
        format: Pillow format name of the source (``"JPEG"``, ``"PNG"``, ``"WEBP"``, ...).
        alpha: ``uint8 (H, W)`` transparency (255 = opaque) if the source had any, else None.
        info: metadata for writing back on request: ``exif`` (bytes, orientation 1), ``xmp``,
            ``icc_profile`` (RGB profiles only), ``comment``, ``dpi``.
        source_mode: Pillow mode of the source before conversion (``"P"``, ``"I;16"``, ...).
        sha256: hex digest of the input file's bytes.
    """

    path: Path
    image: np.ndarray
    format: str
    alpha: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    source_mode: str = "RGB"
    sha256: str = ""


def read_image(path: str | os.PathLike[str], *, max_pixels: int = 178_956_970) -> LoadedImage:
    """Read an image file as RGB ``uint8 (H, W, 3)`` plus optional ``uint8 (H, W)`` alpha.

    Raises:
        InputError: missing, empty, truncated, corrupt, unsupported or larger than
            ``max_pixels`` (checked from the header, before any pixel is decoded).
    """
    path = Path(path)
    data = _read_bytes(path)
    with _pillow_warnings_logged(path), _open(path, data) as im:
        fmt = _check_header(path, im, max_pixels)
        _decode(path, im)
        info = _collect_info(im)
        ImageOps.exif_transpose(im, in_place=True)  # no copy of a large image when upright
        rgb, alpha = _to_rgb(path, im, im.info.get("icc_profile"))
    return LoadedImage(
        path=path,
        image=rgb,
        format=fmt,
        alpha=alpha,
        info=info,
        source_mode=im.mode,
        sha256=hashlib.sha256(data).hexdigest(),
    )


@contextlib.contextmanager
def _pillow_warnings_logged(path: Path) -> Iterator[None]:
    """Turn Pillow's warnings (corrupt EXIF, ...) into log records naming the file.

    Pillow's DecompressionBombWarning is dropped: ``max_pixels`` is veil's limit.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if not issubclass(w.category, Image.DecompressionBombWarning):
            logger.warning("%s: %s", path, w.message)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return data


def _open(path: Path, data: bytes) -> Image.Image:
    """Open (header only); Pillow's own decompression-bomb limit becomes an InputError."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{path}: not an image file, or a format Pillow cannot read") from exc
    except _DECODE_ERRORS as exc:
        raise InputError(f"{path}: corrupt image header ({exc})") from exc


def _check_header(path: Path, im: Image.Image, max_pixels: int) -> str:
    """Return veil's name for the format; reject unsupported formats and huge sizes."""
    fmt = _READ_FORMATS.get(im.format or "")
    if fmt is None:
        supported = ", ".join(sorted(set(_READ_FORMATS.values())))
        raise InputError(f"{path}: unsupported image format {im.format} (supported: {supported})")
    width, height = im.size
    if width * height > max_pixels:
        raise InputError(
            f"{path}: image is too large: {width} x {height} = {width * height:,} pixels, "
            f"more than the limit of {max_pixels:,}"
        )
    if width == 0 or height == 0:
        raise InputError(f"{path}: image has no pixels ({width} x {height})")
    return fmt


def _decode(path: Path, im: Image.Image) -> None:
    """Decode every pixel now, so truncation is an error here and not grey pixels later."""
    try:
        im.load()
    except _DECODE_ERRORS as exc:
        raise InputError(f"{path}: truncated or corrupt image data ({exc})") from exc


def _collect_info(im: Image.Image) -> dict[str, Any]:
    """Metadata that ``write_image(..., keep_metadata=True)`` can write back."""
    info: dict[str, Any] = {}
    exif = _clean_exif(im.getexif())
    if exif is not None:
        info["exif"] = exif
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp:
        info["xmp"] = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    icc = im.info.get("icc_profile")
    if icc and icc[16:20] == b"RGB ":
        info["icc_profile"] = icc
    comment = im.info.get("comment") or im.info.get("Comment")
    if comment:
        info["comment"] = comment.encode() if isinstance(comment, str) else bytes(comment)
    dpi = im.info.get("dpi")
    if dpi and min(dpi) > 1:  # Pillow's TIFF reader reports (1, 1) for "no unit"
        info["dpi"] = tuple(float(v) for v in dpi)
    return info


def _clean_exif(exif: Image.Exif) -> bytes | None:
    """EXIF bytes with descriptive tags, Exif and GPS IFDs kept and orientation set to 1."""
    clean, kept = Image.Exif(), False
    for tag in _KEPT_IFD0_TAGS & set(exif):
        if tag in (0x8769, 0x8825):
            sub = exif.get_ifd(tag)
            if sub:
                clean.get_ifd(tag).update(sub)
                kept = True
        else:
            clean[tag] = exif[tag]
            kept = True
    if _ORIENTATION in clean:
        clean[_ORIENTATION] = 1
    return clean.tobytes() if kept else None


def _to_rgb(path: Path, im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB ``uint8 (H, W, 3)`` and, if the image has transparency, ``uint8 (H, W)`` alpha."""
    try:
        return _convert(im, icc)
    except ValueError as exc:
        raise InputError(f"{path}: cannot convert mode {im.mode} to RGB ({exc})") from exc


def _convert(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, np.ndarray | None]:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _wide_to_rgb(im), None
    if im.mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im, icc)), None
    if "A" in im.getbands() or "transparency" in im.info:
        rgba = _array(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return _array(im if im.mode == "RGB" else im.convert("RGB")), None


def _array(im: Image.Image) -> np.ndarray:
    """A decoded image as a numpy array, copied a band of rows at a time: ``np.asarray``
    on a whole image holds two extra full copies on the way (bytes chunks and their join)."""
    w, h = im.size
    rows = max(1, (1 << 22) // max(w, 1))  # about 4 million pixels per band
    if h <= rows:
        return np.asarray(im)
    first = np.asarray(im.crop((0, 0, w, rows)))
    out = np.empty((h, *first.shape[1:]), first.dtype)
    out[:rows] = first
    for y in range(rows, h, rows):
        out[y : y + rows] = np.asarray(im.crop((0, y, w, min(h, y + rows))))
    return out


def _wide_to_rgb(im: Image.Image) -> np.ndarray:
    """16-bit (and 32-bit int) grey scaled 0..65535 -> 0..255; float grey clipped to 0..255.

    Converted a band of rows at a time: a float64 copy of a whole 49-megapixel image
    alone would take 400 MB."""
    arr = np.asarray(im)
    out = np.empty((*arr.shape[:2], 3), np.uint8)
    rows = max(1, (1 << 22) // max(arr.shape[1], 1))  # about 4 million pixels per band
    for y in range(0, arr.shape[0], rows):
        band = arr[y : y + rows].astype(np.float64)
        if im.mode != "F":
            band = np.clip(band, 0, 65535) / 257.0
        out[y : y + rows] = np.clip(np.rint(band), 0, 255).astype(np.uint8)[..., None]
    return out


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Colour-managed CMYK -> sRGB through the embedded profile, else Pillow's formula."""
    if icc and icc[16:20] == b"CMYK":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if out is not None:
                return out
        except (ImageCms.PyCMSError, OSError) as exc:
            logger.warning("CMYK profile unusable (%s); using plain conversion", exc)
    return im.convert("RGB")


def write_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    like: LoadedImage | None = None,
    format: str | None = None,
    keep_metadata: bool = False,
    jpeg_quality: int = 95,
    png_compression: int = PNG_COMPRESSION,
) -> None:
    """Write an RGB ``uint8 (H, W, 3)`` array atomically.

    The format is ``format``, else the file extension if it names an image format, else
    ``like.format`` (so ``out.png`` is a PNG even when ``like`` was a JPEG). The alpha
    plane of ``like`` is written back for PNG, WEBP and TIFF when its shape matches.
    ``keep_metadata=True`` writes back ``like.info`` (EXIF with orientation 1, XMP,
    comment, dpi) where the format supports it; the ICC profile is always kept.
    ``jpeg_quality`` (1-100) is also the WEBP quality. TIFF is LZW-compressed, except
    when EXIF is kept: then it is uncompressed, as only Pillow's own TIFF writer can
    carry the Exif and GPS sub-IFDs. ``png_compression`` is zlib's level for PNG (0-9):
    the default 1 encodes 2-6x faster than Pillow's 6 for files 2-17% larger (see
    docs/benchmarks.md); 9 gives the smallest files, slowly.

    Raises:
        OutputError: unwritable location, unknown extension, or ``path`` is ``like.path``.
        ConfigError: unknown ``format``.
    """
    path = Path(path)
    check_image(image, name=str(path))
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality={jpeg_quality} is out of range; expected 1..100")
    if not 0 <= png_compression <= 9:
        raise ConfigError(f"png_compression={png_compression} is out of range; expected 0..9")
    _refuse_overwriting_input(path, like)
    fmt = _output_format(path, format, like)
    pil = _to_pil(image, like, fmt)
    kwargs = _save_kwargs(fmt, like.info if like else {}, keep_metadata, jpeg_quality)
    if fmt == "PNG":
        kwargs["compress_level"] = png_compression
        fast = 1 <= png_compression <= 3
        if fast and not set(kwargs) - {"compress_level"} and pil.mode in ("RGB", "RGBA"):
            # no chunks to carry: OpenCV's encoder with zlib's run-length strategy was
            # as fast or faster than Pillow at level 1 for a similar size (see
            # benchmarks/stage_cost.py png; higher levels,
            # asked for small files, keep zlib's default strategy, which compresses more)
            _atomic_save(path, pil, fmt, kwargs, encode=_png_bytes)
            return
    _atomic_save(path, pil, fmt, kwargs)


def _png_bytes(pil: Image.Image, level: int) -> bytes:
    import cv2

    rgb = np.asarray(pil)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if pil.mode == "RGBA" else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, *PNG_RLE]
    ok, buf = cv2.imencode(".png", bgr, params)
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    return bytes(buf)


def _refuse_overwriting_input(path: Path, like: LoadedImage | None) -> None:
    if like is None:
        return
    same = path.resolve() == like.path.resolve()
    if not same and path.exists() and like.path.exists():
        same = os.path.samefile(path, like.path)
    if same:
        raise OutputError(f"{path}: refusing to overwrite the input image; choose another path")


def _output_format(path: Path, format: str | None, like: LoadedImage | None) -> str:
    if format is not None:
        fmt = _FORMAT_ALIASES.get(format.upper(), format.upper())
        if fmt not in _WRITE_FORMATS:
            raise ConfigError(f"format={format!r} is unknown; valid: {sorted(_WRITE_FORMATS)}")
        return fmt
    fmt = _READ_FORMATS.get(Image.registered_extensions().get(path.suffix.lower(), ""), "")
    if fmt in _WRITE_FORMATS:
        return fmt
    if like is not None and like.format in _WRITE_FORMATS:
        return like.format
    raise OutputError(f"{path}: cannot tell the image format from suffix {path.suffix!r}")


def _to_pil(image: np.ndarray, like: LoadedImage | None, fmt: str) -> Image.Image:
    """A fresh Pillow image (no inherited metadata), RGBA when alpha can be written back."""
    alpha = like.alpha if like is not None else None
    if alpha is not None and fmt in _ALPHA_FORMATS:
        if alpha.shape == image.shape[:2]:
            return Image.fromarray(np.dstack([image, alpha]), "RGBA")
        logger.warning("alpha %s does not match image %s; dropped", alpha.shape, image.shape)
    return Image.fromarray(np.ascontiguousarray(image), "RGB")


def _save_kwargs(fmt: str, info: dict[str, Any], keep: bool, quality: int) -> dict[str, Any]:
    """Pillow ``save`` options for ``fmt``; metadata other than ICC only when ``keep``."""
    kw: dict[str, Any] = {}
    if fmt == "JPEG":
        kw.update(quality=quality, optimize=True, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        kw.update(quality=quality, method=4)
    elif fmt == "TIFF" and not (keep and info.get("exif")):
        kw["compression"] = "tiff_lzw"  # libtiff; it cannot write the Exif/GPS sub-IFDs
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF") and info.get("icc_profile"):
        kw["icc_profile"] = info["icc_profile"]
    if keep:
        kw.update(_metadata_kwargs(fmt, info))
    return kw


def _metadata_kwargs(fmt: str, info: dict[str, Any]) -> dict[str, Any]:
    """Pillow ``save`` options that write ``info`` back where ``fmt`` can hold it."""
    kw: dict[str, Any] = {}
    exif, xmp, comment = info.get("exif"), info.get("xmp"), info.get("comment")
    if fmt in ("JPEG", "PNG", "WEBP") and exif:
        kw["exif"] = exif
    if fmt in ("JPEG", "WEBP") and xmp:
        kw["xmp"] = xmp
    if fmt in ("JPEG", "GIF") and comment:
        kw["comment"] = comment
    if fmt in ("JPEG", "PNG", "TIFF", "BMP") and info.get("dpi"):
        kw["dpi"] = info["dpi"]
    if fmt == "PNG" and (xmp or comment):
        kw["pnginfo"] = _png_text(xmp, comment)
    if fmt == "TIFF" and (exif or xmp):
        tags = Image.Exif()
        if exif:
            tags.load(exif)
        if xmp:
            tags[700] = xmp
        kw["exif"] = tags
    return kw


def _png_text(xmp: bytes | None, comment: bytes | None) -> PngImagePlugin.PngInfo:
    """PNG text chunks: XMP as the standard iTXt key, the comment as tEXt ``Comment``."""
    png = PngImagePlugin.PngInfo()
    if xmp:
        png.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
    if comment:
        png.add_text("Comment", comment.decode("utf-8", "replace"))
    return png


def _atomic_save(
    path: Path,
    pil: Image.Image,
    fmt: str,
    kwargs: dict[str, Any],
    *,
    encode: Callable[[Image.Image, int], bytes] | None = None,
) -> None:
    """Save to a temporary sibling, fsync, then ``os.replace``; never leave the temp behind.
    ``encode(pil, compress_level)`` replaces Pillow's encoder when given."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder {path.parent}: {exc}") from exc
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # mode 0o666 so the umask applies, as for any ordinarily created file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            if encode is not None:
                fh.write(encode(pil, kwargs["compress_level"]))
            else:
                pil.save(fh, format=fmt, **kwargs)
            fh.flush()
            os.fsync(fh.fileno())
        # the file's bytes are durable before the rename; the folder is not fsynced (two
        # fsyncs per file halve throughput on big runs, and a lost rename is redone)
        os.replace(tmp, path)
    except (OSError, ValueError, RuntimeError) as exc:  # what Pillow encoders raise
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write image: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: OpenCV PNG parameters for zlib's run-length strategy (faster, and smaller at level 1)
PNG_RLE = (17, 3)  # cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE (tested)


def iter_image_files(
    root: str | os.PathLike[str],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    suffixes: Collection[str] = IMAGE_SUFFIXES,
) -> Iterator[Path]:
    """Yield image files under ``root`` in sorted order, skipping hidden files and folders.

    A file is listed if its suffix (any case) is in ``suffixes`` (default: the image
    suffixes; the runner adds video suffixes). ``include``
    and ``exclude`` are :mod:`fnmatch` patterns matched against the POSIX path relative to
    ``root``, ignoring case like the suffix check (``*`` also crosses ``/``); with
    ``include`` given, a file must match one of them.
    Symlinked folders are not followed.

    Raises:
        InputError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for name in files:
            file = Path(folder, name)
            if _wanted(file.relative_to(root).as_posix(), include, exclude, suffixes):
                found.append(file)
    yield from sorted(found)


def _wanted(
    rel: str, include: Sequence[str], exclude: Sequence[str], suffixes: Collection[str]
) -> bool:
    name = rel.rsplit("/", 1)[-1]
    if name.startswith(".") or Path(name).suffix.lower() not in suffixes:
        return False
    rel = rel.lower()
    if include and not any(fnmatch.fnmatchcase(rel, pat.lower()) for pat in include):
        return False
    return not any(fnmatch.fnmatchcase(rel, pat.lower()) for pat in exclude)
