"""Image loading and the conversion rules every entry point applies.

The pipeline works on H x W x 3 uint8 RGB. Conversions, stated once:

* grayscale (H x W or H x W x 1) is replicated to three channels;
* RGBA (H x W x 4) drops the alpha channel (no compositing);
* 16-bit (uint16) is scaled to 8 bits as ``round(v / 257)``, which maps
  0..65535 onto 0..255 exactly at both ends;
* float, bool, signed and other integer types are refused: their range is
  ambiguous, so the caller must convert them.
"""
import os
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError, PathError
from .files import writing


def to_rgb8(image, name="image"):
    """Return ``image`` as a C-contiguous H x W x 3 uint8 RGB array (see the module rules)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name} must be a numpy array (H x W x 3 uint8 RGB), got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"{name} must be H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{name} is empty (shape {image.shape})")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(
            f"{name} has dtype {image.dtype}; pass uint8 (or uint16, scaled by 1/257). Float images are refused "
            f"because their range is ambiguous: convert with (img * 255).round().astype(np.uint8) if they lie in [0, 1]")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def load_image(path):
    """Read an image file as H x W x 3 uint8 RGB, applying the module's conversion rules.

    ``.tif``/``.tiff`` files are read by the geo room (rasterio, the ``[geo]`` extra) with its band and
    16-bit rules (``pslg.runtime.geo.raster``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ImageError(f"image path must be a str or pathlib.Path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    if path.suffix.lower() in (".tif", ".tiff"):
        from .geo.raster import load_rgb
        return load_rgb(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise PathError(f"cannot read image file {path}: {e.strerror or e}") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageError(f"{path} is not an image OpenCV can decode (empty, truncated or unknown format)")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return to_rgb8(image, name=str(path))


def save_rgb(path, image):
    """Write an RGB (or single-channel) uint8 image, PNG or JPEG by extension, through a temporary name."""
    with writing(path) as path:
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        try:
            written = cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
        except cv2.error:
            written = False
        if not written:
            tmp.unlink(missing_ok=True)
            raise PathError(f"cannot write {path} (is '{path.suffix}' an image extension OpenCV writes?)")
        os.replace(tmp, path)
