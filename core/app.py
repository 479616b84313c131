"""The provider-neutral entry: (method, path, headers, body) in, (status, headers, body) out.

Over 500 lines because every route is dispatched here, once: litefaas's three, the Open Inference
Protocol's and the Oblivious HTTP gateway's, whose inner request comes back through the same
dispatch. What each format and seal says lives in its own module (``core.tensors``, ``core.oip``,
``core.crypto``, ``core.bhttp``, ``core.oblivious``); where an answer goes, in ``core.reply``.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from core import crypto, logs, memory, trace
from core.config import XNNPACK, Settings, read_keyring
from core.engine import Array, Engine, ShapeNotRunnable, XnnpackRequired
from core.errors import (
    ConfigError,
    DecryptionFailed,
    InternalError,
    InvalidEnvelope,
    InvalidPayload,
    LitefaasError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PlaintextDisabled,
    UnsupportedMediaType,
)
from core.http import Response, error_response, header, json_headers, media_type
from core.images import image_specs
from core.keyring_reload import KeyFileWatcher
from core.protocol import (
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    OHTTP_KEYS_TYPE,
    OHTTP_REQUEST_TYPE,
    OHTTP_RESPONSE_TYPE,
    OIP_BINARY_TYPE,
    OIP_HEADER_LENGTH,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
    REQUEST_FIELDS,
)
from core.replay import ReplayGuard
from core.reply import Reply, dumps, encode_values, loads
from core.routing import (
    OHTTP_GATEWAY,
    OIP_INFER,
    OIP_LIVE,
    OIP_MODEL,
    OIP_MODEL_READY,
    OIP_SERVER,
    OIP_UNKNOWN,
    Route,
    route_of,
)
from core.telemetry import RequestLog, RequestSummary, wants_severity
from core.tensors import Framer, datatype_of, model_inputs, split_frame, wanted_outputs
from core.trace import TRACEPARENT
from core.validate import inputs_to_arrays, json_has_no_literals

__all__ = ["App", "Response", "cold_start"]

_REQUEST_FIELDS_V2 = REQUEST_FIELDS | {"outputs"}
_PLAINTEXT_FIELDS_V2 = frozenset({"inputs", "outputs"})
_CORS_MAX_AGE = "600"
_ALLOW_HEADERS = f"Content-Type, {TRACEPARENT}"
_OIP_ALLOW_HEADERS = f"Content-Type, {OIP_HEADER_LENGTH}, {TRACEPARENT}"


class App:
    """One function instance: settings, engine and key ring, loaded at cold start (a key file reloads)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.keyring = settings.keyring
        self.clock = clock
        self.logger = logger or logs.configure(settings.log_level)
        self.replay = ReplayGuard(settings.replay_window_s, settings.replay_cache_size)
        self._model_info = engine.manifest.public_info()
        self._images = image_specs(engine.manifest.raw.get("inputs", []))
        self._health = dumps({"status": "ok", "model": self._health_model(), "backend": engine.backend})
        keyset = self.keyring.public_keyset() if self.keyring else {"keys": []}
        self._keys = dumps(keyset)
        self._model_suffix = b',"model":' + dumps(self._model_info) + b"}"
        self._framer = Framer({"model": self._model_info}, "outputs")
        self._single_output = engine.manifest.outputs[0].name if len(engine.manifest.outputs) == 1 else None
        self._key_watcher = (
            KeyFileWatcher(settings.keys_file, settings.keys_reload_s, self.keyring, self.logger)
            if settings.keys_file is not None and self.keyring is not None
            else None
        )
        model = self._model_info
        static = {"model": model["name"], "model_version": model["version"], "model_sha256": model["sha256"]}
        self._request_log = RequestLog(settings.telemetry, static)
        self._otel = None
        if settings.telemetry.otel:
            from core.otel import Recorder  # only where asked for: the cold start without it is unchanged

            self._otel = Recorder(settings.telemetry, self._request_log.static)
        self._first_request = True

    def _health_model(self) -> dict[str, Any]:
        """The model's public information, each tensor with its version-2 datatype (and image form)."""
        info = self.engine.manifest.health_info()
        for entry in (*info["inputs"], *info["outputs"]):
            entry["datatype"] = datatype_of(entry["dtype"])
            if entry["name"] in self._images:
                entry["image"] = self._images[entry["name"]].to_json()
        labels_file = self.engine.manifest.metadata.get("labels_file")
        if isinstance(labels_file, str) and "/" not in labels_file:
            try:
                text = (self.settings.model_dir / labels_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                problem = f"cannot read the labels file {labels_file}"
                raise ConfigError("LITEFAAS_MODEL_DIR", problem) from None
            info["labels"] = text.splitlines()
        return info

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, provider: str | None = None) -> App:
        """Cold start: read the configuration, load and warm up the model; ``provider`` (``aws``,
        ``gcp``, ``azure``) picks its cloud's log format unless ``LITEFAAS_LOG_FORMAT`` says another.

        A wrong setting is logged as one line naming the variable, then raised.
        """
        logger = logs.configure()
        started = time.perf_counter()
        try:
            settings = Settings.from_env(environ, provider)
            logger.setLevel(settings.log_level)
            try:
                engine = Engine.from_dir(
                    settings.model_dir, num_threads=settings.num_threads, xnnpack=settings.xnnpack
                )
                engine.warm_up()
            except XnnpackRequired as exc:
                raise ConfigError(XNNPACK, f"{exc}: set it to 1 (or leave it unset)") from None
            except Exception as exc:  # noqa: BLE001 - any failure to load the model is a config error
                raise ConfigError("LITEFAAS_MODEL_DIR", str(exc) or exc.__class__.__name__) from None
            app = cls(settings, engine, logger=logger)
        except ConfigError as exc:
            logs.use_severity(wants_severity(os.environ if environ is None else environ, provider))
            logs.log_event(logger, logging.ERROR, "config_error", variable=exc.variable, problem=exc.problem)
            raise
        logs.log_event(
            logger,
            logging.INFO,
            "cold_start",
            backend=engine.backend,
            model=engine.manifest.name,
            version=engine.manifest.version,
            keys=[entry.kid for entry in settings.keyring] if settings.keyring else [],
            plaintext=settings.allow_plaintext,
            log_format=settings.telemetry.log_format,
            otel=settings.telemetry.otel,
            init_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return app

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str | None = None,
        *,
        response_limit: int | None = None,
    ) -> Response:
        """Answer one HTTP request; never raises.

        ``response_limit``: the largest body the provider's front door carries back; a larger
        answer becomes the protocol's ``413 payload_too_large`` (sealed where the request was).
        """
        started = time.perf_counter_ns()
        if len(body) > memory.LARGE_BODY:
            memory.keep_large_buffers()
        reply = Reply(limit=response_limit)
        route = route_of(path)
        response = self._answer(method.upper(), route, headers, body, reply, response_limit)
        if self.settings.cors_origins:
            self._add_cors(headers, response)
        route_name = route.name if route is not None else "unknown"
        self._log(route_name, method, response, started, request_id, headers, len(body), reply)
        return response

    def refuse(
        self,
        error: LitefaasError,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        **fields: str,
    ) -> Response:
        """Answer with ``error`` a request the provider could not hand on (an event of no source it
        reads), recorded as every request is: one line in the cloud's format, ``route`` unknown, the
        trace from ``headers``."""
        started = time.perf_counter_ns()
        reply = Reply()
        response = reply.error(error)
        reply.fields.update(fields, code=error.code)
        self._log("unknown", "-", response, started, request_id, headers or {}, 0, reply)
        return response

    def _answer(
        self,
        method: str,
        route: Route | None,
        headers: Mapping[str, str],
        body: bytes,
        reply: Reply,
        response_limit: int | None = None,
    ) -> Response:
        """The answer to one request, outer or decapsulated; every error in the request's own terms."""
        try:
            response = self._dispatch(method, route, headers, body, reply)
            if response_limit is not None and len(response.body) > response_limit:
                raise PayloadTooLarge(
                    f"the answer of {len(response.body)} bytes is over this front door's limit of"
                    f" {response_limit} bytes; send fewer rows or ask for fewer outputs"
                )
        except LitefaasError as exc:
            response = reply.error(exc)
            reply.fields["code"] = exc.code
        except Exception as exc:  # noqa: BLE001 - the caller learns nothing, the log gets the place
            response = self._internal_error(reply, exc)
        return response

    def _internal_error(self, reply: Reply, exc: BaseException) -> Response:
        reply.fields["code"] = InternalError.code
        reply.fields["exception"] = exc.__class__.__name__
        trace = exc.__traceback__
        while trace is not None and trace.tb_next is not None:
            trace = trace.tb_next
        if trace is not None:
            file_name = trace.tb_frame.f_code.co_filename.rsplit("/", 1)[-1]
            reply.fields["where"] = f"{file_name}:{trace.tb_lineno}"
        try:
            return reply.error(InternalError())
        except Exception:  # noqa: BLE001
            return error_response(InternalError())

    def _log(
        self,
        route: str,
        method: str,
        response: Response,
        started: int,
        request_id: str | None,
        headers: Mapping[str, str],
        bytes_in: int,
        reply: Reply,
    ) -> None:
        """The request's record: one line in the cloud's format, and a span where OpenTelemetry is on."""
        ended = time.perf_counter_ns()
        status = response.status
        level = logging.ERROR if status >= 500 else logging.INFO
        cold_start, self._first_request = self._first_request, False
        logger = self.logger
        logging_on = logger.isEnabledFor(level)
        if not logging_on and self._otel is None:
            return
        context = reply.trace or trace.incoming(headers)
        duration_us, bytes_out, fields = (ended - started) // 1000, len(response.body), reply.fields
        direct = logs.writes_directly(logger, level) if logging_on else False  # the line in one write
        if direct and self._otel is None and not cold_start:
            # a warm request of a key seen before: its writer, found by RequestLog.line's key
            writer = self._request_log.writers.get((level, route, method, status, False, tuple(fields)))
            if writer is not None:
                now, request_id = time.time(), request_id or context.span_id
                sys.stderr.write(
                    writer(level, now, request_id, context, duration_us, bytes_in, bytes_out, fields)
                )
                return
        summary = RequestSummary(
            request_id or context.span_id,
            context,
            route,
            method[:16],
            status,
            cold_start,
            duration_us,
            bytes_in,
            bytes_out,
            fields,
        )
        if self._otel is not None:
            end_ns = time.time_ns() - (time.perf_counter_ns() - ended)
            own = self._otel.record(context, summary.record(), end_ns - (ended - started), end_ns)
            summary = summary._replace(trace=own, request_id=request_id or own.span_id)
            if not logging_on:
                return
        request_log, now = self._request_log, time.time()
        if cold_start and (first := request_log.cold_start_line(now)) is not None:
            if direct:
                sys.stderr.write(first + "\n")
            elif direct is None:
                logger.log(level, "cold_start_metric", extra={"line": first, "fields": {}})
        if direct:
            sys.stderr.write(request_log.line(level, summary, now))
        elif direct is None:
            record = {**summary.record(), **request_log.static}
            logger.log(
                level, "request", extra={"fields": record, "line": request_log.line(level, summary, now)[:-1]}
            )

    def _allowed_origin(self, headers: Mapping[str, str]) -> str | None:
        origins = self.settings.cors_origins
        origin = header(headers, "origin") if origins else None
        if origin is None:
            return None
        origin = origin.strip().rstrip("/")
        return origin if origin in origins or "*" in origins else None

    def _add_cors(self, headers: Mapping[str, str], response: Response) -> None:
        origin = self._allowed_origin(headers)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if OIP_HEADER_LENGTH in response.headers:
                response.headers["Access-Control-Expose-Headers"] = OIP_HEADER_LENGTH

    def _preflight(self, route: Route, headers: Mapping[str, str]) -> Response | None:
        """A CORS preflight from an allowed origin: ``204`` naming the route's method and headers."""
        if self._allowed_origin(headers) is None or header(headers, "access-control-request-method") is None:
            return None
        cors = {
            "Access-Control-Allow-Methods": route.method,
            "Access-Control-Allow-Headers": _OIP_ALLOW_HEADERS if route.oip else _ALLOW_HEADERS,
            "Access-Control-Max-Age": _CORS_MAX_AGE,
            "Cache-Control": "no-store",
        }
        return Response(204, cors, b"")

    def _dispatch(
        self, method: str, route: Route | None, headers: Mapping[str, str], body: bytes, reply: Reply
    ) -> Response:
        if route is None:
            raise NotFound()
        reply.oip = route.oip
        if route.name == OIP_UNKNOWN:
            raise NotFound("no such Open Inference Protocol route")
        if method not in route.methods:
            preflight = self._preflight(route, headers) if method == "OPTIONS" else None
            if preflight is not None:
                return preflight
            raise MethodNotAllowed(route.method)
        if route.oip:
            return self._oip(route, headers, body, reply)
        if route.name == OHTTP_GATEWAY:
            if reply.inside:
                raise NotFound("Oblivious HTTP requests do not nest")
            return self._oblivious(method, headers, body, reply)
        if route.name == "health":
            return Response(200, json_headers(), self._health)
        if self._key_watcher is not None:
            self._reload_keys(unknown_kid=False)
        if route.name == "keys":
            return Response(200, json_headers(cache="max-age=60"), self._keys)
        return self._predict(headers, body, reply)

    def _predict(self, headers: Mapping[str, str], body: bytes, reply: Reply) -> Response:
        if len(body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"body is over the limit of {self.settings.max_body_bytes} bytes")
        kind = media_type(headers)
        if kind == ENCRYPTED_TYPE_V2:
            return self._predict_encrypted_v2(body, reply)
        if kind == ENCRYPTED_TYPE:
            return self._predict_encrypted(body, reply)
        if kind in (PLAINTEXT_TYPE, PLAINTEXT_TYPE_V2):
            if not self._plaintext_allowed(reply):
                raise PlaintextDisabled()
            reply.fields["encrypted"] = False
            if kind == PLAINTEXT_TYPE_V2:
                reply.binary = True
                return self._predict_plaintext_v2(body, reply)
            return self._predict_plaintext(body, reply)
        raise UnsupportedMediaType(
            f"send {ENCRYPTED_TYPE_V2} or {ENCRYPTED_TYPE}"
            f" (or {PLAINTEXT_TYPE_V2} or {PLAINTEXT_TYPE} where plaintext is allowed)"
        )

    def _plaintext_allowed(self, reply: Reply) -> bool:
        return self.settings.allow_plaintext or reply.inside

    def _oblivious(self, method: str, headers: Mapping[str, str], body: bytes, reply: Reply) -> Response:
        """The Oblivious HTTP gateway: its key configurations, or one encapsulated request answered."""
        from core import oblivious  # imported by the first request through the gateway, not at cold start
        from core.crypto.ohttp import UnknownKey

        if self._key_watcher is not None:
            self._reload_keys(unknown_kid=False)
        if self.keyring is None:
            raise NotFound("this function holds no key: it has no Oblivious HTTP gateway")
        if method == "GET":
            return Response(
                200, json_headers(OHTTP_KEYS_TYPE, cache="max-age=60"), self.keyring.gateway.key_configs
            )
        if len(body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"body is over the limit of {self.settings.max_body_bytes} bytes")
        if media_type(headers) != OHTTP_REQUEST_TYPE:
            raise UnsupportedMediaType(f"send {OHTTP_REQUEST_TYPE}")
        reply.fields["encrypted"] = True
        decrypt_started = time.perf_counter_ns()
        try:
            decapsulated = self.keyring.gateway.decapsulate(body)
        except UnknownKey:
            reply.fields["code"] = "ohttp_key"
            return oblivious.key_problem()
        except DecryptionFailed:
            reply.fields["code"] = DecryptionFailed.code
            return oblivious.bare_400()
        reply.fields["decrypt_us"] = (time.perf_counter_ns() - decrypt_started) // 1000
        reply.fields["kid"] = self.keyring.gateway.kid(decapsulated.key_id)
        sealed_limit = None if reply.limit is None else reply.limit - oblivious.SEAL_OVERHEAD
        inner = self._inner_answer(decapsulated, reply, sealed_limit)
        seal_started = time.perf_counter_ns()
        message = oblivious.encode_answer(inner, self.settings.ohttp_padding, sealed_limit)
        sealed = decapsulated.sealer.seal(message)
        reply.fields["seal_us"] = (time.perf_counter_ns() - seal_started) // 1000
        return Response(200, json_headers(OHTTP_RESPONSE_TYPE), sealed)

    def _inner_answer(
        self, decapsulated: crypto.ohttp.Decapsulated, reply: Reply, sealed_limit: int | None
    ) -> Response:
        """The decapsulated Binary HTTP request, routed and answered as a plaintext request is; an
        answer over the front door's limit is a 413 inside the encapsulation, never outside."""
        from core import bhttp, oblivious

        inner_limit = None if sealed_limit is None else sealed_limit - oblivious.FRAMING_RESERVE
        inner_reply = Reply(inside=True, limit=inner_limit)
        try:
            request = bhttp.parse_request(decapsulated.message, self.settings.max_body_bytes)
        except bhttp.MalformedMessage:
            reply.fields["inner_code"] = InvalidEnvelope.code
            return inner_reply.error(InvalidEnvelope("the decapsulated request is not a Binary HTTP request"))
        headers = request.header_map()
        reply.trace = trace.callers(headers) or reply.trace  # the trace travels inside, never outside
        now = self.clock()
        date = oblivious.fresh_date(headers, now, self.settings.replay_window_s)
        route = route_of(request.path)
        reply.fields["inner_route"] = route.name if route is not None else "unknown"
        if date is None:
            reply.fields["inner_code"] = "stale_date"
            return oblivious.date_problem(now)
        try:
            self.replay.check(date, oblivious.replay_id(decapsulated.enc), now)
        except LitefaasError as exc:
            reply.fields["inner_code"] = exc.code
            return inner_reply.error(exc)
        inner = self._answer(
            request.method.upper(), route, headers, request.content, inner_reply, inner_limit
        )
        reply.fields["inner_status"] = inner.status
        for name in ("decode_us", "infer_us", "rows", "code"):
            if name in inner_reply.fields:
                reply.fields[f"inner_{name}" if name == "code" else name] = inner_reply.fields[name]
        return inner

    def _oip(self, route: Route, headers: Mapping[str, str], body: bytes, reply: Reply) -> Response:
        """An Open Inference Protocol route (plaintext: only where plaintext is allowed)."""
        from core import oip  # imported by the first OIP request, not at cold start

        if not self._plaintext_allowed(reply):
            raise PlaintextDisabled()
        reply.fields["encrypted"] = False
        if route.name == OIP_SERVER:
            return Response(200, json_headers(), dumps(oip.server_metadata()))
        if route.model is None:
            health = b'{"live":true}' if route.name == OIP_LIVE else b'{"ready":true}'
            return Response(200, json_headers(), health)
        manifest = self.engine.manifest
        if route.model != manifest.name:
            raise NotFound(f"unknown model {route.model[:64]!r}")
        if route.version is not None and route.version != manifest.version:
            raise NotFound(f"model {manifest.name} has no version {route.version[:64]!r}")
        if route.name == OIP_MODEL:
            return Response(200, json_headers(), dumps(oip.model_metadata(manifest)))
        if route.name == OIP_MODEL_READY:
            return Response(200, json_headers(), dumps({"name": manifest.name, "ready": True}))
        assert route.name == OIP_INFER
        return self._oip_infer(headers, body, reply)

    def _oip_infer(self, headers: Mapping[str, str], body: bytes, reply: Reply) -> Response:
        from core import oip

        if len(body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"body is over the limit of {self.settings.max_body_bytes} bytes")
        encoding = (header(headers, "content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise UnsupportedMediaType(f"Content-Encoding {encoding[:32]} is not supported; send it as it is")
        header_length = header(headers, OIP_HEADER_LENGTH)
        manifest, max_batch = self.engine.manifest, self.settings.max_batch
        decode_started = time.perf_counter_ns()
        request = oip.read_infer_request(body, header_length, manifest, max_batch, self._images)
        reply.fields["decode_us"] = (time.perf_counter_ns() - decode_started) // 1000
        outputs = self._run(request.arrays, reply)
        answer, answer_header_length = oip.infer_response(self._model_info, request, outputs)
        if answer_header_length is None:
            return Response(200, json_headers(), answer)
        binary_headers = json_headers(OIP_BINARY_TYPE) | {OIP_HEADER_LENGTH: str(answer_header_length)}
        return Response(200, binary_headers, answer)

    def _predict_plaintext(self, body: bytes, reply: Reply) -> Response:
        try:
            request = loads(body)
        except (ValueError, RecursionError):
            raise InvalidEnvelope("body is not JSON") from None
        if not isinstance(request, dict):
            raise InvalidEnvelope("body is not a JSON object")
        if request.keys() != {"inputs"}:
            raise InvalidPayload('a plaintext request has exactly one field, "inputs"')
        return self._infer(request["inputs"], reply, json_has_no_literals(body, strings=1))

    def _open(self, envelope: crypto.Envelope, reply: Reply) -> bytes:
        """Decrypt a request with the ring (reloading it for an unknown kid); one error for every failure."""
        if self.keyring is None:
            raise DecryptionFailed()
        keyring = self.keyring
        if self._key_watcher is not None and keyring.get(envelope.kid) is None:
            self._reload_keys(unknown_kid=True)
            keyring = self._key_watcher.keyring
        reply.fields["encrypted"] = True
        decrypt_started = time.perf_counter_ns()
        plaintext = keyring.open(envelope)
        reply.fields["kid"] = envelope.kid
        reply.fields["decrypt_us"] = (time.perf_counter_ns() - decrypt_started) // 1000
        return plaintext

    def _predict_encrypted(self, body: bytes, reply: Reply) -> Response:
        plaintext = self._open(crypto.parse_envelope(body), reply)
        request = self._sealable_request(plaintext, reply)
        if request.keys() != REQUEST_FIELDS:
            expected = ", ".join(sorted(REQUEST_FIELDS))
            raise InvalidPayload(f"the request must have exactly the fields {expected}")
        self.replay.check(request["ts"], reply.request_id, self.clock())
        # four keys, and the response_key and id values
        return self._infer(request["inputs"], reply, json_has_no_literals(plaintext, strings=6))

    def _predict_encrypted_v2(self, body: bytes, reply: Reply) -> Response:
        plaintext = self._open(crypto.parse_binary_envelope(body), reply)
        request, payload = split_frame(plaintext)
        reply.take_keys(request.get("response_key"), request.get("id"))
        reply.binary = True
        unknown = request.keys() - _REQUEST_FIELDS_V2
        if unknown or not request.keys() >= REQUEST_FIELDS:
            expected = ", ".join(sorted(_REQUEST_FIELDS_V2))
            raise InvalidPayload(f"the request header has the fields {expected} (outputs optional)")
        self.replay.check(request["ts"], reply.request_id, self.clock())
        return self._infer_tensors(request, payload, reply)

    def _predict_plaintext_v2(self, body: bytes, reply: Reply) -> Response:
        request, payload = split_frame(body)
        if "inputs" not in request or not request.keys() <= _PLAINTEXT_FIELDS_V2:
            raise InvalidPayload("a plaintext request header has the fields inputs and, optionally, outputs")
        return self._infer_tensors(request, payload, reply)

    def before_snapshot(self) -> None:
        """Before the instance is snapshotted (Lambda SnapStart): warm every path a request takes."""
        self.engine.warm_up()
        self.handle("GET", "/health", {}, b"")

    def after_restore(self, environ: Mapping[str, str] | None = None) -> None:
        """After the instance is restored from a snapshot, in each copy: the key ring read again (a
        rotation since the snapshot takes effect), the random generators reseeded (ids must differ
        between copies), the replay cache and the clocks started fresh, and the next request counted
        as a cold start. A ring that no longer reads is a configuration error, as at cold start."""
        keyring = read_keyring(environ)
        if keyring is not None:
            self.keyring = keyring
            self._keys = dumps(keyring.public_keyset())
            if self._key_watcher is not None:
                self._key_watcher.keyring = keyring
        random.seed(os.urandom(32))
        trace.forget_ids()
        np.random.seed(int.from_bytes(os.urandom(4), "big"))  # numpy's legacy global generator
        self.replay = ReplayGuard(self.settings.replay_window_s, self.settings.replay_cache_size)
        logs.reset_clock()
        self._first_request = True

    def _reload_keys(self, *, unknown_kid: bool) -> None:
        """Take the key file's new ring if it changed (rotation); the ring first, then ``/keys``."""
        assert self._key_watcher is not None
        ring = self._key_watcher.poll(unknown_kid=unknown_kid)
        if ring is not None:
            self.keyring = ring
            self._keys = dumps(ring.public_keyset())

    def _sealable_request(self, plaintext: bytes, reply: Reply) -> dict[str, Any]:
        """Parse the decrypted request far enough to answer it sealed; until then errors are plain."""
        try:
            request = loads(plaintext)
        except (ValueError, RecursionError):
            raise InvalidPayload("the decrypted request is not a litefaas request") from None
        if not isinstance(request, dict):
            raise InvalidPayload("the decrypted request is not a litefaas request")
        reply.take_keys(request.get("response_key"), request.get("id"))
        return request

    def _run(self, arrays: dict[str, Array], reply: Reply) -> dict[str, Array]:
        infer_started = time.perf_counter_ns()
        try:
            outputs = self.engine.predict(arrays)
        except ShapeNotRunnable as exc:
            raise InvalidPayload(f"inputs: {exc}") from None
        reply.fields["infer_us"] = (time.perf_counter_ns() - infer_started) // 1000
        reply.fields["rows"] = len(next(iter(arrays.values())))
        return outputs

    def _infer(self, inputs: object, reply: Reply, no_literals: bool) -> Response:
        decode_started = time.perf_counter_ns()
        arrays = inputs_to_arrays(
            inputs, self.engine.manifest.inputs, self.settings.max_batch, no_literals=no_literals
        )
        reply.fields["decode_us"] = (time.perf_counter_ns() - decode_started) // 1000
        outputs = self._run(arrays, reply)
        if self._single_output is not None:
            encoded = encode_values(outputs[self._single_output].tolist())
        else:
            encoded = encode_values({name: value.tolist() for name, value in outputs.items()})
        return reply.respond_encoded(200, b'{"outputs":' + encoded.encode() + self._model_suffix)

    def _infer_tensors(self, request: Mapping[str, Any], payload: memoryview, reply: Reply) -> Response:
        manifest = self.engine.manifest
        wanted = wanted_outputs(request.get("outputs"), manifest.outputs)
        decode_started = time.perf_counter_ns()
        arrays = model_inputs(
            request["inputs"], payload, manifest.inputs, self.settings.max_batch, self._images
        )
        reply.fields["decode_us"] = (time.perf_counter_ns() - decode_started) // 1000
        outputs = self._run(arrays, reply)
        message = self._framer.frame({name: outputs[name] for name in wanted})
        return reply.respond_encoded(200, message)


def cold_start(environ: Mapping[str, str] | None = None, provider: str | None = None) -> App:
    """Build the app for a handler module; on a configuration error, exit with the logged line."""
    try:
        return App.from_env(environ, provider)
    except ConfigError as exc:
        raise SystemExit(f"litefaas: {exc}") from None
