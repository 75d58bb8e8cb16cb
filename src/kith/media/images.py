"""Image checks and re-encoding with Pillow. Blocking: runs in `IMAGE_POOL`, off the event loop.

An upload is judged by its content alone: Pillow may identify it only as JPEG, PNG,
GIF or WebP. Its size in pixels is read from the header and checked before a single
pixel is decoded. The image is then decoded and encoded afresh, so nothing of the
original file survives but its pixels (and colour profile): EXIF, GPS, XMP, comments
and text chunks are dropped. An EXIF orientation is applied to the pixels first, so
the picture still stands the right way up without it.

Animated GIF, WebP and PNG keep their first frame only: bounded work per upload, and
a still image where a post or an avatar expects one.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from kith.core.errors import Unprocessable, UnsupportedMediaType
from kith.media.storage import CONTENT_TYPES

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
JPEG_QUALITY = 85
WEBP_QUALITY = 85

# A decoded image takes up to 4 bytes a pixel (133 MB at 33 Mpx); a small pool bounds
# how many the process holds at once. Waiting uploads queue here, not in memory.
IMAGE_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="kith-image")

# Modes each encoder takes as they are; anything else is converted first.
_JPEG_MODES = {"L", "RGB", "CMYK"}
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}
_GIF_MODES = {"P", "L", "1"}
_WEBP_MODES = {"RGB", "RGBA"}


@dataclass(frozen=True)
class EncodedImage:
    extension: str
    content_type: str
    width: int
    height: int
    size: int


class ImageTooLarge(Unprocessable):
    code = "image_too_large"
    default_detail = "The image has too many pixels (width × height)."
    description = "The image has more pixels (width × height) than the server accepts."


class InvalidImage(Unprocessable):
    code = "invalid_image"
    default_detail = "The image is damaged or truncated and cannot be decoded."
    description = "The image is damaged or truncated and cannot be decoded."


def too_many_pixels(max_pixels: int) -> Unprocessable:
    error = ImageTooLarge(f"The image is larger than {max_pixels:,} pixels (width × height).")
    error.errors = [{"field": "body.file", "message": "too many pixels", "type": error.code}]
    return error


def unsupported() -> UnsupportedMediaType:
    return UnsupportedMediaType("The file is not a JPEG, PNG, GIF or WebP image.")


def unreadable() -> Unprocessable:
    error = InvalidImage()
    error.errors = [{"field": "body.file", "message": "cannot decode the image", "type": error.code}]
    return error


async def reencode_off_loop(source: Path, target: Path, max_pixels: int) -> EncodedImage:
    """`reencode` in the image pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(IMAGE_POOL, reencode, source, target, max_pixels)


def reencode(source: Path, target: Path, max_pixels: int) -> EncodedImage:
    """Check the image in `source` and write a clean copy of it to `target`.

    Raises 415 `unsupported_media_type` for anything but the four formats, 422
    `image_too_large` above `max_pixels`, 422 `invalid_image` when decoding fails.
    """
    try:
        image = Image.open(source, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        # Pillow's own guard (twice its 89 Mpx warning level), raised from the header.
        raise too_many_pixels(max_pixels) from None
    except (UnidentifiedImageError, ValueError, SyntaxError, OSError):
        raise unsupported() from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise too_many_pixels(max_pixels)
        if width < 1 or height < 1:
            raise unreadable()
        source_format = image.format
        try:
            image.load()  # the first frame only
            picture = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError:
            raise too_many_pixels(max_pixels) from None
        except Exception:
            raise unreadable() from None
    icc_profile = picture.info.get("icc_profile")
    transparency = picture.info.get("transparency")
    # Only what the encoders need survives; every other piece of metadata stays behind.
    picture.info = {}
    if source_format in ("JPEG", "MPO"):
        extension = "jpg"
        if picture.mode not in _JPEG_MODES:
            picture = picture.convert("RGB")
        picture.save(
            target,
            format="JPEG",
            quality=JPEG_QUALITY,
            optimize=True,
            exif=b"",
            **_icc(icc_profile),
        )
    elif source_format == "PNG":
        extension = "png"
        if picture.mode not in _PNG_MODES:
            picture = picture.convert("RGBA")
        elif transparency is not None:
            picture.info["transparency"] = transparency
        picture.save(target, format="PNG", **_icc(icc_profile))
    elif source_format == "GIF":
        extension = "gif"
        if picture.mode not in _GIF_MODES:
            picture = picture.convert("RGBA").quantize(256)
        elif transparency is not None:
            picture.info["transparency"] = transparency
        picture.save(target, format="GIF")
    else:
        extension = "webp"
        if picture.mode not in _WEBP_MODES:
            picture = picture.convert("RGBA" if _has_alpha(picture, transparency) else "RGB")
        picture.save(target, format="WEBP", quality=WEBP_QUALITY, **_icc(icc_profile))
    return EncodedImage(
        extension=extension,
        content_type=CONTENT_TYPES[extension],
        width=picture.width,
        height=picture.height,
        size=target.stat().st_size,
    )


# Real colour profiles are a few kilobytes (sRGB about 3 KB); nothing legitimate comes near.
MAX_ICC_BYTES = 1024 * 1024


def _icc(profile: object) -> dict[str, bytes]:
    """The upload's colour profile as LittleCMS writes it back, or none.

    A profile is kept only if it parses as an ICC profile, and what is stored is the parsed
    profile re-serialised: bytes that are no profile, or that ride after one, are dropped
    (they would otherwise be stored and served as they came).
    """
    if not isinstance(profile, bytes) or not profile or len(profile) > MAX_ICC_BYTES:
        return {}
    try:
        parsed = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        clean = parsed.tobytes()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return {}
    return {"icc_profile": clean} if clean else {}


def _has_alpha(picture: Image.Image, transparency: object) -> bool:
    return "A" in picture.getbands() or transparency is not None
