"""The two HTTP faces of the daemon.

- The CNI app (``/cni``, ``/delegate``, ``/healthz``, ``/readyz``) listens only on the unix socket
  the shims use; it is never reachable over TCP.
- The metrics app (``/metrics``, ``/healthz``, ``/readyz``) listens on ``metricsAddress``.

A handler parses the request once (:func:`multusd.attach.request.parse_request`), waits for an
execution slot (at most ``maxConcurrentRequests`` run plugins at once; the rest queue FIFO and the
queue depth is a metric), serialises requests for the same container, runs the flow and writes
upstream's response shapes. aiohttp's default of *not* cancelling a handler whose client went
away is kept on purpose: the plugin timeout bounds a request, and a vanished shim must never leave
a half-done ADD behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from multusd.attach.flows import REQUEST_NETWORKS
from multusd.attach.request import CniRequest, parse_request
from multusd.cni.errors import CniCode, CniError
from multusd.cni.types import LATEST_VERSION, Result
from multusd.metrics import Metrics

log = logging.getLogger("multusd.server")

MAX_BODY_BYTES = 1 << 20  # a CNI config is a few KiB; 1 MiB leaves room for big NAD lists
HANDLERS = ("/cni", "/delegate", "/healthz", "/readyz")
_QUEUED_COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS")
_NEEDS_READY = ("ADD", "CHECK", "GC", "STATUS")


class CniService(Protocol):
    """What the server needs from the meta-plugin (attach/flows.py)."""

    async def run(self, request: CniRequest) -> Result | None: ...

    async def delegate(self, request: CniRequest) -> Result | None: ...


@dataclass
class Health:
    """Readiness as the daemon sees it: caches synced and socket serving, minus shutdown."""

    ready: bool = False
    shutting_down: bool = False
    reasons: dict[str, str] = field(default_factory=dict)  # what is still missing, for /readyz bodies

    @property
    def serving(self) -> bool:
        return self.ready and not self.shutting_down


class RequestGate:
    """At most ``limit`` requests execute; the others wait in FIFO order. One at a time per container."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self._slots = asyncio.Semaphore(limit)  # FIFO-fair since CPython 3.11.1
        self._metrics = metrics
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.waiting = 0
        self.running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, key: str, command: str, work: Callable[[], Awaitable[Any]]) -> Any:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        start = time.monotonic()
        acquired = False
        self.waiting += 1
        self._metrics.queue_depth.set(self.waiting)
        self._idle.clear()
        try:
            async with lock, self._slots:
                acquired = True
                self.waiting -= 1
                self._metrics.queue_depth.set(self.waiting)
                self._metrics.queue_wait.labels(command=command).observe(time.monotonic() - start)
                self.running += 1
                self._metrics.in_flight.set(self.running)
                try:
                    return await work()
                finally:
                    self.running -= 1
                    self._metrics.in_flight.set(self.running)
        finally:
            if not acquired:  # cancelled while queued
                self.waiting -= 1
                self._metrics.queue_depth.set(self.waiting)
            if self.running == 0 and self.waiting == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait for in-flight and queued requests to finish; False if the bound ran out."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


@dataclass
class ServerDeps:
    service: CniService
    metrics: Metrics
    health: Health
    gate: RequestGate
    overlay: Mapping[str, Any]  # daemon-config, applied over every request's config (§2.3)
    ignore_readiness: bool = True


DEPS = web.AppKey("deps", ServerDeps)
HEALTH = web.AppKey("health", Health)


def _cni_error_response(err: CniError, status: int = 400) -> web.Response:
    return web.json_response(err.to_json(), status=status)


def _handler_label(request: web.Request) -> str:
    return request.path if request.path in HANDLERS else "NotFound"


@web.middleware
async def _count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``multus_server_request_total{handler,code,method}`` exactly as upstream labels it."""
    metrics = request.app[DEPS].metrics if DEPS in request.app else None
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if metrics is not None:
            metrics.server_requests.labels(_handler_label(request), str(exc.status), request.method.lower()).inc()
        raise
    if metrics is not None:
        metrics.server_requests.labels(_handler_label(request), str(response.status), request.method.lower()).inc()
    return response


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise CniError(CniCode.DECODING_FAILURE, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"request body larger than {MAX_BODY_BYTES} bytes") from exc


async def _handle(request: web.Request, delegate: bool) -> web.Response:
    deps = request.app[DEPS]
    started = time.monotonic()
    command = "?"
    cni: CniRequest | None = None
    try:
        body = await _read_body(request)
        # /delegate carries a NAD's own config: daemon-config keys must not overwrite it (upstream Q14)
        overlay = {} if delegate else deps.overlay
        cni = parse_request(body, overlay, ignore_readiness=deps.ignore_readiness, delegate=delegate)
        command = cni.command
        if command in _NEEDS_READY and not deps.health.serving:
            why = "shutting down" if deps.health.shutting_down else "not ready yet"
            busy = CniError(CniCode.TRY_AGAIN_LATER, f"multusd is {why}; try again later")
            return _cni_error_response(busy, status=503)
        work = deps.service.delegate if delegate else deps.service.run
        parsed = cni
        result: Result | None = await deps.gate.run(cni.container_id or f"<{command}>", command, lambda: work(parsed))
    except Exception as exc:  # the daemon never dies because of one request
        if isinstance(exc, CniError):
            failure = exc
        else:
            log.exception("internal error serving %s", request.path)
            where = cni.describe() + " ERRORED: " if cni is not None else ""
            failure = CniError(CniCode.INTERNAL, f"{where}internal error: {exc}")
        _log_request(command, cni, started, f"error {failure.code}: {failure}")
        deps.metrics.request_duration.labels(command, "error").observe(time.monotonic() - started)
        return _cni_error_response(failure)
    deps.metrics.request_duration.labels(command, "success").observe(time.monotonic() - started)
    _log_request(command, cni, started, "ok")
    if command == "ADD":
        payload = result.to_json(LATEST_VERSION) if result is not None else {"cniVersion": LATEST_VERSION}
        return web.json_response({"Result": payload})
    return web.Response(status=200)


def _log_request(command: str, cni: CniRequest | None, started: float, outcome: str) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000
    if cni is None:
        log.warning("%s rejected in %.0f ms: %s", command, elapsed_ms, outcome)
        return
    level = logging.INFO if outcome == "ok" else logging.WARNING
    log.log(
        level,
        "%s %s container=%s netns=%s ifname=%s networks=%s %s in %.0f ms",
        command,
        cni.pod_ref if cni.pod_name else "-",
        cni.container_id or "-",
        cni.netns or "-",
        cni.ifname or "-",
        ",".join(REQUEST_NETWORKS.get()) or "-",
        outcome,
        elapsed_ms,
    )


async def handle_cni(request: web.Request) -> web.Response:
    return await _handle(request, delegate=False)


async def handle_delegate(request: web.Request) -> web.Response:
    return await _handle(request, delegate=True)


async def handle_healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def handle_readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    if health.serving:
        return web.Response(status=200, content_type="application/json")
    text = "shutting down" if health.shutting_down else "; ".join(health.reasons.values()) or "not ready"
    return web.Response(status=500, text=text)


async def _method_not_allowed(request: web.Request) -> web.Response:
    return web.Response(status=405, text="Method not allowed\n")


def make_cni_app(deps: ServerDeps) -> web.Application:
    """The unix-socket app the shims talk to."""
    app = web.Application(middlewares=[_count_requests], client_max_size=MAX_BODY_BYTES)
    app[DEPS] = deps
    app[HEALTH] = deps.health
    app.router.add_post("/cni", handle_cni)
    app.router.add_post("/delegate", handle_delegate)
    for path, handler in (("/healthz", handle_healthz), ("/readyz", handle_readyz)):
        app.router.add_get(path, handler, allow_head=False)
        app.router.add_post(path, handler)
    for path in ("/cni", "/delegate"):
        app.router.add_route("GET", path, _method_not_allowed)
    return app


def make_metrics_app(metrics: Metrics, health: Health) -> web.Application:
    """The TCP app: Prometheus exposition and the probes, nothing that can change state."""
    app = web.Application()
    app[HEALTH] = health
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    return app
