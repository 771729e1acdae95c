"""The HTTP side of the local API server: middleware, routing, REST verbs, watch streams.

All state is one :class:`ServerState` under the :data:`STATE` app key. The middleware logs the
request, checks the bearer token and injects faults; a single catch-all route parses the path
itself (``/api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUB]]``, same under ``/apis/GROUP/VERSION``)
because aiohttp patterns cannot tell ``namespaces/x/status`` from ``namespaces/x/pods``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from multusd.kube.localapi_faults import Faults, RequestLog, RequestRecord
from multusd.kube.localapi_objects import (
    ApiError,
    FieldSelector,
    JsonObj,
    JsonPatchError,
    LabelSelector,
    bad_request,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from multusd.kube.localapi_resources import (
    SERVER_VERSION,
    ResourceType,
    aggregated_discovery,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    find_resource,
)
from multusd.kube.localapi_store import CLOSE, Store, Watcher
from multusd.kube.localapi_tables import make_table

DISCONNECT_POLL_SECONDS = 1.0
"""How often an idle watch checks that its client is still there."""
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}


@dataclass
class ServerState:
    """Everything the handlers share: the store, faults, log, auth and watch settings."""

    store: Store
    faults: Faults
    requests: RequestLog
    token: str | None
    bookmark_interval_seconds: float
    default_watch_timeout_seconds: float
    rng: random.Random
    server_address: str = ""
    watch_tasks: set[asyncio.Task[Any]] = field(default_factory=set)


STATE = web.AppKey("localapi_state", ServerState)


def _status_response(err: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(err.status(), status=err.code, headers=headers)


def _parse_bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f"{name}: invalid boolean {value!r}")


def _parse_int(value: str | None, name: str) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except ValueError as exc:
        raise bad_request(f"{name}: invalid integer {value!r}") from exc


@web.middleware
async def _middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Log, authenticate and fault every request before the API sees it."""
    state = request.app[STATE]
    control = request.path.startswith("/localapi/")
    record = None
    if not control:
        record = RequestRecord(
            time.time(), request.method, request.path, request.query_string, request.headers.get("Content-Type", "")
        )
        state.requests.add(record)
    response: web.StreamResponse
    try:
        response = await _guarded(request, handler, state, control)
    except ApiError as err:
        response = _status_response(err)
    if record is not None:
        record.status = response.status
    return response


async def _guarded(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    state: ServerState,
    control: bool,
) -> web.StreamResponse:
    health = request.path in ("/healthz", "/livez", "/readyz")
    authorized = request.headers.get("Authorization", "") == f"Bearer {state.token}"
    if state.token is not None and not health and not authorized:
        raise ApiError(401, "Unauthorized", "Unauthorized")
    if not control:
        faults = state.faults
        if faults.latency_seconds > 0:
            await asyncio.sleep(faults.latency_seconds)
        if faults.down:
            if faults.down_mode == "close" and request.transport is not None:
                request.transport.abort()
            raise ApiError(503, "the server is currently unable to handle the request", "ServiceUnavailable")
        if faults.should_fail(request.method, request.path, state.rng):
            headers = {}
            if faults.retry_after_seconds is not None:
                headers["Retry-After"] = str(faults.retry_after_seconds)
            err = ApiError(faults.error_code, "injected fault: the server is currently unable to handle the request")
            return _status_response(err, headers)
    return await handler(request)


# ------------------------------------------------------------------------------ routing


@dataclass(frozen=True)
class _Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _route(path: str) -> JsonObj | _Target:
    """A discovery document, or the resource a path addresses; 404 otherwise."""
    segs = [s for s in path.split("/") if s]
    missing = ApiError(404, "the server could not find the requested resource", "NotFound", {})
    if not segs or segs[0] not in ("api", "apis"):
        raise missing
    if segs[0] == "api":
        if len(segs) == 1:
            return {"__legacy__": "api"}
        group, version, rest = "", segs[1], segs[2:]
    else:
        if len(segs) == 1:
            return {"__legacy__": "apis"}
        if len(segs) == 2:
            doc = api_group(segs[1])
            if doc is None:
                raise missing
            return doc
        group, version, rest = segs[1], segs[2], segs[3:]
    if not rest:
        doc = api_resource_list(group, version)
        if doc is None:
            raise missing
        return doc
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        inner = find_resource(group, version, rest[2])
        if inner is not None and inner.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = find_resource(group, version, rest[0])
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        raise missing
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if (sub is not None and sub not in rt.subresources) or (name is not None and rt.namespaced and namespace is None):
        raise missing
    return _Target(rt, namespace, name, sub)


async def _handle(request: web.Request) -> web.StreamResponse:
    """Every API path: discovery documents, then the REST verbs on a resource."""
    state = request.app[STATE]
    path = request.path.rstrip("/") or "/"
    if path in ("/healthz", "/livez", "/readyz"):
        return web.Response(text="ok")
    if path == "/version":
        return web.json_response(SERVER_VERSION)
    routed = _route(path)
    if isinstance(routed, dict):
        if request.method != "GET":
            raise ApiError(405, "the server does not allow this method on the requested resource")
        legacy = routed.get("__legacy__")
        if legacy is None:
            return web.json_response(routed)
        if "as=APIGroupDiscoveryList" in request.headers.get("Accept", "") and "v=v2;" in request.headers.get(
            "Accept", ""
        ):
            body = json.dumps(aggregated_discovery(core=legacy == "api"))
            return web.Response(text=body, headers={"Content-Type": AGGREGATED_DISCOVERY})
        doc = api_versions(state.server_address) if legacy == "api" else api_group_list()
        return web.json_response(doc)
    return await _handle_resource(request, state, routed)


def _method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"error decoding request body: {exc}") from exc


async def _read_object(request: web.Request, rt: ResourceType) -> JsonObj:
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise bad_request("the object provided is unrecognized (must be a JSON object)")
    kind, api_version = body.setdefault("kind", rt.kind), body.setdefault("apiVersion", rt.group_version)
    if kind != rt.kind or api_version != rt.group_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rt.group_version}) or kind {kind!r} is not {rt.kind!r}"
        )
    return body


async def _handle_resource(request: web.Request, state: ServerState, target: _Target) -> web.StreamResponse:
    rt, ns, name, sub = target.rt, target.namespace, target.name, target.subresource
    store, q, method = state.store, request.query, request.method
    if method == "GET" and name is not None:
        return _respond(request, rt, store.get(rt, ns, name))
    if method == "GET":
        labels = LabelSelector.parse(q.get("labelSelector"))
        field_sel = FieldSelector.parse(q.get("fieldSelector"), rt.field_selectors)
        if _parse_bool(q.get("watch"), "watch"):
            return await _watch(request, state, rt, ns, labels, field_sel)
        listed = store.list(
            rt,
            ns,
            labels=labels,
            fields=field_sel,
            limit=_parse_int(q.get("limit"), "limit"),
            continue_token=q.get("continue") or None,
            resource_version=q.get("resourceVersion"),
            resource_version_match=q.get("resourceVersionMatch"),
        )
        return _respond(request, rt, listed)
    if method == "POST" and name is None:
        if rt.namespaced and ns is None:
            raise _method_not_allowed()
        body = await _read_object(request, rt)
        created = store.create(rt, ns, body)
        return _respond(request, rt, created, status=201)
    if method == "PUT" and name is not None:
        body = await _read_object(request, rt)
        return _respond(request, rt, store.update(rt, ns, name, body, subresource=sub))
    if method == "PATCH" and name is not None:
        return _respond(request, rt, await _patch(request, store, rt, ns, name, sub))
    if method == "DELETE" and sub is None:
        options = await _read_json(request)
        options = options if isinstance(options, dict) else {}
        if name is None:
            labels = LabelSelector.parse(q.get("labelSelector"))
            field_sel = FieldSelector.parse(q.get("fieldSelector"), rt.field_selectors)
            return _respond(request, rt, store.delete_collection(rt, ns, labels, field_sel))
        return _respond(request, rt, store.delete(rt, ns, name, preconditions=options.get("preconditions")))
    raise _method_not_allowed()


async def _patch(
    request: web.Request, store: Store, rt: ResourceType, ns: str | None, name: str, sub: str | None
) -> JsonObj:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    patch_type = _PATCH_TYPES.get(content_type)
    if patch_type is None or (patch_type == "strategic" and not rt.builtin):
        accepted = [t for t, kind in _PATCH_TYPES.items() if rt.builtin or kind != "strategic"]
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
            "UnsupportedMediaType",
        )
    patch = await _read_json(request)

    def apply(current: JsonObj) -> Any:
        if patch_type == "json":
            if not isinstance(patch, list):
                raise bad_request("error decoding patch: a JSON patch must be an array of operations")
            try:
                return json_patch(current, patch)
            except JsonPatchError as exc:
                raise ApiError(422, str(exc), "Invalid") from exc
        if not isinstance(patch, dict):
            raise bad_request("error decoding patch: the patch must be a JSON object")
        return (merge_patch if patch_type == "merge" else strategic_merge_patch)(current, patch)

    return store.patch(rt, ns, name, apply, subresource=sub)


def _respond(request: web.Request, rt: ResourceType, doc: JsonObj, status: int = 200) -> web.Response:
    """JSON, or a ``meta.k8s.io/v1`` Table when the client asks for one (kubectl get)."""
    if "as=Table" in request.headers.get("Accept", "") and doc.get("kind") != "Status":
        doc = make_table(rt, doc, request.query.get("includeObject", "Metadata"), time.time())
    return web.json_response(doc, status=status)


# ------------------------------------------------------------------------------ watch


async def _watch(
    request: web.Request,
    state: ServerState,
    rt: ResourceType,
    ns: str | None,
    labels: LabelSelector,
    field_sel: FieldSelector,
) -> web.StreamResponse:
    """A watch stream: newline-delimited ``{"type", "object"}`` events until timeout or close."""
    q = request.query
    bookmarks = bool(_parse_bool(q.get("allowWatchBookmarks"), "allowWatchBookmarks"))
    send_initial = _parse_bool(q.get("sendInitialEvents"), "sendInitialEvents")
    if send_initial is not None:
        if q.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(
                422,
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch "
                "to NotOlderThan",
                "Invalid",
            )
        if send_initial and not bookmarks:
            raise ApiError(
                422,
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                "Invalid",
            )
    elif q.get("resourceVersionMatch"):
        raise ApiError(422, "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch", "Invalid")
    timeout = float(_parse_int(q.get("timeoutSeconds"), "timeoutSeconds")) or state.default_watch_timeout_seconds
    rv = q.get("resourceVersion")
    watcher = state.store.watch(
        rt, ns, labels, field_sel, resource_version=rv if not send_initial else None, send_initial_events=send_initial
    )
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        await _pump(request, response, state, watcher, rt, bookmarks, timeout)
    except ConnectionError:
        pass  # the client went away: nobody is left to tell
    finally:
        state.store.unwatch(watcher)
    return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    state: ServerState,
    watcher: Watcher,
    rt: ResourceType,
    bookmarks: bool,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_bookmark = loop.time() + state.bookmark_interval_seconds

    table = "as=Table" in request.headers.get("Accept", "")
    include = request.query.get("includeObject", "Metadata")

    async def send(etype: str, obj: JsonObj) -> None:
        if table and etype in ("ADDED", "MODIFIED", "DELETED"):
            obj = make_table(rt, obj, include, time.time())  # kubectl get --watch prints rows
        await response.write(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

    while True:
        now = loop.time()
        if now >= deadline:
            if bookmarks:
                await send("BOOKMARK", state.store.bookmark(rt))
            return
        if bookmarks and now >= next_bookmark:
            await send("BOOKMARK", state.store.bookmark(rt))
            next_bookmark = now + state.bookmark_interval_seconds
        wake = min(deadline, next_bookmark if bookmarks else deadline, now + DISCONNECT_POLL_SECONDS)
        try:
            item = await asyncio.wait_for(watcher.queue.get(), timeout=max(0.0, wake - now))
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        if item is CLOSE:
            if watcher.closed_reason == "abort" and request.transport is not None:
                request.transport.abort()
            return
        await send(*item)


# ------------------------------------------------------------------------------ control endpoints


async def _control(request: web.Request) -> web.StreamResponse:
    """``/localapi/*``: fault injection, the request log, compaction and state, for tests."""
    state = request.app[STATE]
    what = request.match_info["what"]
    if what == "faults" and request.method == "POST":
        changes = await _read_json(request) or {}
        if not isinstance(changes, dict):
            raise bad_request("expected a JSON object")
        if changes.pop("reset", False):
            state.faults.reset()
        drop = changes.pop("drop_watches", False)
        state.faults.update(changes)
        if drop:
            state.store.close_watchers("abort" if drop == "abort" else "dropped")
        if state.faults.down:
            state.store.close_watchers("dropped")
    if what == "faults":
        return web.json_response(asdict(state.faults))
    if what == "requests":
        if request.method == "DELETE":
            state.requests.clear()
        return web.json_response(state.requests.to_json())
    if what == "compact" and request.method == "POST":
        body = await _read_json(request) or {}
        state.store.compact(int(body.get("keep", 0)) if isinstance(body, dict) else 0)
    if what in ("compact", "state"):
        store = state.store
        return web.json_response(
            {
                "resourceVersion": str(store.current_rv),
                "compactedResourceVersion": str(store.compacted_rv),
                "watchers": store.watcher_count,
            }
        )
    raise ApiError(404, "the server could not find the requested resource", "NotFound", {})


def make_app(state: ServerState) -> web.Application:
    """The aiohttp application; all state sits under :data:`STATE`."""
    app = web.Application(middlewares=[_middleware], client_max_size=8 * 1024 * 1024)
    app[STATE] = state
    app.router.add_route("*", "/localapi/{what}", _control)
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app
