"""Version 1's rows into arrays: the fast conversion of a flat input answers as the checks do."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import validate
from core.engine import TensorSpec
from core.errors import LitefaasError
from core.validate import inputs_to_arrays, json_has_no_literals

SPECS = [TensorSpec("x", (None, 3), dtype) for dtype in ("float32", "float16", "float64")]
values = st.one_of(
    st.floats(width=64, allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([3.4e38, -3.5e38, 65504.0, 65520.0, 1.7e308, None]),
    st.lists(st.floats(min_value=-1, max_value=1), max_size=2),
    st.just({}),
)
batches = st.lists(st.lists(values, min_size=2, max_size=4), min_size=1, max_size=3)


def converted(spec: TensorSpec, rows: object) -> object:
    try:
        array = inputs_to_arrays(rows, [spec], 8, no_literals=True)[spec.name]
    except LitefaasError as exc:
        return type(exc), exc.message
    return array.dtype, array.shape, array.tobytes()


@given(st.sampled_from(SPECS), batches)
def test_the_fast_conversion_gives_the_array_or_the_error_the_checks_give(spec, rows):
    text = json.dumps(rows).encode()
    if not json_has_no_literals(text, strings=0):
        return
    fast = converted(spec, rows)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate, "_flat_rows", lambda *_: None)
        slow = converted(spec, rows)
    assert fast == slow


def test_a_value_past_the_inputs_range_is_refused_though_the_row_sums_within_it():
    spec = SPECS[0]
    with pytest.raises(LitefaasError, match="finite numbers within the input's range"):
        inputs_to_arrays([[3.5e38, -3.5e38, 0.0]], [spec], 8, no_literals=True)
    ok = inputs_to_arrays([[3.4e38, 3.4e38, 0.0]], [spec], 8, no_literals=True)["x"]
    assert ok.dtype == np.float32 and np.isfinite(ok).all()
