"""Pod network selection: the networks / default-network annotation grammar (reference §5.2 to §5.5).

Pure functions, no I/O: an annotation value goes in, typed :class:`NetworkSelection` elements come
out, or a :class:`SelectionError` carrying upstream's exact text. Users compare our messages with
upstream's (and search for them), so the texts, the order of checks and the accepted forms follow
upstream multus and Go's standard library rule for rule:

* **Comma form** ``[<ns>/]<name>[@<ifname>]``, items split on ``,`` and trimmed with Go's
  ``strings.TrimSpace``; names and namespaces must be DNS-1123 labels (dots rejected), ifnames
  ≤ 15 bytes without whitespace or ``/``. Empty items give an element with an empty name (Q17).
* **JSON form** (the value contains any of ``[ { "``): a JSON array of selection objects, decoded
  as Go's ``encoding/json`` decodes ``[]*NetworkSelectionElement``: keys matched
  case-insensitively, unknown keys ignored, ``null`` leaves a field unset, syntax errors reported
  before type errors, and the first type error in document order reported with Go's text
  (``json: cannot unmarshal string into Go struct field NetworkSelectionElement.ips of type
  []string``). The syntax check is a small scanner with Go's messages (``invalid character 'a'
  looking for beginning of value``, ``unexpected end of JSON input`` …), so every syntax error text
  matches Go's. Type-error texts follow Go ≥ 1.20's format; other Go versions word them slightly
  differently.
* Then, for both forms: default namespace, MAC / InfiniBand GUID checked with Go's
  ``net.ParseMAC`` rules, ``ips`` checked as Go's ``net.ParseIP`` / ``net.ParseCIDR``,
  ``interfaceRequest`` as the deprecated alias of ``interface``.

Where upstream panics (a ``null`` array element, a default-network annotation of ``[]``), multusd
returns an error or "no element" instead. Numbers inside ``cni-args`` keep Python's exact integers
(Go turns them into float64); that only differs for integers beyond 2**53.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multusd.cni.errors import CniCode, CniError

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"

#: Go's ``syscall.IFNAMSIZ - 1``: the longest interface name the kernel takes, in bytes.
MAX_IFNAME_BYTES = 15
#: encoding/json's nesting limit; deeper input is refused with Go's text.
MAX_JSON_DEPTH = 10000

_JSON_PREFIX = "parsePodNetworkAnnotation: failed to parse pod Network Attachment Selection Annotation JSON format: "
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Go's unicode.IsSpace differs from str.isspace() only on these four ASCII separators.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")
_IFNAME_FORBIDDEN = frozenset(" \t\n\v\f\r/")


class SelectionError(CniError):
    """An annotation that does not parse: code 7 (invalid network config), upstream's text."""

    def __init__(self, msg: str, details: str = "", network: str = "") -> None:
        super().__init__(CniCode.INVALID_NETWORK_CONFIG, msg, details)
        self.network = network  # the offending item, when known: errors name the network (DESIGN §2)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.msg, self.details, self.network))


@dataclass(frozen=True)
class NetworkSelection:
    """One element of a selection annotation (upstream ``NetworkSelectionElement``).

    ``default_route`` keeps Go's pointer semantics: ``None`` means the key was absent, ``()`` that
    it was present and empty — which strips default routes from every interface (Q11). Gateways
    are in Go's canonical text form (IPv4-mapped IPv6 written as IPv4); ``""`` stands for Go's nil
    IP (from ``""`` or ``null``), which upstream counts as an IPv6 gateway.
    ``port_mappings`` and ``bandwidth`` are in the form Go marshals them into ``runtimeConfig``
    (unknown keys dropped, ints, bandwidth always with its four keys); ``None`` when absent.
    ``cni_args`` is ``None`` when absent (``{}`` still creates ``args.cni`` in the config).
    """

    name: str
    namespace: str
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""
    infiniband_guid: str = ""
    default_route: tuple[str, ...] | None = None
    port_mappings: tuple[dict[str, Any], ...] | None = None
    bandwidth: dict[str, int] | None = None
    cni_args: dict[str, Any] | None = None
    device_id: str = ""

    @property
    def ref(self) -> str:
        """``<namespace>/<name>``: the delegate name and how errors name the network."""
        return f"{self.namespace}/{self.name}"


# --------------------------------------------------------------------------------------------
# Public entry points


def parse_networks_annotation(value: str, pod_namespace: str) -> list[NetworkSelection]:
    """The ``k8s.v1.cni.cncf.io/networks`` annotation; empty means no secondary networks."""
    if not value:
        return []
    return _parse(value, pod_namespace)


def parse_default_network_annotation(value: str, multus_namespace: str) -> NetworkSelection | None:
    """The ``v1.multus-cni.io/default-network`` annotation: at most one element.

    The namespace defaults to multusNamespace. An empty value or ``[]`` means "no override"
    (upstream rejected the first and panicked on the second).
    """
    if not value:
        return None
    try:
        selections = _parse(value, multus_namespace)
    except SelectionError as exc:
        raise SelectionError(f"tryLoadK8sPodDefaultNetwork: failed to parse CRD object: {exc.msg}") from exc
    if len(selections) > 1:
        raise SelectionError(f"tryLoadK8sPodDefaultNetwork: more than one default network is specified: {value}")
    return selections[0] if selections else None


def go_parse_mac(text: str) -> bytes | None:
    """Go's ``net.ParseMAC``: 6, 8 or 20 bytes as ``xx:xx…``, ``xx-xx…`` or ``xxxx.xxxx…``."""
    s = text.encode("utf-8", "surrogatepass")
    if len(s) < 14:
        return None
    out = bytearray()
    if s[2:3] in (b":", b"-"):
        if (len(s) + 1) % 3:
            return None
        count = (len(s) + 1) // 3
        if count not in (6, 8, 20):
            return None
        for i in range(count):
            x = i * 3
            if i < count - 1 and s[x + 2] != s[2]:
                return None
            byte = _hex2(s[x : x + 2])
            if byte is None:
                return None
            out.append(byte)
        return bytes(out)
    if s[4:5] == b".":
        if (len(s) + 1) % 5:
            return None
        count = 2 * (len(s) + 1) // 5
        if count not in (6, 8, 20):
            return None
        for i in range(0, count, 2):
            x = i // 2 * 5
            if x + 4 < len(s) and s[x + 4] != s[4]:
                return None
            hi, lo = _hex2(s[x : x + 2]), _hex2(s[x + 2 : x + 4])
            if hi is None or lo is None:
                return None
            out += bytes((hi, lo))
        return bytes(out)
    return None


def go_parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's ``net.ParseIP``: dotted IPv4 (no leading zeros) or IPv6, never a zone."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def go_ip_string(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Go's ``net.IP.String()``: IPv4 and IPv4-mapped IPv6 as dotted quads, IPv6 compressed."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def is_v4_gateway(gateway: str) -> bool:
    """Go's ``ip.To4() != nil`` on a gateway from :attr:`NetworkSelection.default_route`."""
    ip = go_parse_ip(gateway) if gateway else None
    if ip is None:
        return False
    return ip.version == 4 or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None)


def go_json_syntax_error(data: bytes) -> str | None:
    """The message Go's ``encoding/json`` gives for ``data``'s first syntax error, or None.

    A scanner with Go's states and texts, so messages match byte for byte rather than being
    translated from Python's ``JSONDecodeError`` (whose positions and wording differ).
    """
    stack: list[int] = []  # b"[" or b"{"
    n = len(data)
    i = 0
    state = "value"  # value | value_or_close | key | key_or_close | colon | after
    while True:
        while i < n and data[i] in b" \t\r\n":
            i += 1
        if i >= n:
            return None if state == "after" and not stack else "unexpected end of JSON input"
        c = data[i]
        if state in ("value", "value_or_close"):
            if state == "value_or_close" and c == 0x5D:  # ]
                stack.pop()
                i += 1
                state = "after"
                continue
            if c in b"[{":
                if len(stack) >= MAX_JSON_DEPTH:
                    return f"invalid character {_go_quote_char(c)} exceeded max depth"
                stack.append(c)
                i += 1
                state = "value_or_close" if c == 0x5B else "key_or_close"
                continue
            if c == 0x22:
                i, err = _scan_string(data, i + 1)
            elif c == 0x2D or 0x30 <= c <= 0x39:
                i, err = _scan_number(data, i)
            elif c in b"tfn":
                i, err = _scan_literal(data, i)
            else:
                return f"invalid character {_go_quote_char(c)} looking for beginning of value"
            if err:
                return err
            state = "after"
        elif state in ("key", "key_or_close"):
            if state == "key_or_close" and c == 0x7D:  # }
                stack.pop()
                i += 1
                state = "after"
                continue
            if c != 0x22:
                return f"invalid character {_go_quote_char(c)} looking for beginning of object key string"
            i, err = _scan_string(data, i + 1)
            if err:
                return err
            state = "colon"
        elif state == "colon":
            if c != 0x3A:
                return f"invalid character {_go_quote_char(c)} after object key"
            i += 1
            state = "value"
        else:  # after a complete value
            if not stack:
                return f"invalid character {_go_quote_char(c)} after top-level value"
            top = stack[-1]
            if top == 0x5B:
                if c == 0x2C:
                    state = "value"
                elif c == 0x5D:
                    stack.pop()
                else:
                    return f"invalid character {_go_quote_char(c)} after array element"
            else:
                if c == 0x2C:
                    state = "key"
                elif c == 0x7D:
                    stack.pop()
                else:
                    return f"invalid character {_go_quote_char(c)} after object key:value pair"
            i += 1


# --------------------------------------------------------------------------------------------
# Parsing


def _parse(value: str, default_namespace: str) -> list[NetworkSelection]:
    # The API server hands Go valid UTF-8 only; a lone surrogate in a Python str would have been
    # U+FFFD there.
    value = _LONE_SURROGATE.sub("\ufffd", value)
    if any(ch in value for ch in '[{"'):
        raw = _decode_json(value)
    else:
        raw = []
        for item in value.split(","):
            try:
                raw.append(_parse_comma_item(_go_trim(item)))
            except SelectionError as exc:
                raise SelectionError(exc.msg, exc.details, network=_go_trim(item)) from exc
    out = []
    for element in raw:
        try:
            out.append(_finish(element, default_namespace))
        except SelectionError as exc:
            raise SelectionError(exc.msg, exc.details, network=str(element.get("name", ""))) from exc
    return out


def _parse_comma_item(item: str) -> dict[str, Any]:
    """``[<ns>/]<name>[@<ifname>]`` → the fields it sets (upstream ``parsePodNetworkObjectName``)."""
    prefix = "parsePodNetworkAnnotation: parsePodNetworkObjectName: "
    namespace = ""
    slash = item.split("/")
    if len(slash) == 2:
        namespace, rest = _go_trim(slash[0]), slash[1]
    elif len(slash) == 1:
        rest = slash[0]
    else:
        raise SelectionError(f"{prefix}Invalid network object (failed at '/')")
    at = rest.split("@")
    name = _go_trim(at[0])
    ifname = ""
    if len(at) == 2:
        ifname = _go_trim(at[1])
    elif len(at) != 1:
        raise SelectionError(f"{prefix}Invalid network object (failed at '@')")
    for part in (namespace, name):
        if part and not _DNS_LABEL.fullmatch(part):
            raise SelectionError(
                f"{prefix}Failed to parse: one or more items did not match comma-delimited format (must consist of "
                "lower case alphanumeric characters). Must start and end with an alphanumeric character), "
                f"mismatch @ '{part}'"
            )
    if ifname and (
        len(ifname.encode("utf-8", "surrogatepass")) > MAX_IFNAME_BYTES or any(c in _IFNAME_FORBIDDEN for c in ifname)
    ):
        raise SelectionError(
            f"{prefix}Failed to parse interface name: must be less than 15 chars and not contain '/' or spaces. "
            f"interface name '{ifname}'"
        )
    return {"name": name, "namespace": namespace, "interface": ifname}


def _finish(element: dict[str, Any], default_namespace: str) -> NetworkSelection:
    """Upstream's per-element post-processing, in its order."""
    namespace = element.get("namespace") or default_namespace
    mac = element.get("mac") or ""
    if mac and go_parse_mac(mac) is None:
        raise SelectionError(f"parsePodNetworkAnnotation: failed to mac: address {mac}: invalid MAC address")
    guid = element.get("infiniband-guid") or ""
    if guid and go_parse_mac(guid) is None:
        raise SelectionError(
            f"parsePodNetworkAnnotation: failed to validate infiniband GUID: address {guid}: invalid MAC address"
        )
    ips: tuple[str, ...] = tuple(element.get("ips") or ())
    for ip in ips:
        if "/" in ip:
            if not _go_valid_cidr(ip):
                raise SelectionError(f"failed to parse CIDR {_go_quote(ip)}: invalid CIDR address: {ip}")
        elif go_parse_ip(ip) is None:
            raise SelectionError(f"failed to parse IP address {_go_quote(ip)}")
    interface = element.get("interface") or element.get("interfaceRequest") or ""
    route = element.get("default-route")
    ports = element.get("portMappings")
    return NetworkSelection(
        name=element.get("name") or "",
        namespace=namespace,
        interface=interface,
        ips=ips,
        mac=mac,
        infiniband_guid=guid,
        default_route=tuple(route) if route is not None else None,
        port_mappings=tuple(ports) if ports is not None else None,
        bandwidth=element.get("bandwidth"),
        cni_args=element.get("cni-args"),
        device_id=element.get("deviceID") or "",
    )


def _go_valid_cidr(text: str) -> bool:
    """Go's ``net.ParseCIDR`` acceptance: ``<ip>/<decimal prefix within the family's bits>``."""
    addr, _, mask = text.partition("/")
    ip = go_parse_ip(addr)
    if ip is None or not mask or not (mask.isascii() and mask.isdigit()):
        return False
    return int(mask) <= (32 if ip.version == 4 else 128)


# --------------------------------------------------------------------------------------------
# The JSON form, decoded as Go decodes []*NetworkSelectionElement


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, in document order, duplicates kept."""


class _Num(str):
    """A JSON number's literal text (Go checks ints against the literal, not a float)."""


class _IPError(Exception):
    """``net.IP.UnmarshalText`` failed: Go returns this at once, ahead of saved type errors."""


@dataclass(frozen=True)
class _Kind:
    """A Go type as encoding/json sees it: how to decode a JSON value into it."""

    go: str  # the type's name in Go's messages
    kind: str  # str | int | list | struct | map | ip
    elem: _Kind | None = None
    struct: str = ""  # Go struct name, for error context
    fields: tuple[tuple[str, _Kind], ...] = ()


#: What a JSON null inside an array becomes, per element kind (nil pointers stay None).
_ZERO: dict[str, Any] = {"str": "", "int": 0, "ip": ""}
_STRING = _Kind("string", "str")
_INT = _Kind("int", "int")
_PORT_MAP = _Kind(
    "types.PortMapEntry",
    "struct",
    struct="PortMapEntry",
    fields=(("hostPort", _INT), ("containerPort", _INT), ("protocol", _STRING), ("hostIP", _STRING)),
)
_BANDWIDTH = _Kind(
    "types.BandwidthEntry",
    "struct",
    struct="BandwidthEntry",
    fields=(("ingressRate", _INT), ("ingressBurst", _INT), ("egressRate", _INT), ("egressBurst", _INT)),
)
_ELEMENT = _Kind(
    "types.NetworkSelectionElement",
    "struct",
    struct="NetworkSelectionElement",
    fields=(
        ("name", _STRING),
        ("namespace", _STRING),
        ("ips", _Kind("[]string", "list", _STRING)),
        ("mac", _STRING),
        ("infiniband-guid", _STRING),
        ("interface", _STRING),
        ("interfaceRequest", _STRING),
        ("portMappings", _Kind("[]*types.PortMapEntry", "list", _PORT_MAP)),
        ("bandwidth", _BANDWIDTH),
        ("deviceID", _STRING),
        ("cni-args", _Kind("map[string]interface {}", "map")),
        ("default-route", _Kind("[]net.IP", "list", _Kind("net.IP", "ip"))),
    ),
)
_TOP = _Kind("[]*types.NetworkSelectionElement", "list", _ELEMENT)


def _decode_json(value: str) -> list[dict[str, Any]]:
    syntax = go_json_syntax_error(value.encode("utf-8", "surrogatepass"))
    if syntax is not None:
        raise SelectionError(_JSON_PREFIX + syntax)
    try:
        doc = json.loads(value, object_pairs_hook=_Pairs, parse_int=_Num, parse_float=_Num)
    except RecursionError as exc:  # Python's parser nests less deeply than Go's
        raise SelectionError(_JSON_PREFIX + "exceeded max depth") from exc
    except ValueError as exc:  # unreachable after the scanner; kept so nothing else escapes
        raise SelectionError(_JSON_PREFIX + str(exc)) from exc
    decoder = _Decoder()
    try:
        elements = decoder.decode(doc, _TOP, "", [])
    except _IPError as exc:
        raise SelectionError(_JSON_PREFIX + str(exc)) from exc
    except RecursionError as exc:
        raise SelectionError(_JSON_PREFIX + "exceeded max depth") from exc
    if decoder.saved is not None:
        raise SelectionError(_JSON_PREFIX + decoder.saved)
    if elements is None:  # top-level null: Go leaves the slice nil
        return []
    out = []
    for index, element in enumerate(elements):
        # Upstream dereferences a nil element and panics; a nil port mapping would reach the
        # portmap plugin as null. Both are refused here, naming the place.
        if element is None:
            raise SelectionError(_JSON_PREFIX + f"element {index} is null")
        if any(entry is None for entry in element.get("portMappings") or ()):
            raise SelectionError(_JSON_PREFIX + f"element {index}: a portMappings entry is null")
        out.append(element)
    return out


class _Decoder:
    """Walks a parsed document against a :class:`_Kind`, saving Go's first type error."""

    def __init__(self) -> None:
        self.saved: str | None = None

    def _type_error(self, what: str, kind: _Kind, struct: str, path: list[str]) -> None:
        if self.saved is not None:
            return
        where = f"Go struct field {struct}.{'.'.join(path)}" if struct or path else "Go value"
        self.saved = f"json: cannot unmarshal {what} into {where} of type {kind.go}"

    def decode(self, value: Any, kind: _Kind, struct: str, path: list[str], into: Any = None) -> Any:
        """The Go value for ``value`` (None for Go's zero/nil); a mismatch saves an error, gives None."""
        if value is None:
            return None
        what = _json_kind(value)
        if kind.kind == "str":
            if isinstance(value, str) and not isinstance(value, _Num):
                return _go_str(value)
        elif kind.kind == "int":
            if isinstance(value, _Num):
                if re.fullmatch(r"-?[0-9]+", value) and -(2**63) <= int(value) < 2**63:
                    return int(value)
                what = f"number {value}"
        elif kind.kind == "ip":
            if isinstance(value, str) and not isinstance(value, _Num):
                text = _go_str(value)
                if not text:
                    return ""
                ip = go_parse_ip(text)
                if ip is None:
                    raise _IPError(f"invalid IP address: {text}")
                return go_ip_string(ip)
        elif kind.kind == "list":
            if isinstance(value, list) and not isinstance(value, _Pairs):
                assert kind.elem is not None
                zero = _ZERO.get(kind.elem.kind)
                return [zero if v is None else self.decode(v, kind.elem, struct, path) for v in value]
        elif kind.kind == "map":
            if isinstance(value, _Pairs):
                out = dict(into) if isinstance(into, dict) else {}
                for key, item in value:
                    out[_go_str(key)] = _plain(item)
                return out
        elif kind.kind == "struct" and isinstance(value, _Pairs):
            return self._struct(value, kind, path, into)
        self._type_error(what, kind, struct, path)
        return into

    def _struct(self, pairs: _Pairs, kind: _Kind, path: list[str], into: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict(into) if isinstance(into, dict) else {}
        exact = dict(kind.fields)
        folded = {name.lower(): (name, k) for name, k in kind.fields}
        for key, item in pairs:
            if key in exact:
                name, field_kind = key, exact[key]
            elif key.lower() in folded:
                name, field_kind = folded[key.lower()]
            else:
                continue  # unknown keys are ignored, as Go does
            field_path = [*path, name]
            decoded = self.decode(item, field_kind, kind.struct, field_path, out.get(name))
            if item is None and field_kind.kind in ("list", "map", "struct", "ip"):
                out.pop(name, None)  # null sets a pointer/slice/map back to nil
            elif decoded is not None:
                out[name] = decoded
        if kind is _PORT_MAP or kind is _BANDWIDTH:
            return _go_marshal_struct(out, kind)
        return out


def _go_marshal_struct(values: Mapping[str, Any], kind: _Kind) -> dict[str, Any]:
    """A PortMapEntry / BandwidthEntry as Go marshals it (ints always, strings omitempty)."""
    out: dict[str, Any] = {}
    for name, field_kind in kind.fields:
        if field_kind.kind == "int":
            out[name] = values.get(name, 0)
        elif values.get(name):
            out[name] = values[name]
    return out


def _plain(value: Any) -> Any:
    """A ``cni-args`` value as plain JSON data (Go's ``interface{}`` decoding)."""
    if isinstance(value, _Pairs):
        return {_go_str(k): _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _Num):
        if re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        number = float(value)
        if number in (float("inf"), float("-inf")):
            raise _IPError(f"json: cannot unmarshal number {value} into Go value of type float64")
        return number
    if isinstance(value, str):
        return _go_str(value)
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Num):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    return "array"


# --------------------------------------------------------------------------------------------
# Go's text helpers


def _go_trim(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(s)
    while start < end and s[start].isspace() and s[start] not in _NOT_GO_SPACE:
        start += 1
    while end > start and s[end - 1].isspace() and s[end - 1] not in _NOT_GO_SPACE:
        end -= 1
    return s[start:end]


def _go_str(s: str) -> str:
    """A decoded JSON string as Go holds it: an escaped lone surrogate becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", s)


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the strings we quote (printable text; escapes for the rest)."""
    out = []
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and ch != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_GO_CHAR_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v"}


def _go_quote_char(c: int) -> str:
    """encoding/json's ``quoteChar``: one input byte as Go names it in syntax errors."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        text = "\\\\"
    elif c in _GO_CHAR_ESCAPES:
        text = _GO_CHAR_ESCAPES[c]
    elif c < 0x20 or c == 0x7F:
        text = f"\\x{c:02x}"
    elif 0x80 <= c <= 0xA0 or c == 0xAD:  # string(byte) is U+0080…U+00FF; these are not printable
        text = f"\\u{c:04x}"
    else:
        text = chr(c)
    return f"'{text}'"


def _hex2(b: bytes) -> int | None:
    if len(b) != 2 or any(c not in b"0123456789abcdefABCDEF" for c in b):
        return None
    return int(b, 16)


def _scan_string(data: bytes, i: int) -> tuple[int, str | None]:
    """Scan past a string body starting after its opening quote."""
    n = len(data)
    while i < n:
        c = data[i]
        if c == 0x22:
            return i + 1, None
        if c == 0x5C:
            i += 1
            if i >= n:
                break
            e = data[i]
            if e == 0x75:  # u
                for _ in range(4):
                    i += 1
                    if i >= n:
                        return i, "unexpected end of JSON input"
                    if data[i] not in b"0123456789abcdefABCDEF":
                        return i, f"invalid character {_go_quote_char(data[i])} in \\u hexadecimal character escape"
            elif e not in b'"\\/bfnrt':
                return i, f"invalid character {_go_quote_char(e)} in string escape code"
        elif c < 0x20:
            return i, f"invalid character {_go_quote_char(c)} in string literal"
        i += 1
    return i, "unexpected end of JSON input"


def _scan_number(data: bytes, i: int) -> tuple[int, str | None]:
    """Scan a number; the character ending it is judged by the caller's next state, as Go does."""
    n = len(data)

    def digit(j: int) -> bool:
        return j < n and 0x30 <= data[j] <= 0x39

    if data[i] == 0x2D:
        i += 1
        if i >= n:
            return i, "unexpected end of JSON input"
        if not digit(i):
            return i, f"invalid character {_go_quote_char(data[i])} in numeric literal"
    if data[i] == 0x30:
        i += 1
    else:
        while digit(i):
            i += 1
    if i < n and data[i] == 0x2E:
        i += 1
        if i >= n:
            return i, "unexpected end of JSON input"
        if not digit(i):
            return i, f"invalid character {_go_quote_char(data[i])} after decimal point in numeric literal"
        while digit(i):
            i += 1
    if i < n and data[i] in b"eE":
        i += 1
        if i < n and data[i] in b"+-":
            i += 1
        if i >= n:
            return i, "unexpected end of JSON input"
        if not digit(i):
            return i, f"invalid character {_go_quote_char(data[i])} in exponent of numeric literal"
        while digit(i):
            i += 1
    return i, None


def _scan_literal(data: bytes, i: int) -> tuple[int, str | None]:
    word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[data[i]]
    for j in range(1, len(word)):
        k = i + j
        if k >= len(data):
            return k, "unexpected end of JSON input"
        if data[k] != word[j]:
            return k, (
                f"invalid character {_go_quote_char(data[k])} in literal {word.decode()} "
                f"(expecting {_go_quote_char(word[j])})"
            )
    return i + len(word), None
