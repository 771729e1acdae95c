"""Delegates: the networks one pod gets, each a CNI conf or list plus the pod's requests for it.

Resolution follows upstream (reference §5.4, §5.6): the cluster network (in K3s auto mode the
absolute path of the flannel conflist), then ``defaultNetworks`` for pods outside
``systemNamespaces``, then the pod's own selections. A delegate converts to and from the
scratch-file record (:mod:`multusd.state`) so DEL can run exactly what ADD ran.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multusd.attach.selection import go_json_syntax_error
from multusd.cni.conf import (
    ConfList,
    PluginConf,
    load_conf_by_name,
    load_conf_file,
    parse_conf_list,
    parse_plugin_conf,
)
from multusd.cni.errors import CniCode, CniError
from multusd.state import DelegateRecord

MULTUS_CONF_PREFIX = "00-multus"


@dataclass(frozen=True)
class MultusConf:
    """The multus NetConf of a request (shim stdin + daemon-config overlay), reference §4."""

    cni_version: str = ""
    name: str = ""
    cluster_network: str = ""
    default_networks: tuple[str, ...] = ()
    system_namespaces: tuple[str, ...] = ("kube-system",)
    multus_namespace: str = "kube-system"
    conf_dir: str = "/etc/cni/multus/net.d"
    namespace_isolation: bool = False
    global_namespaces: tuple[str, ...] = ("default",)
    auxiliary_cni_chain_name: str = ""
    retry_delete_on_error: bool = False
    runtime_config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> MultusConf:
        """Typed view of the config; a wrong type is a CNI error naming the key (code 7)."""

        def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = config.get(key)
            if value is None:
                return default
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"Multus: error loading netconf: {key!r} has wrong type")
            return value

        def strings(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = get(key, list, None)
            if value is None:
                return default
            if not all(isinstance(v, str) for v in value):
                raise CniError(
                    CniCode.INVALID_NETWORK_CONFIG, f"Multus: error loading netconf: {key!r} must be strings"
                )
            return tuple(value)

        global_ns = get("globalNamespaces", str, "")
        return cls(
            cni_version=get("cniVersion", str, ""),
            name=get("name", str, ""),
            cluster_network=get("clusterNetwork", str, ""),
            default_networks=strings("defaultNetworks", ()),
            system_namespaces=strings("systemNamespaces", ("kube-system",)),
            multus_namespace=get("multusNamespace", str, "kube-system") or "kube-system",
            conf_dir=get("confDir", str, "/etc/cni/multus/net.d") or "/etc/cni/multus/net.d",
            namespace_isolation=get("namespaceIsolation", bool, False),
            global_namespaces=tuple(n.strip() for n in global_ns.split(",")) if global_ns else ("default",),
            auxiliary_cni_chain_name=get("auxiliaryCNIChainName", str, ""),
            retry_delete_on_error=get("retryDeleteOnError", bool, False),
            runtime_config=get("runtimeConfig", dict, {}),
        )


@dataclass(frozen=True)
class Delegate:
    """One network to attach: its config and what the pod asked for on it."""

    name: str  # "cbr0" (cluster network from a file) or "<ns>/<nad>"
    conf: PluginConf | ConfList
    master: bool = False
    ifname_request: str = ""
    mac_request: str = ""
    ip_request: tuple[str, ...] = ()
    infiniband_guid_request: str = ""
    default_route: tuple[str, ...] | None = None
    filter_v4_gateway: bool = False
    filter_v6_gateway: bool = False
    port_mappings: Sequence[Any] | None = None
    bandwidth: Mapping[str, Any] | None = None
    device_id: str = ""
    resource_name: str = ""

    @property
    def network_name(self) -> str:
        return self.conf.name

    @property
    def plugin_type(self) -> str:
        """A bounded label for metrics: the conf's type, or the first plugin's for a list."""
        if isinstance(self.conf, ConfList):
            return self.conf.plugins[0].type if self.conf.plugins else "list"
        return self.conf.type

    def conf_bytes(self) -> bytes:
        """The exact config to persist: lists losslessly, with subdirectory plugins inlined."""
        if isinstance(self.conf, ConfList):
            if len(self.conf.plugins) != len(self.conf.raw.get("plugins") or []):
                return json.dumps(self.conf.expanded_raw()).encode()
            return self.conf.to_bytes()
        return self.conf.to_bytes()

    def to_record(self) -> DelegateRecord:
        return DelegateRecord.from_conf(
            self.name,
            self.conf_bytes(),
            ifname_request=self.ifname_request,
            mac_request=self.mac_request,
            ip_request=self.ip_request,
            infiniband_guid_request=self.infiniband_guid_request,
            default_route=self.default_route,
            filter_v4_gateway=self.filter_v4_gateway,
            filter_v6_gateway=self.filter_v6_gateway,
            device_id=self.device_id,
            resource_name=self.resource_name,
        )

    @classmethod
    def from_record(cls, record: DelegateRecord, master: bool, multus_cni_version: str = "") -> Delegate:
        """Rebuild from a scratch record; a list without cniVersion takes multus' (§7.3 step 5)."""
        conf: PluginConf | ConfList
        if record.is_list and not record.conf.get("cniVersion") and multus_cni_version:
            conf = parse_conf_list({**record.conf, "cniVersion": multus_cni_version})
        elif record.is_list:
            conf = parse_conf_list(record.conf_bytes)
        else:
            conf = parse_plugin_conf(record.conf_bytes)
        return cls(
            name=record.name,
            conf=conf,
            master=master,
            ifname_request=record.ifname_request,
            mac_request=record.mac_request,
            ip_request=record.ip_request,
            infiniband_guid_request=record.infiniband_guid_request,
            default_route=record.default_route,
            filter_v4_gateway=record.filter_v4_gateway,
            filter_v6_gateway=record.filter_v6_gateway,
            device_id=record.device_id,
            resource_name=record.resource_name,
        )


def inject_cni_args(conf: PluginConf | ConfList, cni_args: Mapping[str, Any]) -> PluginConf | ConfList:
    """The element's ``cni-args`` merged into ``args.cni`` of the conf, or of every list plugin.

    Existing ``args.cni`` keys are kept unless ``cni_args`` sets them; ``args``/``args.cni`` are
    created when missing. Either being something other than an object is an error (upstream
    panicked, Q13). The result is re-serialised with sorted keys, as Go's map marshalling does.
    """
    if isinstance(conf, ConfList):
        raw = copy.deepcopy(conf.expanded_raw())
        for index, plugin in enumerate(raw["plugins"]):
            _merge_cni_args(plugin, cni_args, f"plugin {index} of ")
        return parse_conf_list(_go_marshal(raw))
    raw = copy.deepcopy(conf.raw)
    _merge_cni_args(raw, cni_args, "")
    return parse_plugin_conf(_go_marshal(raw))


def inject_device_id(conf: PluginConf | ConfList, device_id: str) -> PluginConf | ConfList:
    """Upstream's device-ID edit: ``deviceID`` and ``pciBusID`` on the conf or every list plugin."""
    if isinstance(conf, ConfList):
        raw = copy.deepcopy(conf.expanded_raw())
        for plugin in raw["plugins"]:
            plugin["deviceID"] = plugin["pciBusID"] = device_id
        return parse_conf_list(_go_marshal(raw))
    raw = copy.deepcopy(conf.raw)
    raw["deviceID"] = raw["pciBusID"] = device_id
    return parse_plugin_conf(_go_marshal(raw))


def _merge_cni_args(obj: dict[str, Any], cni_args: Mapping[str, Any], where: str) -> None:
    if "args" not in obj:
        obj["args"] = {"cni": dict(cni_args)}
        return
    args = obj["args"]
    if not isinstance(args, dict):
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"LoadDelegateNetConf(): failed to add cni-args: 'args' of {where}the config is {_json_type(args)}, "
            "not an object",
        )
    if "cni" not in args:
        args["cni"] = dict(cni_args)
        return
    current = args["cni"]
    if not isinstance(current, dict):
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"LoadDelegateNetConf(): failed to add cni-args: 'args.cni' of {where}the config is "
            f"{_json_type(current)}, not an object",
        )
    current.update(cni_args)


def _go_marshal(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def ifname_for(delegate: Delegate, index: int, request_ifname: str) -> str:
    """Upstream's ``getIfname``: explicit request, else the master takes CNI_IFNAME, else net<index>."""
    if delegate.ifname_request:
        return delegate.ifname_request
    if delegate.master:
        return request_ifname
    return f"net{index}"


class NadSource(Protocol):
    """NetworkAttachmentDefinitions: the watch cache, with a live GET behind it."""

    async def get_nad(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


def conf_from_nad(nad: Mapping[str, Any], conf_dir: str) -> PluginConf | ConfList:
    """A NAD's CNI config (reference §5.4): ``spec.config``, or the file in confDir of that name."""
    meta = nad.get("metadata") or {}
    nad_name = str(meta.get("name", ""))
    spec = nad.get("spec") or {}
    text = spec.get("config") if isinstance(spec, dict) else None
    if not text:
        return load_conf_by_name(conf_dir, nad_name)
    if not isinstance(text, str):
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, "GetCNIConfig: spec.config of the NAD is not a string")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        reason = go_json_syntax_error(text.encode()) or str(exc)  # Go's wording, as upstream prints it
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"GetCNIConfig: err in getCNIConfigFromSpec: failed to unmarshal Spec.Config: {reason}",
        ) from exc
    if not isinstance(obj, dict):
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            "GetCNIConfig: err in getCNIConfigFromSpec: failed to unmarshal Spec.Config: not a JSON object",
        )
    if not obj.get("name"):
        obj["name"] = nad_name
        data: bytes = json.dumps(obj, sort_keys=True).encode()
    else:
        data = text.encode()
    if obj.get("type"):
        return parse_plugin_conf(data)
    return parse_conf_list(data)


def load_network_path(path: str) -> PluginConf | ConfList:
    """A clusterNetwork/defaultNetworks value containing ``/``: a directory or a file (§5.6 c, d)."""
    try:
        is_dir = os.path.isdir(path)
        if not is_dir and not os.path.exists(path):
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"stat {path}: no such file or directory")
    except OSError as exc:
        raise CniError(CniCode.IO_FAILURE, f"stat {path}: {exc.strerror or exc}") from exc
    if is_dir:
        # Upstream may pick its own 00-multus.conf here (Q15); a network is never multus itself.
        for entry in sorted(os.listdir(path)):
            full = os.path.join(path, entry)
            if entry.startswith(MULTUS_CONF_PREFIX) or os.path.isdir(full):
                continue
            if os.path.splitext(entry)[1] in (".conf", ".conflist", ".json"):
                return load_conf_file(full)
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, f"getNetDelegate: cannot find network: {path}")
    return load_conf_file(path)


async def resolve_network(
    value: str, mconf: MultusConf, nads: NadSource | None, on_missing_nad: Any = None
) -> tuple[str, PluginConf | ConfList]:
    """(delegate name, config) for a clusterNetwork/defaultNetworks entry (§5.6)."""
    if "/" in value:
        conf = load_network_path(value)
        return conf.name, conf
    nad_error: CniError | None = None
    if nads is not None:
        nad = await nads.get_nad(mconf.multus_namespace, value)
        if nad is not None:
            return f"{mconf.multus_namespace}/{value}", conf_from_nad(nad, mconf.conf_dir)
        nad_error = CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"cannot find a network-attachment-definition ({value}) in namespace ({mconf.multus_namespace})",
        )
    try:
        conf = load_conf_by_name(mconf.conf_dir, value)
    except CniError as exc:
        if nad_error is not None and on_missing_nad is not None:
            on_missing_nad(nad_error.msg)
        raise CniError(exc.code, f"getNetDelegate: cannot find network: {value}", exc.msg) from exc
    return conf.name, conf


async def cluster_delegates(
    mconf: MultusConf, nads: NadSource | None, pod_namespace: str | None, on_missing_nad: Any = None
) -> list[Delegate]:
    """The cluster network (master) and, for pods outside systemNamespaces, defaultNetworks."""
    if not mconf.cluster_network:
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            "Multus: error loading netconf: at least one delegate/clusterNetwork must be specified",
        )
    try:
        name, conf = await resolve_network(mconf.cluster_network, mconf, nads, on_missing_nad)
    except CniError as exc:
        raise CniError(
            exc.code,
            f"failed to get clusterNetwork/defaultNetworks: GetDefaultNetworks: failed to get clusterNetwork "
            f"{mconf.cluster_network} in namespace {mconf.multus_namespace}: {exc.msg}",
            exc.details,
        ) from exc
    delegates = [Delegate(name=name, conf=conf, master=True)]
    if pod_namespace is not None and pod_namespace not in mconf.system_namespaces:
        for value in mconf.default_networks:
            try:
                name, conf = await resolve_network(value, mconf, nads, on_missing_nad)
            except CniError as exc:
                raise exc.with_prefix("failed to get clusterNetwork/defaultNetworks: ") from exc
            delegates.append(Delegate(name=name, conf=conf))
    return delegates
