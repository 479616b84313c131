"""Oblivious HTTP for any ``httpx`` client: a transport that encapsulates every request to a
gateway's key (RFC 9458) and decapsulates every answer, optionally through a relay.

    transport = ObliviousTransport("https://fn.example/.well-known/ohttp-gateway", relay_url=RELAY)
    httpx.Client(transport=transport).post("https://fn.example/v2/models/m/infer", json=...)

The request's method, path, headers and body travel inside a Binary HTTP message (RFC 9292) with a
``Date`` (the gateway's freshness check), padded to the gateway's size buckets unless
``padding=False``; only the encapsulated bytes reach the relay, and the gateway sees the relay's
address, never the caller's. The key configuration is fetched from the gateway (through the relay
where there is one) on first use, or pinned (``key_config=``, the ``application/ohttp-keys`` bytes
or a file's path): pin it so that a gateway cannot single a caller out with a key of its own.
"""

from __future__ import annotations

from email.utils import formatdate
from pathlib import Path

import httpx

from core import bhttp
from core.crypto.ohttp import ClientContext, KeyConfig, decode_key_configs, encapsulate
from core.errors import DecryptionFailed
from core.oblivious import padded_size
from core.protocol import OHTTP_KEYS_TYPE, OHTTP_REQUEST_TYPE, OHTTP_RESPONSE_TYPE, PROBLEM_OHTTP_KEY
from litefaas.client.errors import ProtocolError

GATEWAY_PATH = "/.well-known/ohttp-gateway"
_HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "content-length",
        "accept-encoding",
    }
)
_MAX_ANSWER = 256 * 1024 * 1024


class ObliviousError(ProtocolError):
    """The gateway or relay did not answer with an encapsulated response (or it did not open)."""


def gateway_url_of(base_url: str) -> str:
    """The gateway a function serves beside its other routes."""
    return base_url.rstrip("/") + GATEWAY_PATH


def load_key_config(value: bytes | str | Path) -> KeyConfig:
    """The first configuration of ``application/ohttp-keys`` bytes, or of a file holding them."""
    data = value if isinstance(value, bytes) else Path(value).read_bytes()
    try:
        return decode_key_configs(data)[0]
    except ValueError as exc:
        raise ObliviousError(f"the gateway's key configuration does not parse: {exc}") from None


class _Encapsulation:
    """What both transports share: the key configuration and turning requests into bytes and back."""

    def __init__(
        self,
        gateway_url: str,
        key_config: bytes | str | Path | KeyConfig | None,
        relay_url: str | None,
        padding: bool,
    ) -> None:
        self.gateway_url = gateway_url
        self.relay_url = relay_url
        self.padding = padding
        self.pinned = key_config is not None
        self.config = (
            key_config
            if isinstance(key_config, KeyConfig) or key_config is None
            else load_key_config(key_config)
        )

    @property
    def target(self) -> str:
        return self.relay_url or self.gateway_url

    def keys_request(self) -> httpx.Request:
        return httpx.Request("GET", self.target, headers={"accept": OHTTP_KEYS_TYPE})

    def take_keys(self, response: httpx.Response) -> KeyConfig:
        if response.status_code != 200:
            raise ObliviousError(
                f"GET {self.target} answered {response.status_code}, not the key configurations"
            )
        self.config = load_key_config(response.content)
        return self.config

    def encapsulate(
        self, request: httpx.Request, content: bytes, config: KeyConfig
    ) -> tuple[httpx.Request, ClientContext]:
        url = request.url
        headers = [  # the bytes as they would go on the wire (latin-1 keeps each byte as it is)
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in _HOP_HEADERS
        ]
        if not any(name == "date" for name, _ in headers):
            headers.append(("date", formatdate(usegmt=True)))
        target = url.raw_path.decode("ascii") or "/"
        inner = bhttp.Request(
            request.method, url.scheme, url.netloc.decode("ascii"), target, headers, content
        )
        message = bhttp.encode_request(inner)
        if self.padding:
            message += bytes(padded_size(len(message)) - len(message))
        try:
            body, context = encapsulate(config, message)
        except ValueError as exc:
            raise ObliviousError(f"cannot encapsulate to the gateway's key: {exc}") from None
        outer = httpx.Request("POST", self.target, headers={"content-type": OHTTP_REQUEST_TYPE}, content=body)
        return outer, context

    @staticmethod
    def key_rejected(response: httpx.Response) -> bool:
        """The gateway's ``ohttp-key`` problem, or a bare 400 (a request to a key it replaced under the
        same ``key_id`` does not decrypt): worth fetching the key configuration again, once."""
        return response.status_code == 400 and (
            not response.content or PROBLEM_OHTTP_KEY.encode() in response.content
        )

    def decapsulate(
        self, request: httpx.Request, response: httpx.Response, context: ClientContext
    ) -> httpx.Response:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code != 200 or kind != OHTTP_RESPONSE_TYPE:
            detail = response.content[:200].decode("utf-8", "replace")
            raise ObliviousError(
                f"{self.target} answered {response.status_code} {kind or '(no type)'}, not an encapsulated"
                f" response{': ' + detail if detail else ''}"
            )
        try:
            answer = bhttp.parse_response(context.open(response.content), _MAX_ANSWER)
        except DecryptionFailed:
            raise ObliviousError("the encapsulated response does not open with this request's keys") from None
        except bhttp.MalformedMessage as exc:
            raise ObliviousError(f"the decapsulated response is not Binary HTTP: {exc}") from None
        return httpx.Response(answer.status, headers=answer.headers, content=answer.content, request=request)


class ObliviousTransport(httpx.BaseTransport):
    """An ``httpx`` transport sending every request through Oblivious HTTP (see the module's text).

    ``transport`` carries the encapsulated requests (default: a plain ``httpx.HTTPTransport``).
    """

    def __init__(
        self,
        gateway_url: str,
        *,
        key_config: bytes | str | Path | KeyConfig | None = None,
        relay_url: str | None = None,
        padding: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._encapsulation = _Encapsulation(gateway_url, key_config, relay_url, padding)
        self._transport = transport or httpx.HTTPTransport()

    @property
    def key_config(self) -> KeyConfig:
        """The gateway's key configuration (fetched on first use unless pinned)."""
        found = self._encapsulation.config
        if found is None:
            response = self._transport.handle_request(self._encapsulation.keys_request())
            response.read()
            found = self._encapsulation.take_keys(response)
        return found

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        for attempt in range(2):
            outer, context = self._encapsulation.encapsulate(request, content, self.key_config)
            response = self._transport.handle_request(outer)
            response.read()
            if attempt == 0 and not self._encapsulation.pinned and self._encapsulation.key_rejected(response):
                self._encapsulation.config = None  # the gateway rotated its keys: fetch them again, once
                continue
            return self._encapsulation.decapsulate(request, response, context)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._transport.close()


class AsyncObliviousTransport(httpx.AsyncBaseTransport):
    """:class:`ObliviousTransport` for ``httpx.AsyncClient``."""

    def __init__(
        self,
        gateway_url: str,
        *,
        key_config: bytes | str | Path | KeyConfig | None = None,
        relay_url: str | None = None,
        padding: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._encapsulation = _Encapsulation(gateway_url, key_config, relay_url, padding)
        self._transport = transport or httpx.AsyncHTTPTransport()

    async def key_config(self) -> KeyConfig:
        found = self._encapsulation.config
        if found is None:
            response = await self._transport.handle_async_request(self._encapsulation.keys_request())
            await response.aread()
            found = self._encapsulation.take_keys(response)
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        for attempt in range(2):
            outer, context = self._encapsulation.encapsulate(request, content, await self.key_config())
            response = await self._transport.handle_async_request(outer)
            await response.aread()
            if attempt == 0 and not self._encapsulation.pinned and self._encapsulation.key_rejected(response):
                self._encapsulation.config = None
                continue
            return self._encapsulation.decapsulate(request, response, context)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self._transport.aclose()
