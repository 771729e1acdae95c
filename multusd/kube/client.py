"""The Kubernetes API client: config and auth from kubernetes_asyncio, raw JSON over its transport.

This is the only module that imports kubernetes_asyncio. We use three pieces of it — the
``Configuration`` (host, CA, client cert, bearer token with a refresh hook), the config loaders
(``load_incluster_config`` with service-account token refresh, ``load_kube_config``) and the
``RESTClientObject`` transport (one aiohttp session, TLS context, ``read_bufsize=2**21``) — and none
of its models or generated API classes: every call here is one REST request with
``_preload_content=False`` whose JSON body we decode ourselves into plain dicts.

Import weight. ``import kubernetes_asyncio.<anything>`` normally runs the package ``__init__``,
which imports 65 API modules and all 767 model modules: ~72 MB RSS and ~0.4 s of CPU, more than
the daemon's whole memory budget (reference/python-costs.md §1.4). :func:`_library` therefore
registers the packages ``kubernetes_asyncio``, ``.client``, ``.client.models`` and ``.config`` as
*lazy* package objects before importing the five small submodules we need. A lazy package runs
its real ``__init__`` the first time anyone asks it for an attribute it does not have, so any other
use of kubernetes_asyncio in the process still works, only heavier; nothing breaks silently after
a library upgrade, it just gets fat again (a test watches ``kubernetes_asyncio.client.models``).
If the submodules cannot be imported this way at all, we fall back to the normal import.

Errors become the :mod:`multusd.kube.errors` tree. Every request carries a timeout. GETs and the
annotation merge-PATCH (idempotent) retry :class:`Unavailable` (5xx, 429, connection, timeout)
over a finite backoff tuple, honouring ``Retry-After``, then raise. A 401 re-reads the credentials
once (rotated service-account token, expired exec token) before giving up.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from .errors import KubeError, Unauthorized, Unavailable, kube_error_from_status
from .objects import ObjectList, RawObject, WatchEvent

log = logging.getLogger(__name__)

ErrorHook = Callable[[str, str, str], None]
"""``on_error(verb, resource, code)``: called once per failed API request (each retry attempt
counts). ``code`` is the HTTP status as text, or ``timeout`` / ``connection`` / ``bad_response``."""

DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_BACKOFF_SECONDS: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)
MAX_RETRY_AFTER_SECONDS = 10.0
DEFAULT_LIST_LIMIT = 500
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EVENT_MESSAGE_MAX_CHARS = 1024

NAD_API = "/apis/k8s.cni.cncf.io/v1"
NAD_RESOURCE = "network-attachment-definitions"

_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class ClientSettings:
    """How the client talks to the API server. Defaults suit a DaemonSet pod."""

    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    """Bound on every non-watch request, connect to last byte (kubernetes_asyncio has none)."""

    retry_backoff_seconds: tuple[float, ...] = DEFAULT_RETRY_BACKOFF_SECONDS
    """Sleeps between attempts of a retried call; its length is the number of retries."""

    max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS
    """Cap on a server's ``Retry-After`` so one answer cannot stall a CNI ADD for minutes."""

    event_component: str = "multus"
    """``source.component`` / ``reportingComponent`` of events (upstream's value)."""

    event_host: str = ""
    """``source.host`` / ``reportingInstance`` of events: the node name when known."""

    user_agent: str = "multusd"
    """User-Agent header, so API audit logs name us."""


@dataclass
class _Library:
    """The kubernetes_asyncio pieces we use, resolved once per process."""

    configuration_class: Any
    rest_client_class: Any
    load_incluster_config: Callable[..., None]
    lean: bool
    kube_config: ModuleType | None = field(default=None)


_LIBRARY: _Library | None = None
_PACKAGE = "kubernetes_asyncio"
_LAZY_PACKAGES = (_PACKAGE, f"{_PACKAGE}.client", f"{_PACKAGE}.client.models", f"{_PACKAGE}.config")


def _install_lazy_package(name: str) -> None:
    """Register ``name`` as a package whose ``__init__`` runs only on its first missing attribute."""
    parent_name, _, child = name.rpartition(".")
    if parent_name:
        parent = sys.modules[parent_name]
        search = [os.path.join(entry, child) for entry in parent.__path__]
    else:
        found = importlib.util.find_spec(name)
        if found is None or not found.submodule_search_locations:
            raise ImportError(f"{name} is not installed")
        search = list(found.submodule_search_locations)
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(search[0], "__init__.py"), submodule_search_locations=search
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot locate the package {name}")
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    loaded = False

    def complete(attr: str) -> Any:
        nonlocal loaded
        if loaded or attr.startswith("__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        loaded = True
        log.info("kubernetes_asyncio: %s.%s requested, importing the whole package", name, attr)
        loader.exec_module(module)
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    module.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules[name] = module
    if parent_name:
        setattr(sys.modules[parent_name], child, module)


def _import_lean() -> _Library:
    """Import the five submodules we need behind lazy packages (see the module docstring)."""
    installed: list[str] = []
    try:
        for name in _LAZY_PACKAGES:
            _install_lazy_package(name)
            installed.append(name)
        client_pkg = sys.modules[f"{_PACKAGE}.client"]
        configuration = importlib.import_module(f"{_PACKAGE}.client.configuration")
        setattr(client_pkg, "Configuration", configuration.Configuration)  # noqa: B010 (imports need it)
        rest = importlib.import_module(f"{_PACKAGE}.client.rest")
        incluster = importlib.import_module(f"{_PACKAGE}.config.incluster_config")
    except ImportError:
        for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        raise
    return _Library(configuration.Configuration, rest.RESTClientObject, incluster.load_incluster_config, True)


def _import_full() -> _Library:
    """The ordinary import, used when the package is already loaded or the lean path failed."""
    config = importlib.import_module(f"{_PACKAGE}.config")
    client = importlib.import_module(f"{_PACKAGE}.client")
    rest = importlib.import_module(f"{_PACKAGE}.client.rest")
    kube_config = importlib.import_module(f"{_PACKAGE}.config.kube_config")
    return _Library(client.Configuration, rest.RESTClientObject, config.load_incluster_config, False, kube_config)


def _library() -> _Library:
    """kubernetes_asyncio's config + transport, imported on first use, as lean as possible."""
    global _LIBRARY
    if _LIBRARY is None:
        if _PACKAGE in sys.modules:
            _LIBRARY = _import_full()
        else:
            try:
                _LIBRARY = _import_lean()
            except ImportError as exc:
                log.warning("kubernetes_asyncio: lean import failed (%s); importing the whole package", exc)
                _LIBRARY = _import_full()
    return _LIBRARY


def _kube_config_module() -> ModuleType:
    """``kubernetes_asyncio.config.kube_config``, needed only for kubeconfig files (not in-cluster).

    It imports ``ApiClient`` at module level; ``api_client`` in turn imports the models package,
    which is lazy here, so this costs ~2 MB instead of ~35 MB.
    """
    lib = _library()
    if lib.kube_config is None:
        api_client = importlib.import_module(f"{_PACKAGE}.client.api_client")
        if lib.lean:
            setattr(sys.modules[f"{_PACKAGE}.client"], "ApiClient", api_client.ApiClient)  # noqa: B010
        lib.kube_config = importlib.import_module(f"{_PACKAGE}.config.kube_config")
    return lib.kube_config


def _error_code(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else "connection"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds when given as a number (HTTP-date forms are ignored)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _decode_status(data: bytes) -> Mapping[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeClient:
    """The few Kubernetes REST calls multusd makes, raw JSON in and out.

    Build it with :meth:`in_cluster`, :meth:`from_kubeconfig` or :func:`make_kube_client` (inside
    a running event loop: the transport owns an aiohttp session) and :meth:`close` it when done,
    or use it as an async context manager.
    """

    def __init__(
        self,
        configuration: Any,
        *,
        settings: ClientSettings | None = None,
        on_error: ErrorHook | None = None,
        reload_credentials: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Wrap a kubernetes_asyncio ``Configuration``; ``reload_credentials`` runs after a 401."""
        self.settings = settings or ClientSettings()
        self._configuration = configuration
        self._rest = _library().rest_client_class(configuration)
        self._base = str(configuration.host).rstrip("/")
        self._on_error = on_error
        self._reload_credentials = reload_credentials
        self._closed = False

    # -- construction -------------------------------------------------------------------------

    @classmethod
    async def in_cluster(
        cls,
        *,
        settings: ClientSettings | None = None,
        on_error: ErrorHook | None = None,
        service_account_dir: str = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Service-account config: ``KUBERNETES_SERVICE_HOST/PORT``, ``token`` and ``ca.crt``.

        The token is re-read at most every minute (kubernetes_asyncio's refresh hook) and at once
        after a 401, so projected-token rotation never needs a restart.
        """
        lib = _library()
        configuration = lib.configuration_class()
        env = dict(os.environ if environ is None else environ)

        def load() -> None:
            lib.load_incluster_config(
                client_configuration=configuration,
                token_filename=os.path.join(service_account_dir, "token"),
                cert_filename=os.path.join(service_account_dir, "ca.crt"),
                environ=env,
            )

        try:
            load()
        except Exception as exc:  # ConfigException, OSError
            raise KubeError(f"in-cluster Kubernetes config: {exc}") from exc

        async def reload() -> None:
            load()

        return cls(configuration, settings=settings, on_error=on_error, reload_credentials=reload)

    @classmethod
    async def from_kubeconfig(
        cls,
        path: str | os.PathLike[str],
        *,
        context: str | None = None,
        settings: ClientSettings | None = None,
        on_error: ErrorHook | None = None,
    ) -> Self:
        """Config from a kubeconfig file (client certs, token, exec plugin); the file is never written."""
        kube_config = _kube_config_module()
        configuration = _library().configuration_class()
        try:
            loader = await kube_config.load_kube_config(
                config_file=os.fspath(path),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except Exception as exc:  # ConfigException, OSError, yaml errors
            raise KubeError(f"kubeconfig {os.fspath(path)}: {exc}") from exc

        async def reload() -> None:
            await loader.load_and_set(configuration)

        return cls(configuration, settings=settings, on_error=on_error, reload_credentials=reload)

    @property
    def host(self) -> str:
        """The API server URL requests go to."""
        return self._base

    async def close(self) -> None:
        """Release the HTTP session (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._rest.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- pods ---------------------------------------------------------------------------------

    async def get_pod(
        self, namespace: str, name: str, *, retry: bool = True, timeout_seconds: float | None = None
    ) -> RawObject:
        """GET one pod (raw). ``retry=False`` / a short timeout suit the ADD path's live fallback."""
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"
        return await self._call(
            "get", "pods", "GET", path, what=f"GET pod {namespace}/{name}", retry=retry, timeout=timeout_seconds
        )

    async def list_pods(
        self, node_name: str, resource_version: str | None = None, limit: int = DEFAULT_LIST_LIMIT
    ) -> ObjectList:
        """LIST the pods bound to ``node_name`` (all pods when empty), every page merged."""
        return await self._list("pods", "/api/v1/pods", _node_selector(node_name), resource_version, limit)

    def watch_pods(self, node_name: str, resource_version: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]:
        """WATCH the pods bound to ``node_name`` from ``resource_version``, with bookmarks."""
        return self._watch("pods", "/api/v1/pods", _node_selector(node_name), resource_version, timeout_seconds)

    async def patch_pod_status_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> RawObject:
        """Set (or, with ``None``, remove) pod annotations with ONE merge-PATCH on ``pods/status``.

        Only the named keys change; a merge patch cannot conflict and is idempotent, so it is
        retried. RBAC: ``pods/status`` ``patch``.
        """
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/status"
        body = {"metadata": {"annotations": dict(annotations)}}
        return await self._call(
            "patch",
            "pods/status",
            "PATCH",
            path,
            what=f"PATCH pod status {namespace}/{name}",
            body=body,
            content_type=_MERGE_PATCH,
            retry=True,
        )

    # -- network-attachment-definitions -------------------------------------------------------

    async def get_nad(self, namespace: str, name: str, *, retry: bool = True) -> RawObject:
        """GET one NetworkAttachmentDefinition (raw)."""
        path = f"{NAD_API}/namespaces/{quote(namespace)}/{NAD_RESOURCE}/{quote(name)}"
        return await self._call("get", NAD_RESOURCE, "GET", path, what=f"GET nad {namespace}/{name}", retry=retry)

    async def list_nads(self, resource_version: str | None = None, limit: int = DEFAULT_LIST_LIMIT) -> ObjectList:
        """LIST NetworkAttachmentDefinitions in all namespaces, every page merged."""
        return await self._list(NAD_RESOURCE, f"{NAD_API}/{NAD_RESOURCE}", {}, resource_version, limit)

    def watch_nads(self, resource_version: str, timeout_seconds: int) -> AsyncIterator[WatchEvent]:
        """WATCH NetworkAttachmentDefinitions in all namespaces from ``resource_version``."""
        return self._watch(NAD_RESOURCE, f"{NAD_API}/{NAD_RESOURCE}", {}, resource_version, timeout_seconds)

    # -- events, daemonsets -------------------------------------------------------------------

    async def create_event(
        self,
        namespace: str,
        pod_name: str,
        *,
        uid: str,
        reason: str,
        message: str,
        event_type: str = "Normal",
    ) -> bool:
        """POST a core/v1 Event on a pod. Best effort: failures are logged, never raised.

        The name is ``<pod>.<hex nanoseconds>`` as client-go's recorder makes it, so a retry after
        a lost answer gets 409 AlreadyExists, which counts as success. Returns True if stored.
        """
        now = _now_rfc3339()
        settings = self.settings
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod_name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod_name, "uid": uid},
            "reason": reason,
            "message": message[:EVENT_MESSAGE_MAX_CHARS],
            "type": event_type,
            "source": {"component": settings.event_component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": settings.event_component,
            "reportingInstance": settings.event_host,
        }
        if settings.event_host:
            body["source"]["host"] = settings.event_host
        what = f"POST event {reason} on pod {namespace}/{pod_name}"
        try:
            await self._call(
                "create",
                "events",
                "POST",
                f"/api/v1/namespaces/{quote(namespace)}/events",
                what=what,
                body=body,
                retry=True,
            )
        except KubeError as exc:
            if exc.code == 409:
                return True
            log.warning("%s failed: %s", what, exc)
            return False
        return True

    async def get_daemonset(self, namespace: str, name: str) -> RawObject:
        """GET a DaemonSet (raw): is our own DaemonSet being deleted (``deletionTimestamp``)?"""
        path = f"/apis/apps/v1/namespaces/{quote(namespace)}/daemonsets/{quote(name)}"
        return await self._call("get", "daemonsets", "GET", path, what=f"GET daemonset {namespace}/{name}", retry=True)

    # -- the request machinery ----------------------------------------------------------------

    def _count(self, verb: str, resource: str, code: str) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(verb, resource, code)
        except Exception:  # a metrics bug must never fail an API call
            log.exception("on_error hook failed")

    async def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": _JSON, "Content-Type": content_type, "User-Agent": self.settings.user_agent}
        token = await self._configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = str(token)
        return headers

    async def _call(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        what: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = _JSON,
        retry: bool = False,
        timeout: float | None = None,
    ) -> RawObject:
        """One logical call: a request, retried on Unavailable over the backoff tuple when asked."""
        delays = self.settings.retry_backoff_seconds if retry else ()
        attempts = len(delays) + 1
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            try:
                return await self._send(verb, resource, method, path, what, query, body, content_type, timeout)
            except Unauthorized:
                if reauthenticated or self._reload_credentials is None:
                    raise
                reauthenticated = True
                attempt -= 1
                log.info("%s: 401, re-reading credentials and trying once more", what)
                try:
                    await self._reload_credentials()
                except Exception as exc:
                    raise Unauthorized(f"{what}: re-reading credentials failed: {exc}", code=401) from exc
            except Unavailable as exc:
                if attempt >= attempts:
                    if attempts > 1:
                        log.warning("%s failed (attempt #%d/%d): %s; giving up", what, attempt, attempts, exc)
                    raise
                delay = delays[attempt - 1]
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.settings.max_retry_after_seconds))
                log.warning("%s failed (attempt #%d/%d): %s; retrying in %.2fs", what, attempt, attempts, exc, delay)
                await asyncio.sleep(delay)

    async def _send(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        what: str,
        query: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        content_type: str,
        timeout: float | None,
    ) -> RawObject:
        """One HTTP request with a total timeout; the body decoded, errors mapped to KubeError."""
        headers = await self._headers(content_type)
        try:
            response = await self._rest.request(
                method,
                self._base + path,
                query_params=dict(query) if query else None,
                headers=headers,
                body=dict(body) if body is not None else None,
                _preload_content=False,
                _request_timeout=timeout or self.settings.request_timeout_seconds,
            )
            try:
                data = await response.read()
            finally:
                response.release()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._count(verb, resource, _error_code(exc))
            raise Unavailable(f"{what}: {_describe(exc)}", reason=type(exc).__name__) from exc
        if not 200 <= response.status < 300:
            self._count(verb, resource, str(response.status))
            raise kube_error_from_status(
                response.status, _decode_status(data), what=what, retry_after=_retry_after(response.headers)
            )
        try:
            decoded = json.loads(data)
        except ValueError as exc:
            self._count(verb, resource, "bad_response")
            raise KubeError(f"{what}: response is not JSON: {exc}", code=response.status) from exc
        if not isinstance(decoded, dict):
            self._count(verb, resource, "bad_response")
            raise KubeError(f"{what}: response is not a JSON object", code=response.status)
        return decoded

    async def _list(
        self,
        resource: str,
        path: str,
        selector: Mapping[str, str],
        resource_version: str | None,
        limit: int,
    ) -> ObjectList:
        """LIST with pagination: follow ``continue`` until the last page; RV from the last page."""
        items: list[RawObject] = []
        token = ""
        while True:
            query = dict(selector)
            if limit > 0:
                query["limit"] = str(limit)
            if token:
                query["continue"] = token
            elif resource_version is not None:
                query["resourceVersion"] = resource_version
            page = await self._call("list", resource, "GET", path, what=f"LIST {resource}", query=query, retry=True)
            page_items = page.get("items")
            if isinstance(page_items, list):
                items.extend(item for item in page_items if isinstance(item, dict))
            meta = page.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            token = str(meta.get("continue") or "")
            if not token:
                rv = meta.get("resourceVersion")
                return {"metadata": {"resourceVersion": rv} if isinstance(rv, str) else {}, "items": items}

    async def _watch(
        self,
        resource: str,
        path: str,
        selector: Mapping[str, str],
        resource_version: str,
        timeout_seconds: int,
    ) -> AsyncIterator[WatchEvent]:
        """One watch stream, yielded event by event; ends when the server closes it.

        ``ERROR`` events are yielded, not raised: the cache decides (410 → relist). A non-200
        answer raises its KubeError; a broken or stalled stream raises :class:`Unavailable`. The
        read bound is ``timeout_seconds`` plus the request timeout, so a server that forgets to end
        the stream cannot hold it forever; the cache applies its own, tighter inactivity bound.
        """
        what = f"WATCH {resource}"
        query = dict(selector)
        query.update(
            watch="true",
            allowWatchBookmarks="true",
            resourceVersion=resource_version,
            timeoutSeconds=str(timeout_seconds),
        )
        connect = self.settings.request_timeout_seconds
        client_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=timeout_seconds + connect
        )
        headers = await self._headers(_JSON)
        try:
            response = await self._rest.request(
                "GET",
                self._base + path,
                query_params=query,
                headers=headers,
                _preload_content=False,
                _request_timeout=client_timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._count("watch", resource, _error_code(exc))
            raise Unavailable(f"{what}: {_describe(exc)}", reason=type(exc).__name__) from exc
        try:
            if response.status != 200:
                try:
                    data = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    data = b""
                self._count("watch", resource, str(response.status))
                raise kube_error_from_status(
                    response.status, _decode_status(data), what=what, retry_after=_retry_after(response.headers)
                )
            while True:
                try:
                    line = await response.content.readline()
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    self._count("watch", resource, _error_code(exc))
                    raise Unavailable(f"{what}: stream broke: {_describe(exc)}", reason=type(exc).__name__) from exc
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    self._count("watch", resource, "bad_response")
                    raise Unavailable(f"{what}: malformed event line: {exc}", reason="BadResponse") from exc
                if (
                    not isinstance(event, dict)
                    or not isinstance(event.get("type"), str)
                    or not isinstance(event.get("object"), dict)
                ):
                    log.warning("%s: skipping a malformed event: %.200s", what, line)
                    continue
                yield {"type": event["type"], "object": event["object"]}
        finally:
            response.close()


def _node_selector(node_name: str) -> dict[str, str]:
    return {"fieldSelector": f"spec.nodeName={node_name}"} if node_name else {}


async def make_kube_client(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    settings: ClientSettings | None = None,
    on_error: ErrorHook | None = None,
) -> KubeClient:
    """A client from ``kubeconfig`` when given (non-empty), else the in-cluster service account."""
    if kubeconfig:
        return await KubeClient.from_kubeconfig(kubeconfig, context=context, settings=settings, on_error=on_error)
    return await KubeClient.in_cluster(settings=settings, on_error=on_error)
