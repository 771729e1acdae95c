"""The ``k8s.v1.cni.cncf.io/network-status`` annotation and the ``AddedInterface`` event text.

Tools (kubectl plugins, the dynamic-networks controller, dashboards) parse this annotation, so
its JSON matches upstream byte for byte (reference §6 step 15): field order, 4-space indent, Go's
escaping of ``<``, ``>``, ``&``. One deliberate difference (Q12): a default route without a
gateway is left out instead of being written as the string ``"<nil>"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from multusd.cni.types import DNS, LATEST_VERSION, Result, dns_to_json

NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


@dataclass(frozen=True)
class NetworkStatus:
    name: str
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""
    mtu: int = 0
    default: bool = False
    dns: DNS = field(default_factory=DNS)
    gateway: tuple[str, ...] = ()
    device_info: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Upstream's field order; everything omitempty except ``name`` and ``dns``."""
        obj: dict[str, Any] = {"name": self.name}
        if self.interface:
            obj["interface"] = self.interface
        if self.ips:
            obj["ips"] = list(self.ips)
        if self.mac:
            obj["mac"] = self.mac
        if self.mtu:
            obj["mtu"] = self.mtu
        if self.default:
            obj["default"] = True
        obj["dns"] = dns_to_json(self.dns)
        if self.device_info:
            obj["device-info"] = self.device_info
        if self.gateway:
            obj["gateway"] = list(self.gateway)
        return obj


def _default_gateways(result: Result) -> tuple[str, ...]:
    """Gateways of the result's default routes (dst unset, 0.0.0.0 or ::, any prefix length)."""
    gateways = []
    for route in result.routes:
        # upstream writes the string "<nil>" for a default route without a gateway (Q12)
        if route.dst.network_address.is_unspecified and route.gw is not None:
            gateways.append(str(route.gw))
    return tuple(gateways)


def network_statuses(name: str, result: Result, is_default: bool) -> list[NetworkStatus]:
    """The status entries for one delegate's result (NAD client ``CreateNetworkStatuses``)."""
    try:
        res = result.with_version(LATEST_VERSION)
    except Exception:
        return []
    gateways = _default_gateways(res)
    if len(res.interfaces) == 1:
        status = NetworkStatus(
            name=name,
            ips=tuple(str(ip.address.ip) for ip in res.ips),
            default=is_default,
            dns=res.dns,
            gateway=gateways,
        )
        for iface in res.interfaces:
            if iface.sandbox:
                status = _replace_iface(status, iface.name, iface.mac, iface.mtu)
        return [status]
    sandboxed = [(index, iface) for index, iface in enumerate(res.interfaces) if iface.sandbox]
    if not sandboxed:
        return []
    default_index = None
    if is_default:
        default_index = next(
            (ip.interface for ip in res.ips if ip.gateway is not None and ip.interface is not None), None
        )
        if default_index is None:
            default_index = sandboxed[0][0]
    by_interface: dict[int, list[str]] = {index: [] for index, _ in sandboxed}
    last = sandboxed[-1][0]
    for ip in res.ips:
        target = ip.interface if ip.interface in by_interface else (last if ip.interface is None else None)
        if target is not None:
            by_interface[target].append(str(ip.address.ip))
    return [
        NetworkStatus(
            name=name,
            interface=iface.name,
            ips=tuple(by_interface[index]),
            mac=iface.mac,
            mtu=iface.mtu,
            default=index == default_index,
            dns=res.dns,
            gateway=gateways,
        )
        for index, iface in sandboxed
    ]


def _replace_iface(status: NetworkStatus, name: str, mac: str, mtu: int) -> NetworkStatus:
    return NetworkStatus(
        name=status.name,
        interface=name,
        ips=status.ips,
        mac=mac,
        mtu=mtu,
        default=status.default,
        dns=status.dns,
        gateway=status.gateway,
        device_info=status.device_info,
    )


def _go_json(obj: Any) -> str:
    text = json.dumps(obj, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def annotation_value(statuses: Sequence[NetworkStatus]) -> str:
    """``"[" + join(",", MarshalIndent(status, "", "    ")) + "]"``, as upstream writes it."""
    return annotation_json([s.to_json() for s in statuses])


def annotation_json(entries: Sequence[Any]) -> str:
    """The annotation text for already-serialised entries (used when editing an existing list)."""
    return "[" + ",".join(_go_json(entry) for entry in entries) + "]"


def added_interface_message(ifname: str, result: Result, network_name: str) -> str:
    """``Add <ifname> [<ip/prefix> …] from <name>`` (Go's ``%v`` of a string slice)."""
    addresses = " ".join(str(ip.address) for ip in result.ips)
    if network_name:
        return f"Add {ifname} [{addresses}] from {network_name}"
    return f"Add {ifname} [{addresses}]"
