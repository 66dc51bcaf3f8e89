"""Tests for veil.io.images: every input is built here with Pillow/numpy in tmp_path."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin, PngImagePlugin

import veil.io
from veil.errors import ConfigError, InputError, OutputError
from veil.io import IMAGE_SUFFIXES, LoadedImage, iter_image_files, read_image, write_image

SECRET_COMMENT = b"VEIL-SECRET-COMMENT"
SECRET_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">VEIL-SECRET-XMP</x:xmpmeta>'
GPS_LATITUDE = (51.0, 30.0, 12.0)


# ---------------------------------------------------------------- factories


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth RGB uint8 (h, w, 3) image that survives lossy codecs recognisably."""
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256]).astype(
        np.uint8
    )


def save(path: Path, im: Image.Image, fmt: str | None = None, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **kw)
    return path


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "VeilCam"  # Make
    exif.get_ifd(0x8825).update({1: "N", 2: GPS_LATITUDE})
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


def with_metadata(path: Path, fmt: str) -> Path:
    """An image carrying GPS EXIF, XMP and (where the format has one) a comment."""
    im = Image.fromarray(gradient())
    exif = exif_with_gps()
    if fmt == "JPEG":
        return save(path, im, fmt, exif=exif, xmp=SECRET_XMP, comment=SECRET_COMMENT)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", SECRET_XMP.decode())
        info.add_text("Comment", SECRET_COMMENT.decode())
        return save(path, im, fmt, exif=exif, pnginfo=info)
    if fmt == "WEBP":
        return save(path, im, fmt, exif=exif, xmp=SECRET_XMP, lossless=True)
    exif[700] = SECRET_XMP
    return save(path, im, fmt, exif=exif.tobytes())  # TIFF writes sub-IFDs only from bytes


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR is patched to claim ``width x height`` (CRC fixed)."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 4  # signature, then the IHDR length field
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def bmp_claiming(path: Path, width: int, height: int) -> Path:
    """A BMP header (no pixels) claiming ``width x height`` at 24 bits per pixel."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + info + bytes(16))
    return path


def truncated(path: Path, fmt: str) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, fmt)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- public names


def test_public_names_are_exported() -> None:
    assert set(veil.io.__all__) >= {
        "IMAGE_SUFFIXES",
        "LoadedImage",
        "iter_image_files",
        "read_image",
        "write_image",
    }
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"} <= IMAGE_SUFFIXES


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("suffix", "fmt", "tolerance"),
    [
        (".png", "PNG", 0),
        (".tif", "TIFF", 0),
        (".bmp", "BMP", 0),
        (".webp", "WEBP", 6),
        (".jpg", "JPEG", 6),
    ],
)
def test_round_trip_per_format(tmp_path: Path, suffix: str, fmt: str, tolerance: int) -> None:
    src = save(tmp_path / f"in{suffix}", Image.fromarray(gradient()), fmt, quality=95)
    loaded = read_image(src)
    assert loaded.format == fmt and loaded.image.dtype == np.uint8
    assert loaded.image.shape == (24, 32, 3) and loaded.alpha is None
    write_image(tmp_path / f"out{suffix}", loaded.image, like=loaded)
    again = read_image(tmp_path / f"out{suffix}")
    assert again.format == fmt
    diff = np.abs(again.image.astype(int) - gradient().astype(int))
    assert diff.mean() <= tolerance


def test_sha256_and_source_mode(tmp_path: Path) -> None:
    import hashlib

    src = save(tmp_path / "a.png", Image.fromarray(gradient()[..., 0]))
    loaded = read_image(src)
    assert loaded.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert loaded.source_mode == "L"
    assert np.array_equal(loaded.image[..., 0], loaded.image[..., 2])


def test_gif_reads_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    src = save(tmp_path / "anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    loaded = read_image(src)
    assert loaded.format == "GIF"
    assert tuple(loaded.image[4, 4]) == (255, 0, 0)


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red as stored
    src = save(tmp_path / "rot.jpg", Image.fromarray(pixels), exif=exif_with_gps(orientation=6))
    loaded = read_image(src)
    assert loaded.image.shape == (40, 20, 3)  # turned 90 degrees clockwise
    assert loaded.image[5, 10, 0] > 200 and loaded.image[35, 10, 0] < 50  # red now on top
    kept = Image.Exif()
    kept.load(loaded.info["exif"])
    assert kept[0x0112] == 1


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    src = save(tmp_path / "deep.png", Image.fromarray(grey))
    loaded = read_image(src)
    assert loaded.image[0, :, 0].tolist() == [0, 128, 255]
    assert loaded.source_mode.startswith("I")


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    src = save(tmp_path / "print.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    loaded = read_image(src)
    assert loaded.source_mode == "CMYK" and loaded.image.shape == (16, 16, 3)
    r, g, b = loaded.image[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 4, 8))
    src = save(tmp_path / "pal.png", im, transparency=0)
    loaded = read_image(src)
    assert loaded.alpha is not None and loaded.alpha.shape == (8, 8)
    assert loaded.alpha[:, :4].min() == 255 and loaded.alpha[:, 4:].max() == 0
    assert tuple(loaded.image[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize(
    ("mode", "value", "expected_rgb", "has_alpha"),
    [
        ("1", 1, (255, 255, 255), False),
        ("L", 100, (100, 100, 100), False),
        ("LA", (100, 50), (100, 100, 100), True),
        ("RGBA", (10, 20, 30, 40), (10, 20, 30), True),
    ],
)
def test_modes_convert_to_rgb(
    tmp_path: Path, mode: str, value: object, expected_rgb: tuple, has_alpha: bool
) -> None:
    src = save(tmp_path / f"{mode}.png", Image.new(mode, (4, 4), value))  # type: ignore[arg-type]
    loaded = read_image(src)
    assert tuple(loaded.image[1, 1]) == expected_rgb
    assert (loaded.alpha is not None) == has_alpha


def test_unicode_and_spaces_in_path_round_trip(tmp_path: Path) -> None:
    src = save(tmp_path / "fötö 写真 dir" / "my face ü.png", Image.fromarray(gradient()))
    loaded = read_image(src)
    out = tmp_path / "ausgabe ordner é" / "ergebnis ß 名前.png"
    write_image(out, loaded.image, like=loaded)
    assert np.array_equal(read_image(out).image, gradient())


# ---------------------------------------------------------------- bad inputs


def _missing(p: Path) -> Path:
    return p


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _text(p: Path) -> Path:
    p.write_text("this is not a picture\n" * 20)
    return p


def _ppm(p: Path) -> Path:
    return save(p, Image.new("RGB", (4, 4)), "PPM")


def _garbled_png(p: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(gradient()).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:80] = bytes(20)  # breaks the IDAT checksum
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("missing photo.jpg", _missing, "not found"),
        ("empty.jpg", _empty, "empty"),
        ("cut.jpg", lambda p: truncated(p, "JPEG"), "truncated"),
        ("cut.png", lambda p: truncated(p, "PNG"), "truncated"),
        ("garbled.png", _garbled_png, "corrupt"),
        ("notes.jpg", _text, "not an image"),
        ("portable.png", _ppm, "unsupported"),
        ("huge.png", lambda p: png_claiming(p, 50_000, 50_000), "too large"),
        ("huge.bmp", lambda p: bmp_claiming(p, 50_000, 50_000), "too large"),
    ],
)
def test_bad_inputs_raise_input_error_naming_the_file(
    tmp_path: Path, name: str, make: object, problem: str
) -> None:
    path = make(tmp_path / name)  # type: ignore[operator]
    with pytest.raises(InputError, match=problem) as info:
        read_image(path)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_truncated_images_flag_stays_off(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_image(truncated(tmp_path / "cut.jpg", "JPEG"))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_max_pixels_is_checked_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = png_claiming(tmp_path / "big.png", 5_000, 5_000)  # under Pillow's own limit

    def no_decode(self: Image.Image) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(
        InputError, match=r"big\.png: image is too large: 5000 x 5000 = 25,000,000 pixels"
    ):
        read_image(src, max_pixels=1_000_000)


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_metadata_stripped_by_default_kept_on_request(tmp_path: Path, fmt: str) -> None:
    loaded = read_image(with_metadata(tmp_path / f"in.{fmt.lower()}", fmt))
    assert "exif" in loaded.info and loaded.info["xmp"] == SECRET_XMP

    stripped = tmp_path / f"stripped.{fmt.lower()}"
    write_image(stripped, loaded.image, like=loaded)
    data = stripped.read_bytes()
    assert b"VEIL-SECRET" not in data and b"VeilCam" not in data
    with Image.open(stripped) as im:
        assert not im.getexif().get_ifd(0x8825)

    kept = tmp_path / f"kept.{fmt.lower()}"
    write_image(kept, loaded.image, like=loaded, keep_metadata=True)
    assert b"VEIL-SECRET-XMP" in kept.read_bytes()
    with Image.open(kept) as im:
        assert im.getexif().get_ifd(0x8825)[1] == "N"
    if fmt in ("JPEG", "PNG"):
        assert read_image(kept).info["comment"] == SECRET_COMMENT


def test_icc_profile_is_kept_by_default(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    loaded = read_image(save(tmp_path / "in.jpg", Image.fromarray(gradient()), icc_profile=srgb))
    write_image(tmp_path / "out.jpg", loaded.image, like=loaded)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.info.get("icc_profile") == srgb


def test_jpeg_uses_444_subsampling_at_high_quality(tmp_path: Path) -> None:
    write_image(tmp_path / "hi.jpg", gradient(), jpeg_quality=95)
    write_image(tmp_path / "lo.jpg", gradient(), jpeg_quality=80)
    with Image.open(tmp_path / "hi.jpg") as hi, Image.open(tmp_path / "lo.jpg") as lo:
        assert JpegImagePlugin.get_sampling(hi) == 0
        assert JpegImagePlugin.get_sampling(lo) == 2


# ---------------------------------------------------------------- writing


def test_alpha_is_written_back_where_supported(tmp_path: Path) -> None:
    rgba = np.dstack([gradient(), np.full((24, 32), 77, np.uint8)])
    loaded = read_image(save(tmp_path / "in.png", Image.fromarray(rgba, "RGBA")))
    write_image(tmp_path / "out.png", loaded.image, like=loaded)
    write_image(tmp_path / "out.jpg", loaded.image, like=loaded)  # no alpha in JPEG
    assert np.array_equal(read_image(tmp_path / "out.png").alpha, loaded.alpha)
    assert read_image(tmp_path / "out.jpg").alpha is None


@pytest.mark.parametrize(
    ("name", "fmt", "like_fmt", "expected"),
    [
        ("a.png", None, None, "PNG"),
        ("a.JPG", None, None, "JPEG"),
        ("a.png", "tif", None, "TIFF"),
        ("a.webp", None, "JPEG", "WEBP"),
        ("a.out", None, "JPEG", "JPEG"),
    ],
)
def test_output_format_choice(
    tmp_path: Path, name: str, fmt: str | None, like_fmt: str | None, expected: str
) -> None:
    like = None
    if like_fmt:
        like = LoadedImage(path=tmp_path / "src.jpg", image=gradient(), format=like_fmt)
    write_image(tmp_path / name, gradient(), like=like, format=fmt)
    with Image.open(tmp_path / name) as im:
        assert im.format == expected


@pytest.mark.parametrize(
    ("name", "kwargs", "error"),
    [
        ("a.xyz", {}, OutputError),
        ("a.png", {"format": "heic"}, ConfigError),
        ("a.jpg", {"jpeg_quality": 0}, ConfigError),
    ],
)
def test_bad_output_options(tmp_path: Path, name: str, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        write_image(tmp_path / name, gradient(), **kwargs)
    assert not (tmp_path / name).exists()


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "out.png"
    write_image(out, gradient())
    assert np.array_equal(read_image(out).image, gradient())


def test_read_only_folder_gives_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running with privileges that ignore folder permissions (root)")
        with pytest.raises(OutputError, match="locked"):
            write_image(folder / "out.png", gradient())
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_permission_denied_gives_output_error_even_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same path as the read-only folder, but the denial is simulated so root sees it too."""
    import veil.io.images as images

    def denied(path: object, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images.os, "open", denied)
    with pytest.raises(OutputError, match=r"out\.png.*Permission denied"):
        write_image(tmp_path / "out.png", gradient())
    assert list(tmp_path.iterdir()) == []


def test_parent_that_is_a_file_gives_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="blocker"):
        write_image(blocker / "out.png", gradient())


@pytest.mark.parametrize("spelling", ["same", "dotdot"])
def test_refuses_to_overwrite_input(tmp_path: Path, spelling: str) -> None:
    src = save(tmp_path / "sub" / "in.png", Image.fromarray(gradient()))
    before = src.read_bytes()
    loaded = read_image(src)
    target = src if spelling == "same" else tmp_path / "sub" / ".." / "sub" / "in.png"
    with pytest.raises(OutputError, match=r"in\.png"):
        write_image(target, np.zeros_like(loaded.image), like=loaded)
    assert src.read_bytes() == before


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken.png"
    target.mkdir()  # os.replace cannot put a file over a folder: fails after encoding
    with pytest.raises(OutputError, match=r"taken\.png"):
        write_image(target, gradient())
    assert temp_files(tmp_path) == []


def test_encoder_failure_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="disk full"):
        write_image(tmp_path / "out.jpg", gradient())
    assert list(tmp_path.iterdir()) == []


def test_fast_png_encoder_failure_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    monkeypatch.setattr(cv2, "imencode", lambda *a: (False, None))
    with pytest.raises(OutputError, match="could not encode"):
        write_image(tmp_path / "out.png", gradient())
    assert list(tmp_path.iterdir()) == []


def test_rejects_non_rgb_arrays(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="uint8"):
        write_image(tmp_path / "a.png", gradient().astype(np.float32))


# ---------------------------------------------------------------- listing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    names = [
        "a.JPG",
        "b.png",
        "notes.txt",
        ".hidden.jpg",
        ".git/x.png",
        "sub/c.webp",
        "sub/deep/d.tif",
        "raw/e.gif",
        "raw/f.jpeg",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["a.JPG", "b.png", "raw/e.gif", "raw/f.jpeg", "sub/c.webp", "sub/deep/d.tif"]),
        ({"recursive": False}, ["a.JPG", "b.png"]),
        ({"include": ["sub/*"]}, ["sub/c.webp", "sub/deep/d.tif"]),
        ({"exclude": ["raw/*", "*.png"]}, ["a.JPG", "sub/c.webp", "sub/deep/d.tif"]),
        ({"include": ["*.jp*g"], "exclude": ["raw/*"]}, ["a.JPG"]),
    ],
)
def test_iter_image_files(tree: Path, kwargs: dict, expected: list[str]) -> None:
    found = [p.relative_to(tree).as_posix() for p in iter_image_files(tree, **kwargs)]
    assert found == expected


def test_iter_image_files_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere"):
        list(iter_image_files(tmp_path / "nowhere"))


def test_png_compression_changes_size_never_pixels(tmp_path: Path) -> None:
    from factories import face_on_canvas

    image, _ = face_on_canvas(canvas=(200, 260))
    image[100:] = 90  # a flat half, which compresses better at higher levels
    sizes = {}
    for level in (0, 1, 9):
        path = tmp_path / f"level{level}.png"
        write_image(path, image, png_compression=level)
        np.testing.assert_array_equal(read_image(path).image, image)
        sizes[level] = path.stat().st_size
    assert sizes[0] > sizes[1] > sizes[9]
    with pytest.raises(ConfigError, match="png_compression=10"):
        write_image(tmp_path / "bad.png", image, png_compression=10)
    assert not (tmp_path / "bad.png").exists()


def test_png_rle_constants_are_opencvs() -> None:
    import cv2

    from veil.io.images import PNG_RLE

    assert PNG_RLE == (cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_fast_png_path_round_trips_exactly(tmp_path: Path, mode: str) -> None:
    """PNGs without metadata are encoded by OpenCV (run-length strategy): the pixels,
    alpha included, read back exactly."""
    from veil.io.images import read_image, write_image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), np.uint8)
    src = tmp_path / "src.png"
    Image.fromarray(
        np.dstack([rgb, rng.integers(0, 256, (37, 53), np.uint8)]) if mode == "RGBA" else rgb
    ).save(src)
    loaded = read_image(src)
    out = tmp_path / "out.png"
    write_image(out, rgb, like=loaded)
    with Image.open(out) as back:
        assert back.mode == mode
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), rgb)
        if mode == "RGBA":
            with Image.open(src) as orig:
                np.testing.assert_array_equal(np.asarray(back)[..., 3], np.asarray(orig)[..., 3])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "F", "I;16"])
def test_large_images_are_converted_band_by_band_exactly(tmp_path: Path, mode: str) -> None:
    """Images taller than one conversion band (about 4 megapixels) come out exactly as a
    whole-image conversion would give them, with no row missing or repeated."""
    rng = np.random.default_rng(3)
    h, w = 2600, 2048  # 2048 rows per band: two bands, the second partial
    if mode in ("RGB", "RGBA"):
        pixels = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
        expected = pixels[..., :3]
    elif mode == "F":
        pixels = rng.uniform(-20, 300, (h, w)).astype(np.float32)
        grey = np.clip(np.rint(pixels.astype(np.float64)), 0, 255).astype(np.uint8)
        expected = np.repeat(grey[..., None], 3, axis=2)
    else:
        pixels = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        grey = np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8)
        expected = np.repeat(grey[..., None], 3, axis=2)
    im = Image.fromarray(pixels)
    assert im.mode == mode
    path = save(tmp_path / "big.tif", im, "TIFF")
    loaded = read_image(path)
    assert loaded.image.shape == (h, w, 3) and loaded.image.dtype == np.uint8
    np.testing.assert_array_equal(loaded.image, expected)
    if mode == "RGBA":
        assert loaded.alpha is not None
        np.testing.assert_array_equal(loaded.alpha, pixels[..., 3])
