"""Reading the user's portrait: any path, PIL image or array -> upright RGB uint8, or a MediaError naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps

from sonic.io import MediaError

MIN_IMAGE_SIDE = 64  # smaller pictures cannot hold a detectable face; they are user mistakes
# Grey modes of more than 8 bits -> the value that means white. 16-bit PNGs open as I;16 (RGB ones are reduced to
# 8 bits by PIL's decoder, high byte); I holds 16-bit data in some PIL versions; F is float, taken as [0, 1].
FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def load_image(image: str | Path | PIL.Image.Image | np.ndarray) -> np.ndarray:
    """A path, PIL image or array -> RGB uint8 (H, W, 3).

    Files and PIL images are turned upright (EXIF orientation: phone photos are often stored sideways) and converted
    to RGB; like the official ``.convert("RGB")``, an alpha channel is dropped, not composited. Pictures of more than
    8 bits are scaled to 8, never clipped (:func:`_to_8_bit`). Arrays are taken as RGB (never BGR) and are not rotated.
    """
    if isinstance(image, str | Path):
        name, array = str(image), _read_image_file(Path(image))
    elif isinstance(image, PIL.Image.Image):
        name, array = "the input image", _upright_rgb(image, "the input image")
    elif isinstance(image, np.ndarray):
        name, array = "the input image", _array_to_rgb(image)
    else:
        raise MediaError(f"the input image: expected a path, a PIL image or a numpy array, got {type(image).__name__}")
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        height, width = array.shape[:2]
        raise MediaError(f"{name}: the image is {width}x{height}; both sides must be at least {MIN_IMAGE_SIDE} pixels")
    assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, (array.shape, array.dtype)
    return np.ascontiguousarray(array)


def _read_image_file(path: Path) -> np.ndarray:
    """Decodes the whole file now, so a truncated or corrupt file fails here with its name, not later."""
    if not path.is_file():
        raise MediaError(f"{path}: image file not found")
    try:
        with PIL.Image.open(path) as picture:
            picture.load()
            return _upright_rgb(picture, str(path))
    except MediaError:
        raise
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as error:
        raise MediaError(f"{path}: cannot be read as an image ({error})") from error


def _upright_rgb(picture: PIL.Image.Image, name: str) -> np.ndarray:
    """EXIF orientation applied, then any mode (grey, palette, RGBA, CMYK, 16-bit) converted to RGB uint8."""
    picture = PIL.ImageOps.exif_transpose(picture)
    if picture.mode in FULL_SCALE:
        picture = _to_8_bit(picture, name)
    return np.asarray(picture.convert("RGB"))


def _to_8_bit(picture: PIL.Image.Image, name: str) -> PIL.Image.Image:
    """A grey picture of more than 8 bits -> mode L, its mode's full scale mapped to 255 (rounded).

    PIL's own conversion clips at 255 instead: a 16-bit PNG (mode I;16) would turn almost white. Values outside the
    mode's range (an ``I`` picture beyond 16 bits, an ``F`` one outside [0, 1]) are refused, not guessed."""
    full_scale, values = FULL_SCALE[picture.mode], np.asarray(picture, dtype=np.float64)
    if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= full_scale):
        raise MediaError(
            f"{name}: mode {picture.mode} pixels must lie in [0, {full_scale:g}], found "
            f"{values.min():g}..{values.max():g}"
        )
    return PIL.Image.fromarray(np.round(values * (255 / full_scale)).astype(np.uint8))  # mode L


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """uint8 or [0, 1] float, (H, W) grey or (H, W, 3) RGB -> uint8 (H, W, 3); anything else is refused."""
    description = f"shape {array.shape}, dtype {array.dtype}"
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise MediaError(f"the input image: expected an (H, W, 3) RGB or (H, W) grey array, got {description}")
    if np.issubdtype(array.dtype, np.floating):
        if not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
            raise MediaError(f"the input image: float pixels must lie in [0, 1] ({description})")
        array = (array * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise MediaError(f"the input image: expected uint8 or float pixels, got {description}")
    return np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array.copy()
