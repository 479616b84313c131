"""Datasets for training, calibration and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.errors import BuildError

Array = npt.NDArray[np.float32]

BREAST_CANCER_LABEL = (
    "probability that the tumour is benign (class 1 of scikit-learn's breast-cancer set; "
    "0 = malignant, 1 = benign)"
)


@dataclass
class Dataset:
    """Inputs by input name, and labels when there are any."""

    inputs: dict[str, Array]
    labels: npt.NDArray[np.float32] | None = None
    feature_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def rows(self, start: int, stop: int) -> dict[str, Array]:
        return {name: values[start:stop] for name, values in self.inputs.items()}


@dataclass
class Split:
    train: Dataset
    test: Dataset


def breast_cancer(seed: int = 42, test_fraction: float = 0.2, input_name: str = "features") -> Split:
    """scikit-learn's breast-cancer set (shipped with scikit-learn), stratified held-out split."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    features = data.data.astype(np.float32)
    labels = data.target.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    names = [str(name) for name in data.feature_names]
    return Split(
        train=Dataset({input_name: x_train}, y_train, names),
        test=Dataset({input_name: x_test}, y_test, names),
    )


def load_calibration(path: Path, input_specs: list[tuple[str, tuple[int | None, ...]]]) -> Dataset:
    """Read ``--calibration data.npz``: one array per model input (by name, or ``x`` for a
    single-input model) and optionally ``y`` with labels for accuracy and AUC."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BuildError(f"calibration file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"calibration file {path} is not a readable .npz ({exc})") from None
    with archive:
        keys = set(archive.files)
        inputs: dict[str, Array] = {}
        for position, (name, shape) in enumerate(input_specs):
            key = name if name in keys else ("x" if len(input_specs) == 1 and "x" in keys else None)
            if key is None:
                raise BuildError(
                    f"calibration file {path} has no array for model input {name!r} "
                    f"(arrays: {', '.join(sorted(keys)) or 'none'})"
                )
            values = np.asarray(archive[key])
            if not np.issubdtype(values.dtype, np.number):
                raise BuildError(f"calibration array {key!r} is not numeric ({values.dtype})")
            expected = shape[1:]
            actual = values.shape[1:]
            if len(actual) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, actual, strict=True)
            ):
                wanted = [e if e is not None else -1 for e in expected]
                raise BuildError(
                    f"calibration array {key!r} has rows of shape {list(actual)}, "
                    f"model input {position} ({name!r}) expects {wanted}"
                )
            if len(values) == 0:
                raise BuildError(f"calibration array {key!r} is empty")
            inputs[name] = values.astype(np.float32)
        counts = {len(v) for v in inputs.values()}
        if len(counts) != 1:
            raise BuildError(f"calibration arrays have different row counts: {sorted(counts)}")
        labels = None
        if "y" in keys:
            labels = np.asarray(archive["y"]).astype(np.float32)
            if len(labels) != counts.pop():
                raise BuildError("calibration labels 'y' do not have one entry per row")
    return Dataset(inputs, labels)
