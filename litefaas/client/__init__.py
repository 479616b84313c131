"""Call a litefaas function: seal each request to its public key, open the sealed answer.

The package is split along its seams; everything is re-exported here, so
``from litefaas.client import Client, AsyncClient, ChainClient, build_request, ...`` is the API:

- :mod:`~litefaas.client.errors`: :class:`ClientError` and the typed :class:`RemoteError` family,
  made from ``core.errors``' table;
- :mod:`~litefaas.client.keysets`: a function's public key set;
- :mod:`~litefaas.client.wire`: version 1 requests and answers, without HTTP;
- :mod:`~litefaas.client.tensor_wire`: version 2 (binary tensors) requests and answers, without HTTP;
- :mod:`~litefaas.client.sharding`: a batch split to fit the function's limits, and joined again;
- :mod:`~litefaas.client.sync`, :mod:`~litefaas.client.async_client`: :class:`Client` and
  :class:`AsyncClient` (``httpx``): ``predict`` (version 1), ``predict_tensors`` and
  ``predict_images`` (version 2), each able to fan a batch out (``fan_out=K``);
- :mod:`~litefaas.client.chain`: :class:`ChainClient`, a batch through a model cut into segments
  (version 2: activations travel as raw tensors).

No message raised by the client carries key material or the caller's inputs.
"""

from __future__ import annotations

from core.protocol import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
    REQUEST_ID_BYTES,
    RESPONSE_KEY_BYTES,
)
from litefaas.client.async_client import AsyncClient
from litefaas.client.base import DEFAULT_RETRIES, USER_AGENT
from litefaas.client.chain import ChainClient, SegmentError, load_chain
from litefaas.client.errors import (
    REMOTE_ERRORS,
    ClientError,
    DecryptionFailedError,
    InvalidEnvelopeError,
    InvalidPayloadError,
    MethodNotAllowedError,
    NetworkError,
    NotFoundError,
    PayloadTooLargeError,
    PlaintextDisabledError,
    ProtocolError,
    RemoteError,
    RemoteInternalError,
    ReplayedRequestError,
    StaleRequestError,
    UnsupportedMediaTypeError,
    remote_error,
)
from litefaas.client.keysets import KeyInfo, parse_keyset, select_key
from litefaas.client.sharding import (
    PartialFailure,
    ShardFailure,
    ShardResult,
    gather_shards,
    is_retryable,
    join_results,
    plan_shards,
    row_count,
    rows_per_request,
    slice_rows,
)
from litefaas.client.sync import Client
from litefaas.client.tensor_wire import (
    TensorResult,
    build_plaintext_tensor_request,
    build_tensor_request,
    decrypt_tensor_response,
    read_framed_answer,
    read_tensor_response,
    tensor_rows_per_request,
)
from litefaas.client.wire import (
    Inputs,
    Outputs,
    PredictResult,
    RequestSecrets,
    build_plaintext_request,
    build_request,
    decrypt_response,
    read_response,
    wire_inputs,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RETRIES",
    "ENCRYPTED_TYPE",
    "ENCRYPTED_TYPE_V2",
    "PLAINTEXT_TYPE",
    "PLAINTEXT_TYPE_V2",
    "REMOTE_ERRORS",
    "REQUEST_ID_BYTES",
    "RESPONSE_KEY_BYTES",
    "USER_AGENT",
    "AsyncClient",
    "ChainClient",
    "Client",
    "ClientError",
    "DecryptionFailedError",
    "Inputs",
    "InvalidEnvelopeError",
    "InvalidPayloadError",
    "KeyInfo",
    "MethodNotAllowedError",
    "NetworkError",
    "NotFoundError",
    "Outputs",
    "PartialFailure",
    "PayloadTooLargeError",
    "PlaintextDisabledError",
    "PredictResult",
    "ProtocolError",
    "RemoteError",
    "RemoteInternalError",
    "ReplayedRequestError",
    "RequestSecrets",
    "SegmentError",
    "ShardFailure",
    "ShardResult",
    "StaleRequestError",
    "TensorResult",
    "UnsupportedMediaTypeError",
    "build_plaintext_request",
    "build_plaintext_tensor_request",
    "build_request",
    "build_tensor_request",
    "decrypt_response",
    "decrypt_tensor_response",
    "gather_shards",
    "is_retryable",
    "join_results",
    "load_chain",
    "parse_keyset",
    "plan_shards",
    "read_framed_answer",
    "read_response",
    "read_tensor_response",
    "remote_error",
    "row_count",
    "rows_per_request",
    "select_key",
    "slice_rows",
    "tensor_rows_per_request",
    "wire_inputs",
]
