"""CNI spec versions and the plugin result model, with conversion between every version.

A node must be able to switch between the upstream Go image and multusd, and a runtime may speak
any CNI version from 0.1.0 to 1.1.0, so results are read and written exactly as libcni
(``pkg/types/{020,040,100}``) does. Three result *families* exist on the wire:

- ``"020"`` (0.1.0, 0.2.0): ``ip4`` / ``ip6`` objects, routes nested inside them;
- ``"040"`` (0.3.0, 0.3.1, 0.4.0): ``interfaces`` / ``ips`` (with a ``version`` field) / ``routes``;
- ``"100"`` (1.0.0, 1.1.0): the 0.4.0 shape plus interface ``mtu``/``socketPath``/``pciID``.

Inside multusd there is one model, the 1.x-shaped :class:`Result` (the hub). Untrusted JSON is
parsed into it once, by :meth:`Result.from_json`; converting is a pure function from one family's
view of the hub to another's, looked up in one table keyed ``(from_family, to_family)``; writing
is one function per family. No dict travels past the parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
)
from typing import Any, Final

from multusd.cni.errors import CniCode, CniError

__all__ = [
    "DNS",
    "LATEST_VERSION",
    "SUPPORTED_VERSIONS",
    "IPConfig",
    "Interface",
    "Result",
    "Route",
    "convert_result",
    "dns_to_json",
    "empty_result",
    "has_check",
    "has_gc",
    "has_prev_result_on_del",
    "has_status",
    "parse_version",
    "version_family",
    "version_ge",
]

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION: Final = "1.1.0"

#: libcni's reading of an absent version, in a config or as a conversion target.
_UNSET_VERSION: Final = "0.1.0"

_FAMILIES: Final[dict[str, str]] = {
    "0.1.0": "020",
    "0.2.0": "020",
    "0.3.0": "040",
    "0.3.1": "040",
    "0.4.0": "040",
    "1.0.0": "100",
    "1.1.0": "100",
}

_VERSION_PART = re.compile(r"[0-9]+")
_PREFIX_LEN = re.compile(r"[0-9]{1,3}")


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------


def parse_version(v: str) -> tuple[int, int, int]:
    """``"0.4.0"`` → ``(0, 4, 0)``, as libcni's ``version.ParseVersion``.

    Like libcni, ``""`` means "no version declared" and reads as 0.1.0, and missing minor/micro
    parts read as 0 (``"1"`` → ``(1, 0, 0)``). Signs, spaces and more than three parts are refused
    (Go's ``Atoi`` would take a sign; no real config carries one). Junk raises
    ``CniError(INCOMPATIBLE_CNI_VERSION)``; libcni's skel reports the same failures with code 6,
    so a caller that wants skel's exact code re-codes the error.
    """
    if v == "":
        return (0, 1, 0)
    parts = v.split(".")
    if len(parts) > 3:
        raise CniError(CniCode.INCOMPATIBLE_CNI_VERSION, f"invalid version {_quote(v)}: too many parts")
    numbers = [0, 0, 0]
    for i, (name, part) in enumerate(zip(("major", "minor", "micro"), parts, strict=False)):
        if not _VERSION_PART.fullmatch(part):
            raise CniError(
                CniCode.INCOMPATIBLE_CNI_VERSION,
                f"failed to convert {name} version part {_quote(part)} of version {_quote(v)}",
            )
        numbers[i] = int(part)
    return (numbers[0], numbers[1], numbers[2])


def version_ge(a: str, b: str) -> bool:
    """``a >= b`` numerically (libcni ``GreaterThanOrEqualTo``); raises on junk like parse_version."""
    return parse_version(a) >= parse_version(b)


def has_check(v: str) -> bool:
    """CHECK exists from 0.4.0 on; below it the command must not be sent at all."""
    return version_ge(v, "0.4.0")


def has_prev_result_on_del(v: str) -> bool:
    """From 0.4.0 on, DEL and CHECK get the cached ADD result as ``prevResult``."""
    return version_ge(v, "0.4.0")


def has_gc(v: str) -> bool:
    """GC arrived with 1.1.0."""
    return version_ge(v, "1.1.0")


def has_status(v: str) -> bool:
    """STATUS arrived with 1.1.0."""
    return version_ge(v, "1.1.0")


def version_family(v: str) -> str:
    """The result family (``"020"``, ``"040"``, ``"100"``) that carries results of version ``v``.

    Only the exact spellings libcni registers are known (``"1.0"`` is not ``"1.0.0"``); ``""`` is
    0.1.0 as in libcni's converter. Anything else raises ``CniError(INCOMPATIBLE_CNI_VERSION)``.
    """
    family = _FAMILIES.get(v or _UNSET_VERSION)
    if family is None:
        raise CniError(CniCode.INCOMPATIBLE_CNI_VERSION, f"unsupported CNI result version {_quote(v)}")
    return family


def _target_version(from_version: str, to_version: str) -> str:
    """Validate a conversion target; an empty one is 0.1.0, as in libcni's ``convert.Convert``."""
    target = to_version or _UNSET_VERSION
    if target not in _FAMILIES:
        raise CniError(
            CniCode.INCOMPATIBLE_CNI_VERSION,
            f"no converter for CNI result version {from_version} to {to_version}",
        )
    return target


# --------------------------------------------------------------------------------------------
# The model (the 1.x hub)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interface:
    """An interface a plugin created or touched; ``sandbox`` is the netns path for pod ends."""

    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


@dataclass(frozen=True, slots=True)
class IPConfig:
    """An address; ``interface`` indexes :attr:`Result.interfaces` (None: not tied to one).

    The index is not checked against the interface list: libcni does not check it either, and a
    result is still useful to the runtime when a plugin gets it wrong.
    """

    address: IPv4Interface | IPv6Interface
    gateway: IPv4Address | IPv6Address | None = None
    interface: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """A route; ``table``/``scope`` are None when unset because 0 is a meaningful value."""

    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True, slots=True)
class DNS:
    """Resolver settings; the whole object counts as absent when every field is empty."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


@dataclass(frozen=True, slots=True)
class Result:
    """A plugin result in the version it was produced in (``cni_version``).

    ``cni_version`` matters beyond printing: it records which family the data came from, and
    libcni's conversions depend on that (a 0.2.0 result may be empty, a 1.0.0 result converted to
    0.2.0 may not). Constructing a Result with an unknown version raises.
    """

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)

    def __post_init__(self) -> None:
        if self.cni_version not in _FAMILIES:
            raise CniError(
                CniCode.INCOMPATIBLE_CNI_VERSION, f"unsupported CNI result version {_quote(self.cni_version)}"
            )

    @classmethod
    def from_json(cls, obj: Any, default_version: str = "") -> Result:
        """Parse a decoded result of any version.

        A result without ``cniVersion`` (or with ``""``) is taken to be in ``default_version``,
        which callers set to the config's version (libcni ``fixupResultVersion``); an empty
        default is 0.1.0, as libcni reads a config without a version. JSON ``null`` is an empty
        result, as in libcni. Keys a version does not define are ignored, like Go does; values of
        the wrong type raise ``CniError(DECODING_FAILURE)`` naming the field; an unknown version
        raises ``CniError(INCOMPATIBLE_CNI_VERSION)`` with libcni's text.
        """
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            raise _decode_error("result", f"expected a JSON object, got {_kind(obj)}")
        version = obj.get("cniVersion")
        if version is None or version == "":
            version = default_version or _UNSET_VERSION
        elif not isinstance(version, str):
            raise _decode_error("cniVersion", f"expected a string, got {_kind(version)}")
        family = _FAMILIES.get(version)
        if family is None:
            raise CniError(CniCode.INCOMPATIBLE_CNI_VERSION, f"unsupported CNI result version {_quote(version)}")
        return _READERS[family](obj, version)

    @classmethod
    def from_bytes(cls, data: bytes, default_version: str = "") -> Result:
        """Parse plugin stdout (or a cached result file); see :meth:`from_json`."""
        return cls.from_json(_load_json(data), default_version)

    def with_version(self, version: str) -> Result:
        """This result converted to ``version``, dropping what that version cannot carry.

        Raises ``CniError(INCOMPATIBLE_CNI_VERSION)`` for an unknown target, and with libcni's
        ``cannot convert: no valid IP addresses`` when a 0.3.0+ result without any IP is asked for
        in 0.1.0/0.2.0 (those versions require an IP; use :func:`empty_result` for the empty one).
        """
        target = _target_version(self.cni_version, version)
        convert = _CONVERTERS[(_FAMILIES[self.cni_version], _FAMILIES[target])]
        return replace(convert(self), cni_version=target)

    def to_json(self, version: str | None = None) -> dict[str, Any]:
        """The result as libcni prints it in ``version`` (default: its own).

        Key order follows Go's output (struct order for 0.x, sorted for 1.x, whose marshaller goes
        through a map), so ``json.dumps(obj, indent=4, ensure_ascii=False)`` prints what the Go shim
        prints (Go also escapes ``<``, ``>`` and ``&`` as ``\\u003c``…, which results rarely hold).
        """
        converted = self if version is None else self.with_version(version)
        return _WRITERS[_FAMILIES[converted.cni_version]](converted)


def empty_result(version: str) -> dict[str, Any]:
    """The result of an ADD that attached nothing, valid in every version.

    libcni prints ``{"cniVersion": v}`` for 1.x and adds ``"dns": {}`` for every 0.x version (its
    0.x result types mark the ``dns`` struct ``omitempty``, which Go ignores for structs). Upstream
    multus panics building this for 0.x (quirk Q6); an empty 0.1.0/0.2.0 result is legal on the
    wire, only *converting* an IP-less newer result down to it is refused.
    """
    return Result(_target_version(LATEST_VERSION, version)).to_json()


def convert_result(obj: dict[str, Any], to_version: str, default_version: str = "") -> dict[str, Any]:
    """Raw result JSON (any version) → raw result JSON in ``to_version``; see Result.from_json."""
    return Result.from_json(obj, default_version).to_json(to_version)


# --------------------------------------------------------------------------------------------
# Conversions: pure functions on the hub, one table (STYLE §2.1)
# --------------------------------------------------------------------------------------------


def _keep_all(result: Result) -> Result:
    """Up-conversions and moves inside a family lose nothing: the hub holds every field."""
    return result


def _to_040(result: Result) -> Result:
    """0.4.0 interfaces have only name/mac/sandbox; routes are copied whole, as libcni does."""
    interfaces = tuple(Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces)
    return replace(result, interfaces=interfaces)


def _to_020(result: Result) -> Result:
    """0.2.0 holds one address per family and its routes (dst/gw only), no interfaces.

    As libcni (``types040.convertTo02x``): the first IPv4 and the first IPv6 entry survive, a route
    survives only if its destination's family has an address, and a result without any address
    cannot be converted.
    """
    ip4 = next((ip for ip in result.ips if ip.address.version == 4), None)
    ip6 = next((ip for ip in result.ips if ip.address.version == 6), None)
    kept = [ip for ip in (ip4, ip6) if ip is not None]
    if not kept:
        raise CniError(CniCode.INCOMPATIBLE_CNI_VERSION, "cannot convert: no valid IP addresses")
    families = {ip.address.version for ip in kept}
    return Result(
        cni_version=result.cni_version,
        ips=tuple(IPConfig(address=ip.address, gateway=ip.gateway) for ip in kept),
        routes=tuple(Route(dst=r.dst, gw=r.gw) for r in result.routes if r.dst.version in families),
        dns=result.dns,
    )


_CONVERTERS: Final[dict[tuple[str, str], Callable[[Result], Result]]] = {
    ("020", "020"): _keep_all,
    ("020", "040"): _keep_all,
    ("020", "100"): _keep_all,
    ("040", "020"): _to_020,
    ("040", "040"): _keep_all,
    ("040", "100"): _keep_all,
    ("100", "020"): _to_020,
    ("100", "040"): _to_040,
    ("100", "100"): _keep_all,
}


# --------------------------------------------------------------------------------------------
# Writers: one per family
# --------------------------------------------------------------------------------------------


def _route_json(route: Route) -> dict[str, Any]:
    """types.Route as Go marshals it: ``dst`` always, the rest ``omitempty`` (pointers: when nil)."""
    obj: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        obj["gw"] = str(route.gw)
    if route.mtu:
        obj["mtu"] = route.mtu
    if route.advmss:
        obj["advmss"] = route.advmss
    if route.priority:
        obj["priority"] = route.priority
    if route.table is not None:
        obj["table"] = route.table
    if route.scope is not None:
        obj["scope"] = route.scope
    return obj


def dns_to_json(dns: DNS) -> dict[str, Any]:
    """The DNS object as every result version (and network-status) writes it: empty fields left out."""
    obj: dict[str, Any] = {}
    if dns.nameservers:
        obj["nameservers"] = list(dns.nameservers)
    if dns.domain:
        obj["domain"] = dns.domain
    if dns.search:
        obj["search"] = list(dns.search)
    if dns.options:
        obj["options"] = list(dns.options)
    return obj


def _write_020(result: Result) -> dict[str, Any]:
    obj: dict[str, Any] = {"cniVersion": result.cni_version}
    for key, family in (("ip4", 4), ("ip6", 6)):
        ip = next((ip for ip in result.ips if ip.address.version == family), None)
        if ip is None:
            continue
        entry: dict[str, Any] = {"ip": str(ip.address)}
        if ip.gateway is not None:
            entry["gateway"] = str(ip.gateway)
        routes = [_route_json(r) for r in result.routes if r.dst.version == family]
        if routes:
            entry["routes"] = routes
        obj[key] = entry
    obj["dns"] = dns_to_json(result.dns)
    return obj


def _write_040(result: Result) -> dict[str, Any]:
    obj: dict[str, Any] = {"cniVersion": result.cni_version}
    if result.interfaces:
        interfaces = []
        for i in result.interfaces:
            intf: dict[str, Any] = {"name": i.name}
            if i.mac:
                intf["mac"] = i.mac
            if i.sandbox:
                intf["sandbox"] = i.sandbox
            interfaces.append(intf)
        obj["interfaces"] = interfaces
    if result.ips:
        ips = []
        for ip in result.ips:
            entry: dict[str, Any] = {"version": str(ip.address.version)}
            if ip.interface is not None:
                entry["interface"] = ip.interface
            entry["address"] = str(ip.address)
            if ip.gateway is not None:
                entry["gateway"] = str(ip.gateway)
            ips.append(entry)
        obj["ips"] = ips
    if result.routes:
        obj["routes"] = [_route_json(r) for r in result.routes]
    obj["dns"] = dns_to_json(result.dns)
    return obj


def _write_100(result: Result) -> dict[str, Any]:
    obj: dict[str, Any] = {"cniVersion": result.cni_version}
    if result.interfaces:
        interfaces = []
        for i in result.interfaces:
            intf: dict[str, Any] = {"name": i.name}
            for key, value in (
                ("mac", i.mac),
                ("mtu", i.mtu),
                ("sandbox", i.sandbox),
                ("socketPath", i.socket_path),
                ("pciID", i.pci_id),
            ):
                if value:
                    intf[key] = value
            interfaces.append(intf)
        obj["interfaces"] = interfaces
    if result.ips:
        ips = []
        for ip in result.ips:
            entry: dict[str, Any] = {"address": str(ip.address)}
            if ip.gateway is not None:
                entry["gateway"] = str(ip.gateway)
            if ip.interface is not None:
                entry["interface"] = ip.interface
            ips.append(entry)
        obj["ips"] = ips
    if result.routes:
        obj["routes"] = [_route_json(r) for r in result.routes]
    if not result.dns.is_empty():
        obj["dns"] = dns_to_json(result.dns)
    return _sorted_keys(obj)


def _sorted_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Sort object keys at every level, as Go's ``map[string]interface{}`` marshalling does."""
    return {key: _sorted_value(obj[key]) for key in sorted(obj)}


def _sorted_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _sorted_keys(value)
    if isinstance(value, list):
        return [_sorted_value(item) for item in value]
    return value


_WRITERS: Final[dict[str, Callable[[Result], dict[str, Any]]]] = {
    "020": _write_020,
    "040": _write_040,
    "100": _write_100,
}


# --------------------------------------------------------------------------------------------
# Readers: the only place untrusted result JSON is looked at
# --------------------------------------------------------------------------------------------


def _decode_error(path: str, why: str) -> CniError:
    return CniError(CniCode.DECODING_FAILURE, f"invalid CNI result: {path}: {why}")


def _quote(value: Any) -> str:
    """Quote like Go's ``%q`` (double quotes), so messages read as libcni's do."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _kind(value: Any) -> str:
    """A JSON-ish name for what was found, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_quote(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _load_json(data: bytes) -> Any:
    """Decode like Go's encoding/json would accept: no NaN/Infinity, UTF-8 only."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"invalid JSON constant {name}")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except ValueError as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"failed to unmarshal raw result: {exc}") from exc


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _decode_error(path, f"expected an object, got {_kind(value)}")
    return value


def _array(obj: dict[str, Any], key: str, path: str) -> list[Any]:
    """An optional array; ``null`` counts as absent (Go leaves the slice nil)."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _decode_error(f"{path}{key}", f"expected an array, got {_kind(value)}")
    return value


def _string(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _decode_error(f"{path}{key}", f"expected a string, got {_kind(value)}")
    return value


def _strings(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = _array(obj, key, path)
    for n, item in enumerate(items):
        if not isinstance(item, str):
            raise _decode_error(f"{path}{key}[{n}]", f"expected a string, got {_kind(item)}")
    return tuple(items)


def _int(obj: dict[str, Any], key: str, path: str, *, minimum: int | None = None) -> int | None:
    """An optional JSON integer; Go refuses ``1.0``, ``true`` and strings for an int field."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _decode_error(f"{path}{key}", f"expected an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise _decode_error(f"{path}{key}", f"must be at least {minimum}, got {value}")
    return value


def _cidr(obj: dict[str, Any], key: str, path: str) -> IPv4Interface | IPv6Interface:
    """A required ``addr/len`` string (Go ``net.ParseCIDR``: no bare address, no netmask form)."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise _decode_error(f"{path}{key}", f"expected a CIDR string, got {_kind(value)}")
    addr, _, prefix = value.partition("/")
    if "%" in addr or not _PREFIX_LEN.fullmatch(prefix):
        raise _decode_error(f"{path}{key}", f"invalid CIDR address {_quote(value)}")
    try:
        return ip_interface(value)
    except ValueError:
        raise _decode_error(f"{path}{key}", f"invalid CIDR address {_quote(value)}") from None


def _network(obj: dict[str, Any], key: str, path: str) -> IPv4Network | IPv6Network:
    """A route destination; host bits are cleared (Go would print them back as given)."""
    return _cidr(obj, key, path).network


def _gateway(obj: dict[str, Any], key: str, path: str) -> IPv4Address | IPv6Address | None:
    """An optional IP; ``""`` and ``null`` mean none, as Go's ``net.IP`` unmarshalling has it."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _decode_error(f"{path}{key}", f"expected an IP address string, got {_kind(value)}")
    if "%" in value:  # Go's net.ParseIP takes no IPv6 zone
        raise _decode_error(f"{path}{key}", f"invalid IP address {_quote(value)}")
    try:
        return ip_address(value)
    except ValueError:
        raise _decode_error(f"{path}{key}", f"invalid IP address {_quote(value)}") from None


def _read_route(value: Any, path: str) -> Route:
    obj = _object(value, path)
    path = f"{path}."
    return Route(
        dst=_network(obj, "dst", path),
        gw=_gateway(obj, "gw", path),
        mtu=_int(obj, "mtu", path) or 0,
        advmss=_int(obj, "advmss", path) or 0,
        priority=_int(obj, "priority", path) or 0,
        table=_int(obj, "table", path),
        scope=_int(obj, "scope", path),
    )


def _read_routes(items: Iterable[Any], path: str) -> tuple[Route, ...]:
    return tuple(_read_route(item, f"{path}[{n}]") for n, item in enumerate(items))


def _read_dns(obj: dict[str, Any]) -> DNS:
    value = obj.get("dns")
    if value is None:
        return DNS()
    dns = _object(value, "dns")
    return DNS(
        nameservers=_strings(dns, "nameservers", "dns."),
        domain=_string(dns, "domain", "dns."),
        search=_strings(dns, "search", "dns."),
        options=_strings(dns, "options", "dns."),
    )


def _read_interfaces(obj: dict[str, Any], *, with_1x_fields: bool) -> tuple[Interface, ...]:
    """0.x interfaces know only name/mac/sandbox; Go drops the 1.x keys there, and so do we."""
    interfaces = []
    for n, item in enumerate(_array(obj, "interfaces", "")):
        path = f"interfaces[{n}]."
        intf = _object(item, path[:-1])
        extra: dict[str, Any] = {}
        if with_1x_fields:
            extra = {
                "mtu": _int(intf, "mtu", path) or 0,
                "socket_path": _string(intf, "socketPath", path),
                "pci_id": _string(intf, "pciID", path),
            }
        name, mac = _string(intf, "name", path), _string(intf, "mac", path)
        interfaces.append(Interface(name=name, mac=mac, sandbox=_string(intf, "sandbox", path), **extra))
    return tuple(interfaces)


def _read_ips(obj: dict[str, Any], *, with_version_field: bool) -> tuple[IPConfig, ...]:
    """0.3.0 to 0.4.0 IPs carry ``version``; it is type-checked but recomputed from the address."""
    ips = []
    for n, item in enumerate(_array(obj, "ips", "")):
        path = f"ips[{n}]."
        ip = _object(item, path[:-1])
        if with_version_field:
            _string(ip, "version", path)
        ips.append(
            IPConfig(
                address=_cidr(ip, "address", path),
                gateway=_gateway(ip, "gateway", path),
                interface=_int(ip, "interface", path, minimum=0),
            )
        )
    return tuple(ips)


def _read_100(obj: dict[str, Any], version: str) -> Result:
    return Result(
        cni_version=version,
        interfaces=_read_interfaces(obj, with_1x_fields=True),
        ips=_read_ips(obj, with_version_field=False),
        routes=_read_routes(_array(obj, "routes", ""), "routes"),
        dns=_read_dns(obj),
    )


def _read_040(obj: dict[str, Any], version: str) -> Result:
    return Result(
        cni_version=version,
        interfaces=_read_interfaces(obj, with_1x_fields=False),
        ips=_read_ips(obj, with_version_field=True),
        routes=_read_routes(_array(obj, "routes", ""), "routes"),
        dns=_read_dns(obj),
    )


def _read_020(obj: dict[str, Any], version: str) -> Result:
    """``ip4`` then ``ip6`` become the hub's IPs; their routes are concatenated in that order."""
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        value = obj.get(key)
        if value is None:
            continue
        ipc = _object(value, key)
        path = f"{key}."
        ips.append(IPConfig(address=_cidr(ipc, "ip", path), gateway=_gateway(ipc, "gateway", path)))
        routes.extend(_read_routes(_array(ipc, "routes", path), f"{key}.routes"))
    return Result(cni_version=version, ips=tuple(ips), routes=tuple(routes), dns=_read_dns(obj))


_READERS: Final[dict[str, Callable[[dict[str, Any], str], Result]]] = {
    "020": _read_020,
    "040": _read_040,
    "100": _read_100,
}
