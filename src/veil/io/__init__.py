"""The I/O boundary of veil: files in, RGB ``uint8 (H, W, 3)`` arrays out, and back."""

from veil.io.images import (
    IMAGE_SUFFIXES,
    LoadedImage,
    iter_image_files,
    read_image,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "iter_image_files",
    "read_image",
    "write_image",
]
