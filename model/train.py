"""The seed's MLP on the breast-cancer set, with standardization inside the model."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from model.data import Dataset

ProgressCallback = Callable[[int, int, dict[str, float]], None]


def seed_mlp(train: Dataset, input_name: str = "features") -> keras.Model:
    """Dense 128 relu -> Dense 64 relu -> Dense 1 sigmoid, after a Normalization fitted on ``train``."""
    features = train.inputs[input_name]
    standardize = keras.layers.Normalization(name="standardize")
    standardize.adapt(features)
    inputs = keras.Input(shape=(features.shape[1],), name=input_name)
    hidden = keras.layers.Dense(128, activation="relu", name="dense_128")(standardize(inputs))
    hidden = keras.layers.Dense(64, activation="relu", name="dense_64")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    return keras.Model(inputs, outputs, name="breast_cancer_mlp")


class _Progress(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, epochs: int, report: ProgressCallback) -> None:
        super().__init__()
        self.epochs = epochs
        self.report = report

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.report(epoch + 1, self.epochs, dict(logs or {}))


def train_seed_mlp(
    train: Dataset,
    *,
    seed: int = 42,
    epochs: int = 60,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
) -> keras.Model:
    """Build and fit the seed MLP with fixed seeds (adam, binary cross-entropy)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = seed_mlp(train)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    assert train.labels is not None
    callbacks = [_Progress(epochs, progress)] if progress else []
    model.fit(
        train.inputs["features"],
        np.asarray(train.labels),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return model
