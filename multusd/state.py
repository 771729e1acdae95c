"""What multusd attached to each container, on disk in upstream's scratch format.

``<cniDir>/<containerID>`` holds a JSON array of delegate records (reference §7.1), written
*before* any plugin runs so that a crash mid-ADD still leaves enough for DEL to clean up. The
format is upstream's, byte-compatible where it matters (``Bytes``, ``ConfList.plugins``, the
request fields), so a node can switch between the Go image and multusd in either direction and
DEL still works for pods attached by the other.

Unlike upstream, files are written tmp + fsync + rename (a torn write can never be read back),
and a file that does not parse is reported as :class:`CorruptStateError` instead of being
silently skipped (upstream's Q9).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multusd.cni.atomicfile import write_atomic

_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class StateError(Exception):
    """State could not be read or written."""


class CorruptStateError(StateError):
    """A scratch file exists but does not describe delegates; the path and reason are kept."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"scratch file {path} is corrupt: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class DelegateRecord:
    """One delegate as DEL needs it: the exact config that ran, and the pod's requests for it."""

    name: str  # "cbr0" for the cluster network, "<ns>/<nad>" for a NAD
    conf_bytes: bytes  # the exact delegate config JSON executed (upstream's ``Bytes``)
    ifname_request: str = ""
    mac_request: str = ""
    ip_request: tuple[str, ...] = ()
    infiniband_guid_request: str = ""
    default_route: tuple[str, ...] | None = None
    filter_v4_gateway: bool = False
    filter_v6_gateway: bool = False
    device_id: str = ""
    resource_name: str = ""
    # Who the attachment belongs to: multusd's own keys (Go ignores unknown keys), used by the
    # orphan reaper and `multusd inspect`; empty in files written by upstream.
    netns: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    # Parsed view of conf_bytes, derived on load; not persisted separately.
    conf: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_list(self) -> bool:
        """A conflist delegate (upstream: ``ConfList.plugins`` non-empty)."""
        return isinstance(self.conf.get("plugins"), list) and bool(self.conf["plugins"])

    @property
    def network_name(self) -> str:
        name = self.conf.get("name")
        return name if isinstance(name, str) else ""

    @classmethod
    def from_conf(cls, name: str, conf_bytes: bytes, **requests: Any) -> DelegateRecord:
        try:
            conf = json.loads(conf_bytes)
        except ValueError as exc:
            raise StateError(f"delegate {name}: config is not JSON: {exc}") from exc
        if not isinstance(conf, dict):
            raise StateError(f"delegate {name}: config is not a JSON object")
        return cls(name=name, conf_bytes=conf_bytes, conf=conf, **requests)

    def to_json(self) -> dict[str, Any]:
        """Upstream's ``DelegateNetConf`` JSON (struct field names where Go has no tag)."""
        conf = self.conf
        plugin_view: dict[str, Any] = {"ipam": {}}
        list_view: dict[str, Any] = {}
        if self.is_list:
            list_view = {k: conf[k] for k in ("cniVersion", "name", "disableCheck", "disableGC") if conf.get(k)}
            list_view["plugins"] = conf["plugins"]
        else:
            for key in ("cniVersion", "name", "type", "capabilities", "ipam"):
                if conf.get(key):
                    plugin_view[key] = conf[key]
        obj: dict[str, Any] = {"Conf": plugin_view, "ConfList": list_view, "Name": self.name}
        optional = {
            "ifnameRequest": self.ifname_request,
            "macRequest": self.mac_request,
            "infinibandGUIDRequest": self.infiniband_guid_request,
            "ipRequest": list(self.ip_request),
        }
        obj.update({k: v for k, v in optional.items() if v})
        if self.default_route is not None and self.default_route:
            obj["default-route"] = list(self.default_route)
        obj["IsFilterV4Gateway"] = self.filter_v4_gateway
        obj["IsFilterV6Gateway"] = self.filter_v6_gateway
        if self.device_id:
            obj["deviceID"] = self.device_id
        if self.resource_name:
            obj["resourceName"] = self.resource_name
        obj["Bytes"] = base64.b64encode(self.conf_bytes).decode("ascii")
        owner = {
            "netns": self.netns,
            "podNamespace": self.pod_namespace,
            "podName": self.pod_name,
            "podUID": self.pod_uid,
        }
        obj.update({k: v for k, v in owner.items() if v})
        return obj

    @classmethod
    def from_json(cls, obj: Any) -> DelegateRecord:
        """Read one record written by multusd or by upstream's Go daemon (keys case-insensitive)."""
        if not isinstance(obj, dict):
            raise ValueError("delegate entry is not an object")
        lower = {k.lower(): v for k, v in obj.items()}
        raw = lower.get("bytes")
        if not isinstance(raw, str) or not raw:
            raise ValueError("delegate entry has no Bytes")
        try:
            conf_bytes = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"delegate Bytes is not base64: {exc}") from exc
        try:
            conf = json.loads(conf_bytes)
        except ValueError as exc:
            raise ValueError(f"delegate Bytes is not JSON: {exc}") from exc
        if not isinstance(conf, dict):
            raise ValueError("delegate Bytes is not a JSON object")
        name = lower.get("name")
        route = lower.get("default-route")
        return cls(
            name=name if isinstance(name, str) else str(conf.get("name", "")),
            conf_bytes=conf_bytes,
            ifname_request=_str(lower.get("ifnamerequest")),
            mac_request=_str(lower.get("macrequest")),
            ip_request=tuple(_strs(lower.get("iprequest"))),
            infiniband_guid_request=_str(lower.get("infinibandguidrequest")),
            default_route=tuple(_strs(route)) if route is not None else None,
            filter_v4_gateway=lower.get("isfilterv4gateway") is True,
            filter_v6_gateway=lower.get("isfilterv6gateway") is True,
            device_id=_str(lower.get("deviceid")),
            resource_name=_str(lower.get("resourcename")),
            netns=_str(lower.get("netns")),
            pod_namespace=_str(lower.get("podnamespace")),
            pod_name=_str(lower.get("podname")),
            pod_uid=_str(lower.get("poduid")),
            conf=conf,
        )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def encode_records(records: Sequence[DelegateRecord]) -> bytes:
    return json.dumps([r.to_json() for r in records]).encode()


def decode_records(data: bytes, path: Path) -> list[DelegateRecord]:
    try:
        items = json.loads(data)
    except ValueError as exc:
        raise CorruptStateError(path, f"not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise CorruptStateError(path, "not a JSON array of delegates")
    try:
        return [DelegateRecord.from_json(item) for item in items]
    except ValueError as exc:
        raise CorruptStateError(path, str(exc)) from exc


class StateStore:
    """The scratch files under ``cniDir`` (one per container ID)."""

    def __init__(self, cni_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(cni_dir)

    def path(self, container_id: str) -> Path:
        if not _CONTAINER_ID.match(container_id):
            raise StateError(f"invalid container ID {container_id!r}")
        return self.dir / container_id

    def save(self, container_id: str, records: Sequence[DelegateRecord]) -> Path:
        path = self.path(container_id)
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, encode_records(records))
        except OSError as exc:
            raise StateError(f"cannot save delegates to {path}: {exc.strerror or exc}") from exc
        return path

    def load(self, container_id: str) -> list[DelegateRecord] | None:
        """The records, or None when there is no file. Raises CorruptStateError for junk."""
        path = self.path(container_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return decode_records(data, path)

    def remove(self, container_id: str) -> None:
        self.path(container_id).unlink(missing_ok=True)

    def container_ids(self) -> Iterator[str]:
        """Every container with a scratch file (the ``results`` dir and temp files skipped)."""
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and _CONTAINER_ID.match(entry.name):
                yield entry.name

    def count(self) -> int:
        return sum(1 for _ in self.container_ids())
