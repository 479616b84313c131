"""Encoded images into model rows: formats, orientation, scaling, and files that must be refused."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.engine import TensorSpec
from core.errors import InvalidPayload, PayloadTooLarge
from core.images import ImageSpec, decode, image_specs, images_to_batch
from core.tensors import frame_tensors, model_inputs, split_frame

GRAY = ImageSpec(height=8, width=8, channels=1, resize="box", scale=1 / 255)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(size=(16, 16), mode="L") -> Image.Image:
    values = np.add.outer(np.arange(size[1]), np.arange(size[0])).astype(np.uint8) * 7
    image = Image.fromarray(values, "L")
    return image.convert(mode)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_every_format_decodes_to_the_same_pixels(fmt):
    """PNG and lossless WebP are exact; JPEG within its loss."""
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    pixels = decode(encoded(gradient(), fmt, **options), GRAY, "x[0]")
    reference = decode(encoded(gradient(), "PNG"), GRAY, "x[0]")
    assert pixels.shape == (8, 8, 1) and pixels.dtype == np.uint8
    tolerance = 4 if fmt == "JPEG" else 0
    assert np.abs(pixels.astype(int) - reference.astype(int)).max() <= tolerance


def test_exif_orientation_is_applied():
    # GIVEN a tall image saved sideways with EXIF orientation 6 (rotate 90° clockwise to view)
    tall = Image.new("L", (4, 8), 0)
    tall.paste(255, (0, 0, 4, 2))  # the top rows are white
    sideways = tall.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(sideways, "JPEG", exif=exif, quality=100)
    # WHEN it is decoded THEN it stands upright: white on top
    pixels = decode(data, ImageSpec(height=8, width=4, channels=1, resize="nearest"), "x[0]")[:, :, 0]
    assert pixels[0].mean() > 200 and pixels[-1].mean() < 50


def test_transparency_is_composited_on_white():
    """Transparent pixels become white."""
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    pixels = decode(encoded(clear, "PNG"), ImageSpec(height=4, width=4, channels=3), "x[0]")
    assert (pixels == 255).all()


def test_invert_fit_and_scale_make_a_drawn_digit_look_like_the_training_data():
    # GIVEN a small dark stroke on a large white canvas
    canvas = Image.new("L", (280, 280), 255)
    canvas.paste(0, (130, 60, 150, 220))
    spec = ImageSpec(height=8, width=8, channels=1, resize="box", invert=True, fit="ink", scale=16 / 255)
    # WHEN it is prepared for a light-on-dark 8x8 model
    row = spec.prepare(decode(encoded(canvas, "PNG"), spec, "x[0]"), np.dtype("float32"), (8, 8, 1))
    # THEN the stroke fills the frame's height, bright on 0
    assert row.max() > 4 and row.min() == 0
    assert (row[:, :, 0].max(axis=1) > 4).sum() >= 6


def test_mean_std_and_integer_models():
    """Mean and std normalise float inputs; a uint8 model gets uint8 pixels."""
    spec = ImageSpec(height=2, width=2, channels=3, mean=(127.5,), std=(127.5,))
    pixels = np.full((2, 2, 3), 255, np.uint8)
    assert np.allclose(spec.prepare(pixels, np.dtype("float32"), (2, 2, 3)), 1.0)
    as_uint8 = ImageSpec(height=2, width=2, channels=3)
    assert as_uint8.prepare(pixels, np.dtype("uint8"), (2, 2, 3)).dtype == np.uint8


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (with a valid CRC) and no real data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_from_its_header():
    """An image whose header declares too many pixels is PayloadTooLarge, naming the row and the limit."""
    with pytest.raises(PayloadTooLarge, match=r"x\[3\]: .*over the limit"):
        decode(_png_claiming(100_000, 100_000), GRAY, "x[3]")
    with pytest.raises(PayloadTooLarge, match=r"8000x8000 pixels is over the limit of 40000000"):
        decode(_png_claiming(8_000, 8_000), GRAY, "x[3]")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        encoded(gradient(), "PNG")[:45],
        encoded(gradient(), "GIF"),
        encoded(gradient(), "BMP"),
    ],
)
def test_corrupt_and_unsupported_files_name_the_row(data):
    """A corrupt, truncated or unsupported file is InvalidPayload naming its row."""
    with pytest.raises(InvalidPayload, match=r"x\[2\]"):
        decode(data, GRAY, "x[2]")


def test_manifest_declarations_are_checked():
    """A valid image declaration loads; a zero size, unsupported channels or an unknown field is a ValueError."""
    assert image_specs([{"name": "a", "image": {"height": 8, "width": 8, "channels": 1}}])["a"].channels == 1
    for bad in (
        {"height": 0, "width": 8},
        {"height": 8, "width": 8, "channels": 2},
        {"height": 8, "width": 8, "x": 1},
    ):
        with pytest.raises(ValueError, match="image"):
            ImageSpec.from_json(bad)


def test_bytes_inputs_become_the_models_tensor():
    """Files sent as BYTES give the batch that the same images sent as a tensor give."""
    spec = TensorSpec("pixels", (None, 8, 8, 1), "float32")
    files = [encoded(gradient(), "PNG"), encoded(gradient((20, 12)), "WEBP", lossless=True)]
    header, payload = split_frame(frame_tensors({}, "inputs", {"pixels": files}))
    arrays = model_inputs(header["inputs"], payload, (spec,), 8, {"pixels": GRAY})
    expected = images_to_batch(files, GRAY, "pixels", np.dtype("float32"), (8, 8, 1))
    assert arrays["pixels"].shape == (2, 8, 8, 1) and np.array_equal(arrays["pixels"], expected)
    header, payload = split_frame(frame_tensors({}, "inputs", {"pixels": expected}))
    assert np.array_equal(
        model_inputs(header["inputs"], payload, (spec,), 8, {"pixels": GRAY})["pixels"], expected
    )


def test_bytes_are_refused_where_the_input_is_not_an_image():
    """BYTES sent to an input that is not an image is InvalidPayload naming the expected datatype."""
    spec = TensorSpec("pixels", (None, 8, 8, 1), "float32")
    header, payload = split_frame(frame_tensors({}, "inputs", {"pixels": [b"x"]}))
    with pytest.raises(InvalidPayload, match="takes FP32"):
        model_inputs(header["inputs"], payload, (spec,), 8)
