"""Encoded images (JPEG, PNG, WebP) into a model's input tensor, as its manifest's ``image`` object says.

The manifest declares, per image input::

    "image": {"height": 8, "width": 8, "channels": 1, "resize": "box", "invert": true,
              "fit": "ink", "scale": 0.0627, "offset": 0.0}            # or "mean"/"std" per channel

Pillow is imported only when the first image arrives (a model without image inputs never loads
it). Every problem with a file is :class:`InvalidPayload` naming the row; an image whose
declared size is over the pixel limit is refused from its header, before it is decoded.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InvalidPayload, PayloadTooLarge

FORMATS = ("JPEG", "PNG", "WEBP")
RESIZE_METHODS = ("nearest", "box", "bilinear", "bicubic", "lanczos")
DEFAULT_MAX_PIXELS = 40_000_000
"""About a 7,000 x 6,000 photo: decoded as RGB that is 120 MB; anything larger is refused unopened."""
_INK_THRESHOLD = 0.2
_FIELDS = frozenset(
    {"height", "width", "channels", "resize", "invert", "fit", "scale", "offset", "mean", "std"}
)


@dataclass(frozen=True)
class ImageSpec:
    """How one model input turns an encoded image into its row."""

    height: int
    width: int
    channels: int = 3
    resize: str = "bilinear"
    invert: bool = False
    fit: str = "stretch"
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageSpec:
        """Read a manifest's ``image`` object; ``ValueError`` names what is wrong."""
        unknown = data.keys() - _FIELDS
        if unknown:
            raise ValueError(f"image: unknown field(s) {', '.join(sorted(unknown))}")
        spec = cls(
            height=int(data["height"]),
            width=int(data["width"]),
            channels=int(data.get("channels", 3)),
            resize=str(data.get("resize", "bilinear")),
            invert=bool(data.get("invert", False)),
            fit=str(data.get("fit", "stretch")),
            scale=float(data.get("scale", 1.0)),
            offset=float(data.get("offset", 0.0)),
            mean=_per_channel(data.get("mean")),
            std=_per_channel(data.get("std")),
        )
        spec.check()
        return spec

    def check(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError("image: height and width must be positive")
        if self.channels not in (1, 3):
            raise ValueError("image: channels must be 1 (grayscale) or 3 (RGB)")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"image: resize must be one of {', '.join(RESIZE_METHODS)}")
        if self.fit not in ("stretch", "ink"):
            raise ValueError('image: fit must be "stretch" or "ink"')
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise ValueError(f"image: {name} needs 1 or {self.channels} values")
        if (self.mean is None) != (self.std is None):
            raise ValueError("image: give mean and std together")
        if self.std is not None and any(value == 0 for value in self.std):
            raise ValueError("image: std must not be 0")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "resize": self.resize,
            "invert": self.invert,
            "fit": self.fit,
        }
        if self.mean is not None and self.std is not None:
            data |= {"mean": list(self.mean), "std": list(self.std)}
        else:
            data |= {"scale": self.scale, "offset": self.offset}
        return data

    def prepare(self, pixels: np.ndarray[Any, Any], dtype: np.dtype[Any], row_shape: Sequence[int]) -> Any:
        """Scale ``pixels`` (H x W x C, 0..255) to the model's range and dtype, shaped as its row."""
        values: Any = pixels.astype(np.float32)
        if self.mean is not None and self.std is not None:
            values = (values - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        else:
            values = values * np.float32(self.scale) + np.float32(self.offset)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        return values.astype(dtype).reshape(row_shape)


def _per_channel(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    items: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
    return tuple(float(item) for item in items)


def decode(data: bytes, spec: ImageSpec, where: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """One encoded image as an H x W x C uint8 array, oriented, converted, fitted and resized."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Any = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(f"{where}: {width}x{height} pixels is over the limit of {max_pixels}")
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGBA" if image.mode in ("P", "PA", "LA", "RGBA") else "RGB")
            if image.mode == "RGBA":
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image).convert("RGB")
            image = image.convert("L" if spec.channels == 1 else "RGB")
            if spec.invert:
                image = ImageOps.invert(image)
            if spec.fit == "ink":
                image = _fit_ink(image)
            method = getattr(Image.Resampling, spec.resize.upper())
            image = image.resize((spec.width, spec.height), method)
            pixels = np.asarray(image, dtype=np.uint8)
    except (PayloadTooLarge, InvalidPayload):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{where}: the image is over the limit of {max_pixels} pixels") from None
    except UnidentifiedImageError:
        raise InvalidPayload(f"{where}: not a JPEG, PNG or WebP image") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError):
        raise InvalidPayload(f"{where}: the image file is corrupt or truncated") from None
    return pixels.reshape(spec.height, spec.width, spec.channels)


def _fit_ink(image: Any) -> Any:
    """Crop to the ink's bounding box (ink is bright once inverted), centred on a square with a margin."""
    from PIL import Image

    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(gray > _INK_THRESHOLD)
    if rows.size == 0:
        return image
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = math.ceil(max(bottom - top, right - left) * 1.15)
    square = Image.new(image.mode, (side, side), 0)
    square.paste(
        image.crop((left, top, right, bottom)), ((side - (right - left)) // 2, (side - (bottom - top)) // 2)
    )
    return square


def images_to_batch(
    files: Sequence[bytes], spec: ImageSpec, name: str, dtype: np.dtype[Any], row_shape: Sequence[int]
) -> Any:
    """A batch tensor of the model input ``name`` from encoded files, in order."""
    rows = [
        spec.prepare(decode(data, spec, f"{name}[{index}]"), dtype, row_shape)
        for index, data in enumerate(files)
    ]
    return np.stack(rows)


def image_specs(inputs: Sequence[Mapping[str, Any]]) -> dict[str, ImageSpec]:
    """The image declarations of a manifest's ``inputs`` entries, by input name."""
    return {str(entry["name"]): ImageSpec.from_json(entry["image"]) for entry in inputs if entry.get("image")}
