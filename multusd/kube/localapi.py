"""A small in-memory Kubernetes API server, for ``multusd demo`` and the tests.

No kube-apiserver can run on the development machines, so this one speaks the part of the real
API that multusd, kubernetes_asyncio and kubectl use, over real HTTP (optionally TLS and a bearer
token): discovery (legacy and aggregated), GET/LIST/WATCH/POST/PUT/PATCH/DELETE on namespaces,
pods (+status), events (v1 and events.k8s.io/v1), daemonsets and NetworkAttachmentDefinitions,
with the wire semantics described in :mod:`multusd.kube.localapi_store` and
:mod:`multusd.kube.localapi_objects`.

Tests drive it in-process (:class:`LocalApi`: store helpers, :class:`Faults`, the request log)
or as a process (``multusd localapi``) through ``/localapi/*`` control endpoints:

- ``GET|POST /localapi/faults`` — read / change fault injection (JSON fields of :class:`Faults`,
  plus ``"drop_watches": true|"abort"`` and ``"reset": true``);
- ``GET|DELETE /localapi/requests`` — the request log (method, path, query, content type, status);
- ``POST /localapi/compact`` — ``{"keep": N}``: drop history so older RVs get 410;
- ``GET /localapi/state`` — current / compacted resourceVersion, open watches.

Control endpoints need the token like the API does, are never faulted and never logged.
What is *not* emulated: admission, defaulting beyond pod status, pod spec immutability, graceful
pod deletion (deletes are immediate unless finalizers are set), server-side apply, protobuf,
list-merge by key in strategic merge patches, per-resource unconditional-update rules.
client-go (kubectl) sends kubeconfig credentials only over TLS: use ``tls=True`` with a token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from multusd.kube.localapi_faults import Faults, RequestLog, RequestRecord
from multusd.kube.localapi_http import ServerState, make_app
from multusd.kube.localapi_objects import (
    ApiError,
    FieldSelector,
    JsonObj,
    LabelSelector,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from multusd.kube.localapi_resources import ResourceType, find_by_kind, find_by_name
from multusd.kube.localapi_store import DEFAULT_HISTORY_SIZE, Store

__all__ = ["ApiError", "Faults", "LocalApi", "RequestLog", "RequestRecord", "serve_forever"]

log = logging.getLogger(__name__)

DEFAULT_BOOKMARK_INTERVAL_SECONDS = 60.0
DEFAULT_WATCH_TIMEOUT_SECONDS = 1800.0
"""Used when a watch sets no ``timeoutSeconds`` (the real server picks 30 to 60 min)."""
SHUTDOWN_TIMEOUT_SECONDS = 2.0
OPENSSL_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class _Tls:
    context: ssl.SSLContext
    ca_pem: bytes


async def _openssl(*args: str, cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "openssl", *args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), OPENSSL_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"openssl {args[0]} timed out") from None
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {err.decode(errors='replace').strip()}")


async def make_tls(hosts: Iterable[str]) -> _Tls:
    """A throw-away CA and a server certificate for ``hosts``, made with the openssl CLI.

    The CLI (always on Debian) avoids a Python crypto dependency; keys never outlive the call
    on disk: the temp dir is removed once the context has loaded them.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("TLS needs the openssl command, which is not installed")
    sans = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"}
    for host in hosts:
        kind = "IP" if host.replace(".", "").isdigit() or ":" in host else "DNS"
        sans.add(f"{kind}:{host}")
    with tempfile.TemporaryDirectory(prefix="localapi-tls-") as tmp:
        d = Path(tmp)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        await _openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7", "-subj", "/CN=localapi-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
        await _openssl(
            "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localapi", cwd=d
        )
        (d / "ext.cnf").write_text(
            f"subjectAltName={','.join(sorted(sans))}\nextendedKeyUsage=serverAuth\n"
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        )
        await _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "7", "-extfile", "ext.cnf",
            cwd=d,
        )  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(d / "server.crt", d / "server.key")
        return _Tls(context, (d / "ca.crt").read_bytes())


class LocalApi:
    """The local API server, for tests and the demo.

    ``async with LocalApi() as api:`` serves on 127.0.0.1 and a free port; ``api.url``,
    ``api.write_kubeconfig(path)``. The store helpers (:meth:`create`, :meth:`get`,
    :meth:`list`, :meth:`patch`, :meth:`delete`, :meth:`compact`) act exactly like API calls
    (same RVs, same watch events) but without HTTP; they take a resource as a test would name
    it (``"pods"``, ``"net-attach-def"``, ``"events.events.k8s.io"``).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        tls: bool = False,
        history_size: int = DEFAULT_HISTORY_SIZE,
        bookmark_interval_seconds: float = DEFAULT_BOOKMARK_INTERVAL_SECONDS,
        default_watch_timeout_seconds: float = DEFAULT_WATCH_TIMEOUT_SECONDS,
        seed: int | None = None,
    ) -> None:
        self.token = token
        self.tls = tls
        self.store = Store(history_size=history_size, rng=random.Random(seed))
        self.faults = Faults()
        self.requests = RequestLog()
        self._state = ServerState(
            self.store,
            self.faults,
            self.requests,
            token,
            bookmark_interval_seconds,
            default_watch_timeout_seconds,
            random.Random(seed),
        )
        self._runner: web.AppRunner | None = None
        self._url = ""
        self.ca_pem: bytes | None = None

    @property
    def bookmark_interval_seconds(self) -> float:
        return self._state.bookmark_interval_seconds

    @bookmark_interval_seconds.setter
    def bookmark_interval_seconds(self, value: float) -> None:
        self._state.bookmark_interval_seconds = value

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen (port 0: a free one) and serve until :meth:`stop`."""
        if self._runner is not None:
            raise RuntimeError("LocalApi already started")
        ssl_context = None
        if self.tls:
            tls = await make_tls([host])
            ssl_context, self.ca_pem = tls.context, tls.ca_pem
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        bound_port = sock.getsockname()[1]
        authority = f"[{host}]:{bound_port}" if family == socket.AF_INET6 else f"{host}:{bound_port}"
        self._url = f"{'https' if self.tls else 'http'}://{authority}"
        self._state.server_address = authority
        runner = web.AppRunner(make_app(self._state), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        log.info("localapi serving on %s", self._url)

    @property
    def url(self) -> str:
        """``http(s)://host:port`` once started."""
        if not self._url:
            raise RuntimeError("LocalApi not started")
        return self._url

    async def stop(self) -> None:
        """Close every watch stream, then the listener; bounded by the shutdown timeout."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.store.close_watchers("stopping")
        await runner.cleanup()

    async def __aenter__(self) -> LocalApi:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def kubeconfig(self) -> JsonObj:
        """A kubeconfig (as a dict) for this server: token user, CA data when TLS."""
        cluster: JsonObj = {"server": self.url}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        user: JsonObj = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "localapi", "cluster": cluster}],
            "users": [{"name": "localapi", "user": user}],
            "contexts": [
                {"name": "localapi", "context": {"cluster": "localapi", "user": "localapi", "namespace": "default"}}
            ],
            "current-context": "localapi",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write :meth:`kubeconfig` (JSON, which is YAML) with mode 0600; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(json.dumps(self.kubeconfig(), indent=2) + "\n")
        tmp.replace(target)
        return target

    # ---------------------------------------------------------------- store helpers

    @staticmethod
    def resource(name: str) -> ResourceType:
        """Resolve ``pods`` / ``Pod`` / ``po`` / ``net-attach-def`` / ``events.events.k8s.io``."""
        rt = find_by_name(name)
        if rt is None:
            raise KeyError(f"unknown resource {name!r}")
        return rt

    def _ns(self, rt: ResourceType, namespace: str | None) -> str | None:
        return (namespace or "default") if rt.namespaced else None

    def create(self, obj: JsonObj) -> JsonObj:
        """Create from ``apiVersion``/``kind``; the object's status is kept (seed-like)."""
        rt = find_by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if rt is None:
            raise KeyError(f"unknown apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')}")
        ns = obj.get("metadata", {}).get("namespace") if rt.namespaced else None
        return self.store.create(rt, ns, obj, strategy=False)

    def get(self, resource: str, name: str, namespace: str | None = "default") -> JsonObj | None:
        """The object, or None."""
        rt = self.resource(resource)
        try:
            return self.store.get(rt, self._ns(rt, namespace), name)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def list(
        self, resource: str, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> list[JsonObj]:
        """Objects (all namespaces unless given), as the API would list them."""
        rt = self.resource(resource)
        listed = self.store.list(
            rt,
            namespace if rt.namespaced else None,
            labels=LabelSelector.parse(label_selector),
            fields=FieldSelector.parse(field_selector, rt.field_selectors),
        )
        items: list[JsonObj] = listed["items"]
        return items

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        namespace: str | None = "default",
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> JsonObj:
        """Patch like the API (``merge`` | ``strategic`` | ``json``)."""
        rt = self.resource(resource)
        fn = {"merge": merge_patch, "strategic": strategic_merge_patch, "json": json_patch}[patch_type]
        return self.store.patch(rt, self._ns(rt, namespace), name, lambda cur: fn(cur, patch), subresource=subresource)

    def replace(self, obj: JsonObj, subresource: str | None = None) -> JsonObj:
        """PUT semantics (stale ``resourceVersion`` → ApiError 409)."""
        rt = find_by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if rt is None:
            raise KeyError(f"unknown apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')}")
        meta = obj.get("metadata", {})
        return self.store.update(rt, self._ns(rt, meta.get("namespace")), meta["name"], obj, subresource=subresource)

    def delete(self, resource: str, name: str, namespace: str | None = "default") -> JsonObj | None:
        """Delete; None when it did not exist."""
        rt = self.resource(resource)
        try:
            return self.store.delete(rt, self._ns(rt, namespace), name)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def compact(self, keep: int = 0) -> None:
        """Forget history so that watches from older resourceVersions get 410."""
        self.store.compact(keep)

    def drop_watches(self, abort: bool = False) -> int:
        """End every open watch now (``abort``: reset the connection instead of a clean end)."""
        return self.store.close_watchers("abort" if abort else "dropped")

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion."""
        return self.store.current_rv

    def load_seed(self, documents: Iterable[Any]) -> int:
        """Create every object in parsed YAML/JSON documents (``*List`` kinds expanded)."""
        count = 0
        for doc in documents:
            if not doc:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"seed document is not an object: {doc!r:.80}")
            if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
                count += self.load_seed(doc["items"])
                continue
            self.create(doc)
            count += 1
        return count


def parse_query(query: str) -> dict[str, str]:
    """Query string → dict (last value wins); exported for tests reading the request log."""
    return dict(parse_qsl(query, keep_blank_values=True))


async def serve_forever(
    api: LocalApi, host: str, port: int, kubeconfig: Path | None, stop: asyncio.Event, announce: Callable[[str], None]
) -> None:
    """Run ``api`` until ``stop`` is set, announcing the kubeconfig path once serving.

    A kubeconfig written to a temp file (none given) is removed again on exit.
    """
    await api.start(host, port)
    temp = kubeconfig is None
    path = kubeconfig or Path(tempfile.mkstemp(prefix="multusd-localapi-", suffix=".kubeconfig")[1])
    try:
        api.write_kubeconfig(path)
        announce(str(path))
        await stop.wait()
    finally:
        await api.stop()
        if temp:
            with contextlib.suppress(OSError):
                path.unlink()
