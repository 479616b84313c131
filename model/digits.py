"""The second built-in model: a small CNN that reads handwritten digits, served from images.

Trained on scikit-learn's digits (1,797 8x8 images, values 0 to 16, light ink on a dark
background; shipped with scikit-learn, nothing downloaded) with fixed seeds and a stratified
held-out 20 % split. The model takes ``pixels`` [N, 8, 8, 1] float32 in 0..16 and answers
``probabilities`` [N, 10]. Its manifest declares ``pixels`` an image input for digits drawn
dark on light, as a person draws them on a canvas or paper: the function inverts the image,
crops it to the ink, and box-resizes it to 8x8 (see :mod:`core.images`).

The training set is doubled with each training digit as it comes back through that image
path (drawn at 64x64, encoded as PNG, decoded and fitted by :func:`core.images.decode`), so
the network sees both the set's own framing and the function's. The held-out digits never
enter training in either form.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from model.data import Dataset, Split

if TYPE_CHECKING:
    import keras

    from model.pipeline import BuildResult, EpochProgress, Step

NAME = "digits_cnn"
INPUT = "pixels"
OUTPUT = "probabilities"
DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts" / NAME
LABELS = [str(digit) for digit in range(10)]
MAX_VALUE = 16.0
IMAGE = {
    "height": 8,
    "width": 8,
    "channels": 1,
    "resize": "box",
    "invert": True,
    "fit": "ink",
    "scale": MAX_VALUE / 255.0,
    "offset": 0.0,
}
"""The manifest's image declaration of ``pixels``: dark ink on a light background, any size."""
LABEL_MEANING = "probability of each digit 0 to 9, in the order of labels.txt"
DESCRIPTION = (
    "Handwritten digit classifier (small CNN, scikit-learn's 8x8 digits). Send a digit drawn "
    "dark on a light background as a PNG, JPEG or WebP file, or an 8x8 tensor with values 0 to 16."
)
RENDER_SIZE = 64


def digits_split(seed: int = 42, test_fraction: float = 0.2) -> Split:
    """scikit-learn's digits as [N, 8, 8, 1] float32 (0..16), stratified held-out split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    pixels = data.images.astype(np.float32).reshape(-1, 8, 8, 1)
    labels = data.target.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(train=Dataset({INPUT: x_train}, y_train), test=Dataset({INPUT: x_test}, y_test))


def render(
    pixels: npt.ArrayLike, size: int = RENDER_SIZE, fmt: str = "PNG", resample: str = "nearest"
) -> bytes:
    """One 8x8 digit (0..16, light on dark) drawn dark on light at ``size`` x ``size``, encoded."""
    from PIL import Image

    values = np.asarray(pixels, dtype=np.float32).reshape(8, 8)
    gray = np.rint(255.0 - np.clip(values, 0.0, MAX_VALUE) * (255.0 / MAX_VALUE)).astype(np.uint8)
    method = getattr(Image.Resampling, resample.upper())
    image = Image.fromarray(gray, "L").resize((size, size), method)
    buffer = io.BytesIO()
    options: dict[str, Any] = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}}.get(fmt.upper(), {})
    image.save(buffer, format=fmt.upper(), **options)
    return buffer.getvalue()


def through_images(pixels: npt.NDArray[np.float32], fmt: str = "PNG", size: int = RENDER_SIZE) -> Any:
    """Each digit drawn as an image file and read back exactly as the function reads it."""
    from core.images import ImageSpec, images_to_batch

    files = [render(row, size, fmt) for row in pixels]
    return images_to_batch(files, ImageSpec.from_json(IMAGE), INPUT, np.dtype(np.float32), (8, 8, 1))


def digits_cnn() -> keras.Model:
    """Conv 16 -> conv 16 -> pool -> conv 32 -> pool -> dense 10 softmax (about 7,000 weights)."""
    import keras

    inputs = keras.Input(shape=(8, 8, 1), name=INPUT)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_16a")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_16b")(x)
    x = keras.layers.MaxPooling2D(2, name="pool_1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_32")(x)
    x = keras.layers.MaxPooling2D(2, name="pool_2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.25, name="dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name=OUTPUT)(x)
    return keras.Model(inputs, outputs, name=NAME)


def train_digits_cnn(
    train: Dataset,
    *,
    seed: int = 42,
    epochs: int = 40,
    batch_size: int = 32,
    augment: bool = True,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> keras.Model:
    """Fit :func:`digits_cnn` with fixed seeds (adam, sparse categorical cross-entropy)."""
    import keras
    import tensorflow as tf

    from model.train import _Progress

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    assert train.labels is not None
    pixels, labels = train.inputs[INPUT], np.asarray(train.labels).astype(np.int64)
    if augment:
        pixels = np.concatenate([pixels, through_images(pixels)])
        labels = np.concatenate([labels, labels])
    model = digits_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [_Progress(epochs, progress)] if progress else []
    model.fit(
        pixels, labels, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks
    )
    return model


def build_digits(
    out_dir: Path | str = DEFAULT_OUT,
    *,
    epochs: int = 40,
    seed: int = 42,
    max_accuracy_drop: float = 0.01,
    version: str = "1.0.0",
    augment: bool = True,
    step: Step = lambda _: None,
    epoch: EpochProgress | None = None,
) -> BuildResult:
    """Train, convert to the four variants, measure, select, and write ``out_dir`` atomically
    (``litefaas build --example digits``)."""
    import shutil

    from model.pipeline import ArtifactExtras, BuildOptions, convert_and_write, make_workspace
    from model.source import from_keras

    options = BuildOptions(
        out=Path(out_dir), max_accuracy_drop=max_accuracy_drop, epochs=epochs, seed=seed, version=version
    )
    out, work, staging = make_workspace(options.out)
    try:
        step("loading scikit-learn's digits")
        split = digits_split(seed=seed)
        step("training the digits CNN")
        model = train_digits_cnn(split.train, seed=seed, epochs=epochs, augment=augment, progress=epoch)
        keras_path = work / "model.keras"
        model.save(keras_path)
        source = from_keras(model, work, NAME, keras_path.stat().st_size)
        extras = ArtifactExtras(
            label_meaning=LABEL_MEANING,
            input_fields={INPUT: {"image": dict(IMAGE)}},
            metadata={
                "name": NAME,
                "version": version,
                "description": DESCRIPTION,
                "labels_file": "labels.txt",
                "labels_count": len(LABELS),
            },
            files={"labels.txt": "\n".join(LABELS) + "\n"},
        )
        return convert_and_write(source, split.train, split.test, options, staging, out, step, extras)
    finally:
        shutil.rmtree(work, ignore_errors=True)
