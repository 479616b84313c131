"""Fan-out: split a batch into shards that fit the function's limits, join the answers in row order."""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from core.protocol import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
from litefaas.client.errors import ClientError, NetworkError, ProtocolError, RemoteError
from litefaas.client.wire import Inputs, Outputs, PredictResult

Result = TypeVar("Result")

_JSON_BYTES_PER_VALUE = 25  # the longest JSON number (-2.2250738585072014e-308) and its comma
_ROW_OVERHEAD_BYTES = 8
_REQUEST_OVERHEAD_BYTES = 512  # response key, ts, id, field names; the envelope's own fields


@dataclass(frozen=True)
class ShardResult:
    """Rows ``start:stop`` of a fan-out, answered."""

    start: int
    stop: int
    outputs: Outputs


@dataclass(frozen=True)
class ShardFailure:
    """Rows ``start:stop`` of a fan-out, still failing after ``attempts`` requests."""

    start: int
    stop: int
    error: ClientError
    attempts: int


class PartialFailure(ClientError):
    """Some rows of a fan-out were answered and some were not, even after retries.

    ``succeeded`` and ``failed`` cover every row exactly once, in order; ``rows`` is the batch size.
    Row numbers in a failure's message count from its shard's first row.
    """

    def __init__(self, rows: int, succeeded: Sequence[ShardResult], failed: Sequence[ShardFailure]) -> None:
        self.rows = rows
        self.succeeded = list(succeeded)
        self.failed = list(failed)
        lost = sum(f.stop - f.start for f in failed)
        shown = "; ".join(
            f"rows {f.start}-{f.stop - 1}: {f.error} ({f.attempts} attempt{'s' if f.attempts > 1 else ''})"
            for f in self.failed[:5]
        )
        more = f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        super().__init__(
            f"{len(self.failed)} of {len(self.failed) + len(self.succeeded)} shards failed, "
            f"{lost:,} of {rows:,} rows unanswered: {shown}{more}"
        )

    @property
    def failed_ranges(self) -> list[range]:
        """The row ranges with no answer."""
        return [range(f.start, f.stop) for f in self.failed]


def row_count(inputs: Inputs) -> int:
    """The number of rows in a batch (every input of a mapping must have as many)."""
    if isinstance(inputs, Mapping):
        counts = {len(batch) for batch in inputs.values()}
        if len(counts) != 1:
            raise ClientError("every input must have the same number of rows")
        return counts.pop()
    if isinstance(inputs, np.ndarray) and inputs.ndim == 0:
        raise ClientError("inputs must be a batch of rows, not a scalar")
    return len(inputs)


def _values_in(row: Any) -> int:
    if isinstance(row, np.ndarray | np.generic):
        return max(int(np.size(row)), 1)
    if isinstance(row, list | tuple):
        return max(sum(_values_in(item) for item in row), 1)
    return 1


def rows_per_request(
    inputs: Inputs, max_batch: int = DEFAULT_MAX_BATCH, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> int:
    """The most rows one request may carry: at most ``max_batch``, and few enough that the sealed body
    (base64 of the JSON, ~4/3 of it) stays under ``max_body_bytes`` even if every number is 24 characters."""
    batches = list(inputs.values()) if isinstance(inputs, Mapping) else [inputs]
    values = sum(_values_in(batch[0]) for batch in batches if len(batch))
    budget = max_body_bytes * 3 // 4 - _REQUEST_OVERHEAD_BYTES
    by_body = budget // (_JSON_BYTES_PER_VALUE * max(values, 1) + _ROW_OVERHEAD_BYTES)
    return max(1, min(max_batch, by_body))


def plan_shards(rows: int, fan_out: int, max_rows: int) -> list[tuple[int, int]]:
    """Row ranges for a fan-out: ``max(fan_out, ceil(rows / max_rows))`` shards (never more than
    ``rows``), as even as possible, each at most ``max_rows`` rows."""
    if fan_out < 1 or max_rows < 1:
        raise ClientError("fan_out and the rows per request must be at least 1")
    if rows < 1:
        raise ClientError("the batch is empty")
    count = min(rows, max(fan_out, math.ceil(rows / max_rows)))
    bounds = [rows * i // count for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def slice_rows(inputs: Inputs, start: int, stop: int) -> Inputs:
    """Rows ``start:stop`` of a batch (of every input of a mapping)."""
    if isinstance(inputs, Mapping):
        return {name: batch[start:stop] for name, batch in inputs.items()}
    return inputs[start:stop]


def is_retryable(error: ClientError) -> bool:
    """Worth sending again with a fresh id: the network failed, or the function answered 5xx."""
    if isinstance(error, NetworkError):
        return True
    status = getattr(error, "status", None)
    return isinstance(error, RemoteError | ProtocolError) and status is not None and status >= 500


def join_results(shards: Sequence[tuple[int, int]], parts: Sequence[PredictResult]) -> PredictResult:
    """One result from the shards' results, rows in order; every shard must come from the same model."""
    models = {json.dumps(part.model, sort_keys=True) for part in parts}
    if len(models) > 1:
        raise ProtocolError("the shards were answered by different models (a deployment in progress?)")
    for (start, stop), part in zip(shards, parts, strict=True):
        batches = part.outputs.values() if isinstance(part.outputs, dict) else [part.outputs]
        if any(len(batch) != stop - start for batch in batches):
            raise ProtocolError(f"rows {start}-{stop - 1}: the answer has not one output per row")
    joined: Outputs
    if isinstance(parts[0].outputs, dict):
        named = [p.outputs for p in parts if isinstance(p.outputs, dict)]
        if len(named) != len(parts) or any(b.keys() != named[0].keys() for b in named):
            raise ProtocolError("the shards' answers do not have the same outputs")
        joined = {name: np.concatenate([batches[name] for batches in named]) for name in named[0]}
    else:
        joined = np.concatenate([p.outputs for p in parts])
    return PredictResult(joined, parts[0].model)


def gather_shards(
    rows: int,
    shards: Sequence[tuple[int, int]],
    outcomes: Sequence[Result | ShardFailure],
    join: Callable[..., Result] = join_results,  # type: ignore[assignment]
    outputs_of: Callable[[Any], Any] = operator.attrgetter("outputs"),
) -> Result:
    """Join a fan-out's outcomes with ``join``; raise :class:`PartialFailure` if any shard failed (or,
    if none succeeded, the first shard's own error). Versions 1 and 2 differ only in ``join``."""
    failed = [o for o in outcomes if isinstance(o, ShardFailure)]
    answered = [(s, o) for s, o in zip(shards, outcomes, strict=True) if not isinstance(o, ShardFailure)]
    if not failed:
        return join(shards, [o for _, o in answered])
    if not answered:
        raise failed[0].error
    succeeded = [ShardResult(start, stop, outputs_of(result)) for (start, stop), result in answered]
    raise PartialFailure(rows, succeeded, failed)
