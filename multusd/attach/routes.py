"""Default routes and interface checks inside a pod's network namespace (upstream step 11a, 13).

Two halves, one module, because they implement one feature (the ``default-route`` key of a
network selection element) and must agree on what "a default route" is:

- **netlink** (async): :func:`interface_exists` / :func:`validate_ifname` (upstream
  ``validateIfName``), :func:`delete_default_routes` (``DeleteDefaultGW``),
  :func:`add_default_routes` (``SetDefaultGW``) and :func:`apply_gateway_request`, which runs
  both as upstream's step 13 does;
- **pure** result edits: the same change applied to the result a delegate returned, on our
  :class:`~multusd.cni.types.Result` model (:func:`without_default_gw`, :func:`with_default_gw`)
  and on raw cached-result JSON of every version (:func:`delete_default_gw`,
  :func:`add_default_gw`, ``DeleteDefaultGWCache`` / ``AddDefaultGWCache``) — libcni's cache holds
  the plugin's own result JSON, and it must stay byte-compatible with what the Go image reads;
  :func:`edit_cached_gateways` applies them to a :class:`~multusd.cni.cache.ResultCache` entry.
  :func:`gateway_actions` turns a delegate's filter flags and gateway list into what to do.

**Entering the namespace.** pyroute2 0.9.7's ``AsyncIPRoute(netns=path)`` forks a helper
process on *every* open (``pyroute2.netns.create_socket`` → ``ChildProcess``): ~7 ms and an
RSS-proportional ``fork()`` in a multi-threaded daemon, and with its default flags it *creates* a
missing namespace. Instead a fresh thread opens the path read-only (never creating anything),
``setns(2)``-es itself into it, does its one namespace-bound step, switches back and exits:

- for the routes, it creates the rtnetlink socket, which stays bound to the pod's namespace for
  its whole life; pyroute2 then drives it on the event loop (``AsyncIPRoute(use_socket=sock)``);
- for :func:`interface_exists`, it asks the kernel for the link's index (``SIOCGIFINDEX``).

No fork, ~1 ms per call, and the event-loop thread never changes namespace. A fresh thread per
call (not a pool) is the ``ns.Do`` rule of containernetworking/plugins: if switching back ever
failed, the thread in the wrong namespace ends instead of running someone else's work.

pyroute2 costs ~10 MB RSS and ~70-100 ms to import, so it is imported lazily, by the worker
thread of the first route operation (the event loop keeps serving meanwhile). validateIfName runs
on every ADD, which is why it uses the ioctl: a daemon whose pods never ask for a
``default-route`` never loads pyroute2.

What counts as a default route, everywhere here: a route whose destination has prefix length 0
(netlink: ``dst_len == 0``; JSON: a ``dst`` that parses to ``0.0.0.0/0`` or ``::/0`` in any
spelling). Upstream compares the JSON string with ``"::0/0"`` only and misses the ``::/0`` most
plugins write (quirk Q10); we fix that. Routes we *add* to a cached result use ``::/0``, the
spelling Go's own ``net.IPNet`` prints and libcni re-reads unchanged; upstream writes ``"::0/0"``
(same network).
"""

from __future__ import annotations

import asyncio
import copy
import errno
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface, ip_network
from typing import Any, Final, NamedTuple, TypeVar

from multusd.cni.cache import ResultCache
from multusd.cni.errors import CniCode, CniError
from multusd.cni.types import Result, Route, parse_version

__all__ = [
    "GatewayActions",
    "NetnsError",
    "NetnsNotFoundError",
    "add_default_gw",
    "add_default_routes",
    "apply_gateway_request",
    "delete_default_gw",
    "delete_default_routes",
    "edit_cached_gateways",
    "filter_default_routes",
    "gateway_actions",
    "interface_exists",
    "validate_ifname",
    "with_default_gw",
    "without_default_gw",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DELETE_PREFIX: Final = "error deleting default gateway"
SET_PREFIX: Final = "error setting default gateway"

_CLONE_NEWNET: Final = 0x40000000
_RT_TABLE_MAIN: Final = 254
_IFNAMSIZ: Final = 16
_SIOCGIFINDEX: Final = 0x8933
#: What ``ip route add`` and Go's netlink library (upstream) mark routes with; pyroute2 says "static".
_RTPROT_BOOT: Final = 3
#: Route attributes that identify one route, so a delete removes exactly the route that was dumped.
_ROUTE_IDENTITY_NLAS: Final = ("RTA_TABLE", "RTA_GATEWAY", "RTA_PRIORITY", "RTA_PREFSRC")
_DEFAULT_DST: Final = {4: "0.0.0.0/0", 6: "::/0"}
_LEGACY_KEYS: Final = {4: "ip4", 6: "ip6"}
#: Result versions whose routes sit in ``ip4.routes`` / ``ip6.routes`` ("" = no cniVersion).
_LEGACY_VERSIONS: Final = frozenset({"", "0.1.0", "0.2.0"})
_TOPLEVEL_0X_VERSIONS: Final = frozenset({"0.3.0", "0.3.1", "0.4.0"})


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class NetnsError(CniError):
    """The path does not lead to a usable network namespace (spec code 8, ``ErrInvalidNetNS``).

    The message is upstream's ``no net namespace <path> found: <why>``; ``path`` is kept so a
    caller can log or compare it.
    """

    def __init__(self, path: str, why: str) -> None:
        super().__init__(CniCode.INVALID_NETNS, f"no net namespace {path} found: {why}")
        self.path = path
        self.why = why

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.why))


class NetnsNotFoundError(NetnsError):
    """Nothing exists at the path (containernetworking's ``NSPathNotExistErr``).

    Distinct because a DEL may treat an already-removed namespace as "nothing left to undo".
    """


# --------------------------------------------------------------------------------------------
# Gateway decision (upstream step 13, "per delegate")
# --------------------------------------------------------------------------------------------


class GatewayActions(NamedTuple):
    """What step 13 does to one delegate's interface and its cached result."""

    delete_v4: bool
    delete_v6: bool
    add: tuple[str, ...]


def gateway_actions(filter_v4: bool, filter_v6: bool, gateways: tuple[str, ...] | None) -> GatewayActions:
    """Upstream's per-delegate rule, exactly.

    ``filter_v4``/``filter_v6`` are the delegate's ``IsFilterV4Gateway``/``IsFilterV6Gateway``
    (true only when some delegate of the pod has a ``default-route``, see CheckGatewayConfig);
    ``gateways`` is its own ``default-route`` list (None: the key was absent).

    - delete a family's defaults when it is filtered, or when it is not but the delegate asks for
      gateways (they replace what the plugin set up);
    - add every listed gateway when either family is unfiltered and the list is non-empty.

    So ``default-route: []`` adds nothing, and with every flag set (Q11: what ``[]`` on any
    delegate does to all of them) each interface only loses its default routes. The caller
    applies this only to delegates whose result has interfaces or IPs.
    """
    wanted = bool(gateways)
    delete_v4 = filter_v4 or wanted
    delete_v6 = filter_v6 or wanted
    add = tuple(gateways or ()) if wanted and (not filter_v4 or not filter_v6) else ()
    return GatewayActions(delete_v4, delete_v6, add)


# --------------------------------------------------------------------------------------------
# Pure edits: the Result model
# --------------------------------------------------------------------------------------------


def without_default_gw(result: Result, *, v4: bool, v6: bool) -> Result:
    """``result`` minus its default routes of the chosen families (any gateway, any spelling)."""
    families = _families(v4, v6)
    routes = tuple(r for r in result.routes if not (r.dst.prefixlen == 0 and r.dst.version in families))
    return replace(result, routes=routes)


def with_default_gw(result: Result, gateways: Iterable[str]) -> Result:
    """``result`` plus one default route per gateway, in order. A bad gateway raises CniError.

    In a 0.1.0/0.2.0 result a route is only written out when an address of its family exists
    (those versions nest routes in ``ip4``/``ip6``), as libcni's own conversion behaves.
    """
    added = []
    for gw in gateways:
        addr = _parse_gateway(gw, SET_PREFIX)
        added.append(Route(dst=ip_network(_DEFAULT_DST[addr.version]), gw=addr))
    return replace(result, routes=result.routes + tuple(added))


# --------------------------------------------------------------------------------------------
# Pure edits: raw cached-result JSON of any version
# --------------------------------------------------------------------------------------------


def filter_default_routes(routes: Sequence[Any], *, v4: bool, v6: bool) -> list[Any]:
    """``routes`` (raw JSON route objects) without the default routes of the chosen families.

    Items that are not route objects or whose ``dst`` does not parse are kept as they are: this
    edits a file another program wrote, and must not lose what it does not understand.
    """
    families = _families(v4, v6)
    return [route for route in routes if _default_route_family(route) not in families]


def delete_default_gw(result_json: Mapping[str, Any], *, v4: bool, v6: bool) -> dict[str, Any]:
    """A copy of a raw result without its default routes of the chosen families.

    As upstream ``DeleteDefaultGWCache`` (vectors V93 to V95, V98): a ``routes`` list that becomes
    empty is removed; 0.1.0/0.2.0 (and version-less) results are edited in ``ip4.routes`` and
    ``ip6.routes``. Both ``::/0`` and ``::0/0`` count as the IPv6 default (Q10 fixed). An
    unsupported version raises ``CniError`` ``not supported version: <v>``.
    """
    obj = _copy_result(result_json)
    if _is_legacy(obj):
        for key in _LEGACY_KEYS.values():
            ipc = obj.get(key)
            if isinstance(ipc, dict):
                _filter_routes_key(ipc, v4=v4, v6=v6)
    else:
        _filter_routes_key(obj, v4=v4, v6=v6)
    return obj


def add_default_gw(result_json: Mapping[str, Any], gateways: Iterable[str]) -> dict[str, Any]:
    """A copy of a raw result with ``{"dst": "0.0.0.0/0" | "::/0", "gw": <gw>}`` appended per gateway.

    As upstream ``AddDefaultGWCache`` (V95 to V98), except that IPv6 routes use ``::/0`` (see the
    module docstring). 0.1.0/0.2.0 results get the route in ``ip4.routes``/``ip6.routes``; when the
    result has no ``ip4``/``ip6`` of that family the route is left out, since those versions
    cannot hold a route without an address. Unsupported version → ``not supported version: <v>``.
    """
    obj = _copy_result(result_json)
    legacy = _is_legacy(obj)
    for gw in gateways:
        addr = _parse_gateway(gw, SET_PREFIX)
        route = {"dst": _DEFAULT_DST[addr.version], "gw": str(addr)}
        target = obj.get(_LEGACY_KEYS[addr.version]) if legacy else obj
        if not isinstance(target, dict):
            log.debug("result has no %s to carry a default route via %s; not added", _LEGACY_KEYS[addr.version], addr)
            continue
        routes = target.get("routes")
        target["routes"] = [*routes, route] if isinstance(routes, list) else [route]
    return obj


def edit_cached_gateways(
    cache: ResultCache,
    network_name: str,
    container_id: str,
    ifname: str,
    *,
    delete_v4: bool,
    delete_v6: bool,
    add: Sequence[str],
) -> None:
    """Apply step 13's edits to the libcni cache entry of one attachment (sync: it fsyncs).

    The cached result is what DEL/CHECK hand plugins as ``prevResult``, so it must describe the
    routes the pod really has after the edit. Errors carry upstream's ``… in cache`` prefixes.
    """
    if not (delete_v4 or delete_v6 or add):
        return
    prefix = f"{DELETE_PREFIX} in cache" if delete_v4 or delete_v6 else f"{SET_PREFIX} in cache"
    try:
        entry = cache.load(network_name, container_id, ifname)
    except CniError as exc:
        raise CniError(exc.code, f"{prefix}: {exc.msg}", exc.details) from exc
    if entry is None or entry.result is None or entry.legacy:
        what = "a pre-cniCacheV1 entry" if entry is not None and entry.legacy else "no cached result"
        raise CniError(CniCode.IO_FAILURE, f"{prefix}: {what} for {network_name}/{container_id}/{ifname}")
    result = dict(entry.result)
    if delete_v4 or delete_v6:
        result = _with_prefix(DELETE_PREFIX + " in cache", delete_default_gw, result, v4=delete_v4, v6=delete_v6)
    if add:
        result = _with_prefix(SET_PREFIX + " in cache", add_default_gw, result, add)
    cache.save(replace(entry, result=result))


def _with_prefix(prefix: str, edit: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        out: dict[str, Any] = edit(*args, **kwargs)
    except CniError as exc:
        raise CniError(exc.code, f"{prefix}: {exc.msg}", exc.details) from exc
    return out


def _families(v4: bool, v6: bool) -> frozenset[int]:
    return frozenset(f for f, on in ((4, v4), (6, v6)) if on)


def _default_route_family(route: Any) -> int | None:
    """4 or 6 when ``route`` is a default route of that family, else None."""
    if not isinstance(route, Mapping):
        return None
    dst = route.get("dst")
    if not isinstance(dst, str) or "/" not in dst:
        return None
    try:
        net = ip_interface(dst).network
    except ValueError:
        return None
    return net.version if net.prefixlen == 0 else None


def _filter_routes_key(obj: dict[str, Any], *, v4: bool, v6: bool) -> None:
    routes = obj.get("routes")
    if not isinstance(routes, list):
        return
    kept = filter_default_routes(routes, v4=v4, v6=v6)
    if kept:
        obj["routes"] = kept
    else:
        del obj["routes"]


def _copy_result(result_json: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(result_json, Mapping):
        raise CniError(CniCode.DECODING_FAILURE, f"cached result is not a JSON object: {type(result_json).__name__}")
    return copy.deepcopy(dict(result_json))


def _is_legacy(obj: Mapping[str, Any]) -> bool:
    """True for 0.1.0/0.2.0-shaped results; raises for versions upstream does not handle."""
    version = obj.get("cniVersion", "")
    if version is None:
        version = ""
    if isinstance(version, str):
        if version in _LEGACY_VERSIONS:
            return True
        if version in _TOPLEVEL_0X_VERSIONS:
            return False
        try:
            if parse_version(version) >= (1, 0, 0):
                return False
        except CniError:
            pass
    raise CniError(CniCode.INCOMPATIBLE_CNI_VERSION, f"not supported version: {version}")


def _parse_gateway(gw: str, prefix: str) -> IPv4Address | IPv6Address:
    """A gateway as an address; an IPv4-mapped IPv6 one is IPv4, as Go's ``To4()`` reads it."""
    try:
        addr = ip_address(gw)
    except ValueError:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"{prefix}: invalid gateway address {gw!r}") from None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# --------------------------------------------------------------------------------------------
# Netlink in the pod namespace
# --------------------------------------------------------------------------------------------


async def interface_exists(netns_path: str, ifname: str) -> bool:
    """Whether a link named ``ifname`` exists in the namespace at ``netns_path``.

    Raises :class:`NetnsNotFoundError` / :class:`NetnsError` (code 8) for a bad path — and never
    creates a namespace. A name the kernel refuses to look up (too long) does not exist.
    """
    return await _in_netns(netns_path, lambda: _link_index_here(ifname)) is not None


async def validate_ifname(netns_path: str, ifname: str) -> None:
    """Upstream ``validateIfName``: the name a delegate is about to create must be free.

    Errors read as upstream's (the caller prefixes ``DelegateAdd: cannot set …``): a bad path is
    ``validateIfName: no net namespace <ns> found: …`` with code 8, a taken name
    ``validateIfName: interface name <if> already exists`` (999, as skel reports plain errors).
    """
    try:
        exists = await interface_exists(netns_path, ifname)
    except NetnsError as exc:
        raise CniError(exc.code, f"validateIfName: {exc.msg}") from exc
    if exists:
        raise CniError(CniCode.INTERNAL, f"validateIfName: interface name {ifname} already exists")


async def delete_default_routes(netns_path: str, ifname: str) -> int:
    """Delete every default route (any family) whose output interface is ``ifname``.

    Upstream ``DeleteDefaultGW``: main-table routes with no destination on that link, IPv4 and
    IPv6 alike; multipath routes (no single output link) are left alone. Returns how many were
    deleted. Errors: ``CniError`` ``error deleting default gateway on <if>: …`` (code 8 for a
    bad namespace).
    """
    async with _rtnl(netns_path, f"{DELETE_PREFIX} on {ifname}") as ipr:
        return await _delete_defaults(ipr, ifname)


async def add_default_routes(netns_path: str, ifname: str, gateways: Sequence[str]) -> None:
    """Add one default route per gateway via ``ifname``; an identical existing route is fine.

    Upstream ``SetDefaultGW``. Errors: ``CniError`` ``error setting default gateway on <if>: …``.
    """
    addrs = [_parse_gateway(gw, f"{SET_PREFIX} on {ifname}") for gw in gateways]
    if not addrs:
        return
    async with _rtnl(netns_path, f"{SET_PREFIX} on {ifname}") as ipr:
        await _add_defaults(ipr, ifname, addrs)


async def apply_gateway_request(
    netns_path: str, ifname: str, *, delete_v4: bool, delete_v6: bool, gateways: Sequence[str]
) -> None:
    """Step 13's netlink part for one interface, over one netlink socket.

    Takes :func:`gateway_actions`' output: when either family is to lose its defaults, every
    default route on the link goes (all families, as upstream), then each of ``gateways`` is
    added. The cache edit is :func:`edit_cached_gateways`, done by the caller.
    """
    addrs = [_parse_gateway(gw, f"{SET_PREFIX} on {ifname}") for gw in gateways]
    if not (delete_v4 or delete_v6 or addrs):
        return
    prefix = DELETE_PREFIX if delete_v4 or delete_v6 else SET_PREFIX
    async with _rtnl(netns_path, f"{prefix} on {ifname}") as ipr:
        if delete_v4 or delete_v6:
            await _delete_defaults(ipr, ifname)
        if addrs:
            await _add_defaults(ipr, ifname, addrs)


async def _delete_defaults(ipr: Any, ifname: str) -> int:
    from pyroute2.netlink.exceptions import NetlinkError

    index = await _require_link(ipr, ifname, DELETE_PREFIX)
    doomed = []
    for family in (socket.AF_INET, socket.AF_INET6):
        async for msg in await ipr.route("dump", family=family):
            if msg.get("dst_len") != 0 or msg.get_attr("RTA_OIF") != index:
                continue
            table = msg.get_attr("RTA_TABLE") or msg.get("table")
            if table != _RT_TABLE_MAIN:
                continue
            doomed.append(msg)
    deleted = 0
    for msg in doomed:
        try:
            await ipr.route("del", **_route_identity(msg, index))
        except NetlinkError as exc:
            if exc.code in (errno.ESRCH, errno.ENOENT):  # gone meanwhile: the goal is reached
                continue
            raise CniError(CniCode.INTERNAL, f"{DELETE_PREFIX} on {ifname}: {_describe(exc)}") from exc
        deleted += 1
    return deleted


def _route_identity(msg: Any, index: int) -> dict[str, Any]:
    """Fields naming exactly the dumped route, so the kernel deletes that one and no other."""
    spec: dict[str, Any] = {
        "family": msg["family"],
        "dst_len": 0,
        "tos": msg.get("tos", 0),
        "proto": msg.get("proto"),
        "scope": msg.get("scope"),
        "type": msg.get("type"),
        "oif": index,
    }
    for nla in _ROUTE_IDENTITY_NLAS:
        value = msg.get_attr(nla)
        if value is not None:
            spec[nla[4:].lower()] = value
    return spec


async def _add_defaults(ipr: Any, ifname: str, addrs: Sequence[IPv4Address | IPv6Address]) -> None:
    from pyroute2.netlink.exceptions import NetlinkError

    index = await _require_link(ipr, ifname, SET_PREFIX)
    for addr in addrs:
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        try:
            await ipr.route(
                "add", family=family, dst_len=0, gateway=str(addr), oif=index, table=_RT_TABLE_MAIN, proto=_RTPROT_BOOT
            )
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                continue
            raise CniError(CniCode.INTERNAL, f"{SET_PREFIX} on {ifname} via {addr}: {_describe(exc)}") from exc


async def _link_index(ipr: Any, ifname: str) -> int | None:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        links = await ipr.link("get", ifname=ifname)
    except NetlinkError as exc:
        # ENODEV: no such link; EINVAL/ERANGE: a name no link can have (too long, …).
        if exc.code in (errno.ENODEV, errno.EINVAL, errno.ERANGE):
            return None
        raise CniError(CniCode.INTERNAL, f"cannot look up interface {ifname}: {_describe(exc)}") from exc
    for link in links:
        return int(link["index"])
    return None


async def _require_link(ipr: Any, ifname: str, prefix: str) -> int:
    index = await _link_index(ipr, ifname)
    if index is None:
        raise CniError(CniCode.INTERNAL, f"{prefix} on {ifname}: link not found")
    return index


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        return f"{os.strerror(code)} (errno {code})"
    return str(exc)


@asynccontextmanager
async def _rtnl(netns_path: str, error_prefix: str = "") -> AsyncIterator[Any]:
    """An ``AsyncIPRoute`` whose socket lives in the namespace at ``netns_path``.

    With ``error_prefix``, a bad namespace is reported as ``<prefix>: no net namespace …``
    (still code 8); without it the :class:`NetnsError` itself propagates.
    """
    try:
        iproute_class, sock = await _netlink_socket(netns_path)
    except NetnsError as exc:
        if not error_prefix:
            raise
        raise CniError(exc.code, f"{error_prefix}: {exc.msg}") from exc
    try:
        async with iproute_class(use_socket=sock) as ipr:
            yield ipr
    finally:
        sock.close()


async def _netlink_socket(netns_path: str) -> tuple[Any, socket.socket]:
    """(AsyncIPRoute, an rtnetlink socket inside the namespace); pyroute2 imported off the loop."""
    sock = await _in_netns(netns_path, _new_rtnetlink_socket, prepare=_import_pyroute2, discard=socket.socket.close)
    from pyroute2 import AsyncIPRoute  # already in sys.modules: the worker imported it

    return AsyncIPRoute, sock


def _import_pyroute2() -> None:
    import pyroute2.iproute.linux  # noqa: F401  (what AsyncIPRoute needs; ~100 ms the first time)


def _new_rtnetlink_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)  # 0: NETLINK_ROUTE


def _link_index_here(ifname: str) -> int | None:
    """The index of ``ifname`` in the calling thread's namespace (``SIOCGIFINDEX``), None if absent.

    An ioctl, not netlink, so the check every ADD makes (validateIfName) never loads pyroute2.
    """
    name = ifname.encode()
    if not name or len(name) >= _IFNAMSIZ or b"\0" in name:
        return None  # no link can have this name; the kernel would see a truncated one
    import fcntl
    import struct

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            reply = fcntl.ioctl(sock, _SIOCGIFINDEX, struct.pack("16si", name, 0))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise CniError(CniCode.INTERNAL, f"cannot look up interface {ifname}: {_describe(exc)}") from exc
    index: int = struct.unpack("16si", reply)[1]
    return index


async def _in_netns(
    netns_path: str,
    fn: Callable[[], _T],
    *,
    prepare: Callable[[], None] | None = None,
    discard: Callable[[_T], None] | None = None,
) -> _T:
    """``fn()`` run inside the namespace at ``netns_path``, on a fresh, throw-away thread.

    ``prepare`` runs on that thread first, still in the daemon's namespace (slow imports go
    there, off the event loop). If the awaiting task is cancelled, the thread still finishes
    and ``discard`` receives the value nobody will use (a socket to close).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled meanwhile
            if ok and discard is not None:
                discard(value)
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            if prepare is not None:
                prepare()
            outcome: tuple[bool, Any] = (True, _call_in_netns(netns_path, fn))
        except BaseException as exc:  # handed to the awaiting task
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            if outcome[0] and discard is not None:
                discard(outcome[1])

    threading.Thread(target=work, name="multusd-netns", daemon=True).start()
    try:
        return await future
    except asyncio.CancelledError:
        # cancelled after the value arrived but before this task resumed: nobody else discards it
        if discard is not None and future.done() and not future.cancelled() and future.exception() is None:
            discard(future.result())
        raise


def _call_in_netns(netns_path: str, fn: Callable[[], _T]) -> _T:
    """On the worker thread: join the namespace, run ``fn``, switch back.

    The path is opened read-only, so a missing namespace is an error, never a new namespace.
    """
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        why = f"failed to Statfs {_go_quote(netns_path)}: {_go_strerror(exc)}"
        if exc.errno == errno.ENOENT:
            raise NetnsNotFoundError(netns_path, why) from exc
        raise NetnsError(netns_path, why) from exc
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _setns(target)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise NetnsError(netns_path, f"{_go_quote(netns_path)} is not a network namespace") from exc
                raise NetnsError(netns_path, f"setns {_go_quote(netns_path)}: {_go_strerror(exc)}") from exc
            try:
                return fn()
            finally:
                try:
                    _setns(home)
                except OSError:  # harmless: this thread ends now and runs nothing else
                    log.exception("could not switch a netns worker thread back to its namespace")
        finally:
            os.close(home)
    finally:
        os.close(target)


def _setns(fd: int) -> None:
    """``setns(fd, CLONE_NEWNET)`` for the calling thread only (``os.setns`` from 3.12 on)."""
    os_setns = getattr(os, "setns", None)
    if os_setns is not None:
        os_setns(fd, _CLONE_NEWNET)
        return
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_libc: Any = None


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_strerror(exc: OSError) -> str:
    """Go prints errno texts in lower case ("no such file or directory"); match upstream's tests."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]
