"""Version 2's framed message: what a well-formed frame reads as, and that every malformed one is a 422."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import tensors
from core.engine import TensorSpec
from core.errors import InvalidPayload, LitefaasError, PayloadTooLarge
from core.tensors import (
    DATATYPES,
    datatype_of,
    frame_tensors,
    join_frame,
    model_inputs,
    read_tensors,
    split_frame,
    wanted_outputs,
)

SPECS = (TensorSpec("image", (None, 2, 3), "float32"), TensorSpec("mask", (None, 2), "uint8"))


def frame(header, *parts: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack(">I", len(encoded)) + encoded + b"".join(parts)


def inputs_header(image_shape=(1, 2, 3), mask_shape=(1, 2), image_type="FP32", mask_type="UINT8"):
    return [
        {"name": "image", "datatype": image_type, "shape": list(image_shape)},
        {"name": "mask", "datatype": mask_type, "shape": list(mask_shape)},
    ]


def read(message: bytes, max_batch: int = 8):
    header, payload = split_frame(message)
    return model_inputs(header["inputs"], payload, SPECS, max_batch)


def test_every_datatype_round_trips():
    """Each datatype's tensor comes back bit for bit, little-endian, C order."""
    rng = np.random.default_rng(0)
    tensors = {
        name: (rng.integers(0, 2, (2, 3)) if name == "BOOL" else rng.integers(0, 100, (2, 3))).astype(dtype)
        for name, dtype in DATATYPES.items()
    }
    header, payload = split_frame(frame_tensors({"model": {}}, "outputs", tensors))
    decoded = read_tensors(header, "outputs", payload)
    for name, array in tensors.items():
        assert decoded[name].dtype == array.dtype and np.array_equal(decoded[name], array)
        assert [entry["datatype"] for entry in header["outputs"] if entry["name"] == name] == [name]


def test_big_endian_arrays_are_sent_little_endian():
    """A big-endian array is framed as its little-endian bytes, with the plain datatype name."""
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    _, payload = split_frame(frame_tensors({}, "outputs", {"x": array}))
    assert bytes(payload) == array.astype("<f4").tobytes()
    assert datatype_of(">f4") == "FP32"


def test_bytes_tensors_are_length_prefixed():
    """A BYTES tensor is framed as 4-byte little-endian lengths, each followed by its bytes, and reads back."""
    message = frame_tensors({}, "inputs", {"files": [b"abc", b""]})
    header, payload = split_frame(message)
    assert header["inputs"] == [{"name": "files", "datatype": "BYTES", "shape": [2]}]
    assert bytes(payload) == b"\x03\x00\x00\x00abc\x00\x00\x00\x00"
    assert read_tensors(header, "inputs", payload)["files"] == [b"abc", b""]


def test_a_request_reads_in_place_against_the_model():
    """Well-formed inputs read as views of the received buffer, equal to what was sent."""
    image = np.arange(12, dtype="<f4").reshape(2, 2, 3)
    mask = np.array([[1, 2], [3, 4]], dtype="u1")
    arrays = read(frame({"inputs": inputs_header((2, 2, 3), (2, 2))}, image.tobytes(), mask.tobytes()))
    assert np.array_equal(arrays["image"], image) and np.array_equal(arrays["mask"], mask)
    assert not arrays["image"].flags.owndata  # a view of the received buffer, not a copy


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (b"\x00\x00", "shorter than its 4-byte header length"),
        (b"\x00\x00\x00\x09{}", "runs past the end"),
        (b"\x00\x00\x00\x02[]", "not a UTF-8 JSON object"),
        (b"\x00\x00\x00\x03{\xff}", "not a UTF-8 JSON object"),
        (frame({"inputs": inputs_header(image_type="FP64")}, bytes(48), bytes(2)), "datatype FP64"),
        (frame({"inputs": inputs_header((1, 3, 2))}, bytes(24), bytes(2)), "does not match [N, 2, 3]"),
        (frame({"inputs": inputs_header((1, 2))}, bytes(8), bytes(2)), "expected 3"),
        (frame({"inputs": inputs_header((0, 2, 3), (0, 2))}), "the batch is empty"),
        (frame({"inputs": inputs_header((1, 2, 3), (2, 2))}, bytes(24), bytes(4)), "batch 2"),
        (frame({"inputs": inputs_header()}, bytes(24), bytes(1)), "fewer left"),
        (frame({"inputs": inputs_header()}, bytes(24), bytes(3)), "1 bytes are left over"),
        (frame({"inputs": inputs_header()[:1]}, bytes(24)), "missing input(s): mask"),
        (frame({"inputs": [*inputs_header(), inputs_header()[1]]}, bytes(24), bytes(4)), "given twice"),
        (
            frame({"inputs": [{"name": "other", "datatype": "FP32", "shape": [1]}]}, bytes(4)),
            "no input 'other'",
        ),
        (frame({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 2, 3], "x": 1}]}), "exactly"),
        (frame({"inputs": [{"name": "image", "datatype": "FP99", "shape": [1, 2, 3]}]}), "unknown datatype"),
        (frame({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, -2, 3]}]}), "non-negative"),
        (frame({"inputs": [{"name": "image", "datatype": "FP32", "shape": [True, 2, 3]}]}), "non-negative"),
        (frame({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}]}, b"\x09\0\0\0"), "BYTES"),
        (frame({"inputs": "image"}), "must be a list"),
    ],
)
def test_malformed_frames_are_invalid_payload(message, says):
    """Each malformed frame is one InvalidPayload whose message names the fault."""
    with pytest.raises(InvalidPayload) as raised:
        read(message)
    assert says in raised.value.message


def test_a_huge_declared_shape_is_refused_before_anything_is_allocated():
    """A shape whose product overflows 64 bits is only compared with the bytes present."""
    huge = [1, 2**62, 2**62]
    spec = (TensorSpec("image", (None, None, None), "float32"),)
    header, payload = split_frame(frame({"inputs": [{"name": "image", "datatype": "FP32", "shape": huge}]}))
    with pytest.raises(InvalidPayload, match="fewer left"):
        model_inputs(header["inputs"], payload, spec, 8)


def test_a_batch_over_the_limit_is_payload_too_large():
    """A batch larger than max_batch is PayloadTooLarge."""
    with pytest.raises(PayloadTooLarge):
        read(frame({"inputs": inputs_header((9, 2, 3), (9, 2))}, bytes(9 * 24), bytes(18)))


def test_outputs_are_chosen_by_name_in_the_order_asked():
    """Outputs default to the model's order, follow the order asked, and a bad selection is InvalidPayload."""
    specs = (TensorSpec("a", (None, 1), "float32"), TensorSpec("b", (None, 1), "float32"))
    assert wanted_outputs(None, specs) == ["a", "b"]
    assert wanted_outputs(["b", "a"], specs) == ["b", "a"]
    for bad in (["c"], [], ["a", "a"], "a", [1]):
        with pytest.raises(InvalidPayload):
            wanted_outputs(bad, specs)


def test_join_frame_puts_the_header_length_first():
    """A frame is the header's length as 4 big-endian bytes, the compact JSON header, then the parts."""
    assert join_frame({"a": 1}, [b"xy"]) == b'\x00\x00\x00\x07{"a":1}xy'


@given(st.binary(max_size=300))
def test_any_bytes_are_either_a_request_or_invalid_payload(data):
    """Whatever arrives, reading it raises nothing but the protocol's errors."""
    try:
        read(data)
    except LitefaasError as error:
        assert error.status in (413, 422)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["image", "mask", "x"]),
                "datatype": st.sampled_from([*DATATYPES, "BYTES", "FP8"]),
                "shape": st.lists(st.integers(-1, 2**40), min_size=0, max_size=4),
            }
        ),
        max_size=3,
    ),
    st.binary(max_size=64),
)
def test_any_header_is_either_a_request_or_invalid_payload(inputs, tail):
    """Declared shapes, datatypes and names in any combination never raise anything else."""
    try:
        read(frame({"inputs": inputs}, tail))
    except LitefaasError as error:
        assert error.status in (413, 422)


def test_a_framer_encodes_its_fixed_header_once_and_frames_as_frame_tensors_does():
    outputs = {"y": np.arange(6, dtype=np.float32).reshape(2, 3), "names": [b"a", b"bc"]}
    fixed = {"model": {"name": "m", "version": "1"}, "outputs": "replaced"}
    framed = tensors.Framer(fixed, "outputs").frame(outputs)
    header, payload = tensors.split_frame(framed)
    assert header == {
        "model": {"name": "m", "version": "1"},
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [2, 3]},
            {"name": "names", "datatype": "BYTES", "shape": [2]},
        ],
    }
    read = tensors.read_tensors(header, "outputs", payload)
    assert np.array_equal(read["y"], outputs["y"]) and read["names"] == [b"a", b"bc"]
    assert tensors.Framer({}, "inputs").frame({}) == tensors.join_frame({"inputs": []})
