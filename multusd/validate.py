"""``multusd validate``: a dry run of NetworkAttachmentDefinitions and of the pods that use them.

Upstream has no validation (users-and-k3s §4 item 5, MC#119): a NAD with a JSON typo, a plugin
that K3s does not ship, or a misspelt network in a pod annotation only shows up when a pod is
created, as a sandbox error users find hard to read (P14). This command runs, ahead of time, the
parsing the daemon itself runs at ADD (:func:`~multusd.attach.delegates.conf_from_nad`, the
annotation grammar of :mod:`multusd.attach.selection`, libcni's conf rules) plus the checks only a
node can answer (plugin binaries in the bin dir, inside the host root like the daemon's lookup;
confDir files for NADs with an empty ``spec.config``), and reports one line per finding naming
the NAD or pod::

    error nad/default/macvlan-conf: plugin "macvlan" not found in [/var/lib/rancher/k3s/data/cni] …
    ok pod/default/web: networks default/macvlan-conf@net1

Inputs are manifests (files or ``-``: YAML or JSON, several documents, ``*List`` kinds, pods and
the pod templates of workloads) and/or every NAD of the cluster (``--from-cluster``). ``--offline``
skips the node checks, for CI. Exit 1 when any error was found, 2 when the check itself could not
run (bad daemon config, API unreachable).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multusd.cni.conf import ConfList, PluginConf

#: K3s's containerd CNI bin dir and conf dir (users-and-k3s §2.2); the defaults without --config.
K3S_BIN_DIR = "/var/lib/rancher/k3s/data/cni"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"
DEFAULT_NAMESPACE = "default"

#: The plugins K3s's multi-call binary provides; anything else must be installed (k3s#9224).
K3S_BUILTIN_PLUGINS = frozenset({"bandwidth", "bridge", "firewall", "flannel", "host-local", "loopback", "portmap"})

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
NAD_KIND = "NetworkAttachmentDefinition"

#: Workload kinds whose pod template carries the annotations: path from the object to the template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

#: Plugins that take a host ``master`` interface and fall back to the default-route one.
MASTER_PLUGINS = frozenset({"macvlan", "ipvlan"})

ERROR, WARNING, OK = "error", "warning", "ok"
EXIT_FINDINGS = 1
EXIT_CANNOT_CHECK = 2


# --------------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Finding:
    """One verdict about one object. ``kind`` is ``nad``, ``pod`` (or the workload kind, lower
    case) or ``file`` for input that could not be read; ``source`` says where the object came from."""

    severity: str
    kind: str
    namespace: str
    name: str
    message: str
    source: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace or '-'}/{self.name}"

    def line(self) -> str:
        return f"{self.severity} {self.ref}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "message": self.message,
            "source": self.source,
        }


class _Report:
    """Findings about one object; ``ok`` is added by :meth:`close` only when nothing was wrong."""

    def __init__(self, kind: str, namespace: str, name: str, source: str) -> None:
        self.kind, self.namespace, self.name, self.source = kind, namespace, name, source
        self.findings: list[Finding] = []

    def add(self, severity: str, message: str) -> None:
        self.findings.append(Finding(severity, self.kind, self.namespace, self.name, message, self.source))

    def error(self, message: str) -> None:
        self.add(ERROR, message)

    def warning(self, message: str) -> None:
        self.add(WARNING, message)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == ERROR for f in self.findings)

    def close(self, ok_message: str) -> list[Finding]:
        if not self.findings:
            self.add(OK, ok_message)
        return self.findings


# --------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class Options:
    """What the checks compare against: this node's directories and the daemon's namespace policy."""

    bin_dirs: tuple[str, ...] = (K3S_BIN_DIR,)
    #: Host root the daemon chroots into; binaries are looked up inside it (absolute K3s symlinks).
    chroot: str | None = None
    conf_dir: str = DEFAULT_CONF_DIR
    #: False (``--offline``): skip everything that needs this node (binaries, confDir, interfaces).
    check_node: bool = True
    multus_namespace: str = "kube-system"
    namespace_isolation: bool = False
    global_namespaces: tuple[str, ...] = ("default",)
    default_networks: int = 0
    system_namespaces: tuple[str, ...] = ("kube-system",)
    #: Where ``/sys/class/net`` is read for ``master`` interfaces (a test seam).
    sys_class_net: str = "/sys/class/net"


# --------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class PodManifest:
    """A pod, or a workload's pod template: what its annotations ask for."""

    kind: str
    namespace: str
    name: str
    annotations: Mapping[str, Any]
    source: str


@dataclass
class Manifests:
    """Objects read from the inputs, plus findings about inputs that could not be read."""

    nads: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    pods: list[PodManifest] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _documents(text: str) -> list[Any]:
    """JSON first when it looks like JSON (YAML rejects JSON indented with tabs), else YAML."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except ValueError:
            pass
        else:
            return doc if isinstance(doc, list) else [doc]
    import yaml

    return list(yaml.safe_load_all(text))


def _dig(obj: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def add_objects(out: Manifests, documents: Iterable[Any], source: str, default_namespace: str) -> None:
    """Sort parsed documents into NADs and pod manifests; ``*List`` kinds are expanded.

    Objects without a namespace take ``default_namespace``, as ``kubectl apply`` would. Kinds that
    carry neither NAD config nor pod annotations are ignored: one file often holds a whole app.
    """
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        where = f"{source} document {index + 1}"
        if not isinstance(doc, dict):
            out.findings.append(Finding(ERROR, "file", "", source, f"document {index + 1} is not an object"))
            continue
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            add_objects(out, doc["items"], source, default_namespace)
            continue
        meta: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
        namespace = str(meta.get("namespace") or default_namespace)
        if kind == NAD_KIND:
            nad = dict(doc)
            nad["metadata"] = {**meta, "namespace": namespace}
            out.nads.append((nad, where))
        elif kind in POD_TEMPLATE_PATHS:
            template = _dig(doc, POD_TEMPLATE_PATHS[kind])
            template_meta = _dig(template, ("metadata",))
            annotations = _dig(template_meta, ("annotations",)) if isinstance(template_meta, dict) else None
            out.pods.append(
                PodManifest(
                    kind=kind.lower(),
                    namespace=namespace,
                    name=str(meta.get("name") or meta.get("generateName") or "?"),
                    annotations=annotations if isinstance(annotations, dict) else {},
                    source=where,
                )
            )


def load_manifests(paths: Sequence[str], default_namespace: str = DEFAULT_NAMESPACE) -> Manifests:
    """Read every input (``-`` is stdin); an unreadable or unparsable file is an error finding."""
    import yaml

    out = Manifests()
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            out.findings.append(Finding(ERROR, "file", "", path, f"cannot read: {reason}", path))
            continue
        try:
            docs = _documents(text)
        except yaml.YAMLError as exc:
            detail = str(exc).replace("\n", " ")
            out.findings.append(Finding(ERROR, "file", "", path, f"not valid YAML/JSON: {detail}", path))
            continue
        add_objects(out, docs, path, default_namespace)
    return out


# --------------------------------------------------------------------------------------------
# NADs


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta: Mapping[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def check_nad(nad: Mapping[str, Any], options: Options, source: str = "") -> list[Finding]:
    """Every finding about one NAD, an ``ok`` summary when there is nothing to report."""
    from multusd.attach.delegates import conf_from_nad
    from multusd.cni.conf import ConfList, load_conf_by_name
    from multusd.cni.errors import CniError

    namespace, name = _meta(nad)
    report = _Report("nad", namespace, name or "?", source)
    if not name:
        report.error("metadata.name is missing")
        return report.findings
    spec = nad.get("spec")
    if spec is not None and not isinstance(spec, dict):
        report.error("spec must be an object")
        return report.findings
    text = (spec or {}).get("config")
    if text is not None and not isinstance(text, str):
        report.error(
            "spec.config must be a string holding the CNI config as JSON, not a YAML "
            f"{'object' if isinstance(text, dict) else type(text).__name__} (quote it: config: '{{...}}')"
        )
        return report.findings
    from_file = ""
    if not text:
        if not options.check_node:
            report.warning(
                f'spec.config is empty: each node reads the CNI config named "{name}" from its confDir '
                f"({options.conf_dir}); not checked (--offline)"
            )
            return report.findings
        try:
            conf: PluginConf | ConfList = load_conf_by_name(options.conf_dir, name)
        except CniError as exc:
            hint = f" ({exc.details})" if exc.details else ""
            report.error(f'spec.config is empty and confDir {options.conf_dir} has no CNI config named "{name}"{hint}')
            return report.findings
        from_file = f" (from confDir {options.conf_dir})"
    else:
        try:
            obj = json.loads(text)
        except ValueError as exc:
            report.error(f"spec.config is not valid JSON: {exc}")
            return report.findings
        if not isinstance(obj, dict):
            report.error(f"spec.config must be a JSON object, got {type(obj).__name__}")
            return report.findings
        if "type" not in obj and "plugins" not in obj:
            report.error('spec.config has neither "type" (a single plugin) nor "plugins" (a plugin list)')
            return report.findings
        if obj.get("type") and "plugins" in obj:
            report.warning(
                'spec.config has both "type" and "plugins": it is run as a single plugin, "plugins" is ignored'
            )
        try:
            conf = conf_from_nad(nad, options.conf_dir)
        except CniError as exc:
            report.error(f"invalid CNI config: {exc}")
            return report.findings
    _check_conf(conf, report, options, nad)
    if isinstance(conf, ConfList):
        what = f"conflist of {len(conf.plugins)}: " + ", ".join(_describe_plugin(p.raw, p.type) for p in conf.plugins)
    else:
        what = _describe_plugin(conf.raw, conf.type)
    version = conf.cni_version or "unset"
    return report.close(f"{what}, cniVersion {version}{from_file}")


def _describe_plugin(raw: Mapping[str, Any], plugin_type: str) -> str:
    ipam = raw.get("ipam")
    if isinstance(ipam, dict) and ipam.get("type"):
        return f"{plugin_type} (ipam {ipam['type']})"
    return plugin_type


def _check_conf(conf: PluginConf | ConfList, report: _Report, options: Options, nad: Mapping[str, Any]) -> None:
    from multusd.cni.conf import ConfList, validate_network_name
    from multusd.cni.errors import CniError
    from multusd.cni.types import SUPPORTED_VERSIONS

    try:
        validate_network_name(conf.name)
    except CniError as exc:
        report.error(f'network name "{conf.name}": {exc.msg} (libcni refuses it at ADD)')
    if not conf.cni_version:
        report.warning(
            "cniVersion is not set"
            + (": the list runs with multus' own cniVersion" if isinstance(conf, ConfList) else "")
        )
    elif conf.cni_version not in SUPPORTED_VERSIONS:
        report.error(f'cniVersion "{conf.cni_version}" is not supported (supported: {", ".join(SUPPORTED_VERSIONS)})')
    plugins = conf.plugins if isinstance(conf, ConfList) else (conf,)
    dirs_present = _bin_dirs_present(options) if options.check_node else False
    if options.check_node and not dirs_present:
        report.warning(
            f"plugin binaries not checked: no bin dir {_list(options.bin_dirs)}{_inside(options.chroot)} "
            "exists here (give --bin-dir/--chroot, or --offline)"
        )
    annotations = _dig(nad, ("metadata", "annotations"))
    has_resource = isinstance(annotations, dict) and bool(annotations.get("k8s.v1.cni.cncf.io/resourceName"))
    for index, plugin in enumerate(plugins):
        label = f'plugin {index} "{plugin.type}"' if len(plugins) > 1 else f'plugin "{plugin.type}"'
        if dirs_present:
            _check_binary(plugin.type, label, report, options)
        _check_plugin_keys(plugin.raw, plugin.type, label, report, options, has_resource)
        ipam = plugin.raw.get("ipam")
        if ipam is not None:
            _check_ipam(ipam, label, report, options, dirs_present, plugin.capabilities)


def _list(dirs: Sequence[str]) -> str:
    return "[" + " ".join(dirs) + "]"


def _inside(root: str | None) -> str:
    return f" (inside {root})" if root not in (None, "", "/") else ""


def _bin_dirs_present(options: Options) -> bool:
    from multusd.cni.rootpath import resolve_in_root

    for directory in options.bin_dirs:
        try:
            host = resolve_in_root(options.chroot, directory) if options.chroot else directory
        except OSError:
            continue
        if os.path.isdir(host):
            return True
    return False


def _check_binary(plugin_type: str, label: str, report: _Report, options: Options) -> None:
    from multusd.cni.errors import CniError
    from multusd.cni.exec import find_in_path

    try:
        find_in_path(plugin_type, list(options.bin_dirs), root=options.chroot or None)
    except CniError:
        hint = ""
        if plugin_type not in K3S_BUILTIN_PLUGINS:
            hint = (
                f"; K3s ships only {', '.join(sorted(K3S_BUILTIN_PLUGINS))}: install it on every node "
                f"(multusd install --plugins {plugin_type})"
            )
        report.error(
            f'{label}: binary "{plugin_type}" not found in {_list(options.bin_dirs)}{_inside(options.chroot)}{hint}'
        )


def _check_plugin_keys(
    raw: Mapping[str, Any], plugin_type: str, label: str, report: _Report, options: Options, has_resource: bool
) -> None:
    if plugin_type in MASTER_PLUGINS:
        master = raw.get("master")
        if not master:
            report.warning(f'{label}: no "master": the node\'s default-route interface is used')
        elif not isinstance(master, str):
            report.error(f'{label}: "master" must be a string')
        elif (
            options.check_node
            and os.path.isdir(options.sys_class_net)
            and not os.path.exists(os.path.join(options.sys_class_net, master))
        ):
            report.warning(f'{label}: master interface "{master}" does not exist on this node')
    elif (
        plugin_type == "host-device"
        and not any(raw.get(k) for k in ("device", "hwaddr", "kernelpath", "pciBusID"))
        and not has_resource
    ):
        report.warning(
            f"{label}: none of device, hwaddr, kernelpath, pciBusID is set and the NAD has no "
            "resourceName annotation: there is no device to move"
        )


# --------------------------------------------------------------------------------------------
# IPAM


Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _check_ipam(
    ipam: Any,
    label: str,
    report: _Report,
    options: Options,
    dirs_present: bool,
    capabilities: Mapping[str, bool],
) -> None:
    if not isinstance(ipam, dict):
        report.error(f"{label}: ipam must be an object")
        return
    ipam_type = ipam.get("type")
    if not ipam_type or not isinstance(ipam_type, str):
        report.error(f'{label}: ipam has no "type"')
        return
    where = f"{label}: ipam {ipam_type}"
    if dirs_present:
        _check_binary(ipam_type, f"{label}: ipam", report, options)
    if ipam_type == "host-local":
        _check_host_local(ipam, where, report)
    elif ipam_type == "static":
        _check_static(ipam, where, report, capabilities)
    elif ipam_type == "whereabouts":
        _check_whereabouts(ipam, where, report)
    if ipam_type in ("host-local", "static", "whereabouts"):
        _check_routes(ipam.get("routes"), where, report)


def _network(text: Any, what: str, where: str, report: _Report) -> Net | None:
    if not isinstance(text, str) or not text:
        report.error(f"{where}: {what} must be a CIDR string, got {text!r}")
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        report.error(f"{where}: {what} {text!r} is not a CIDR")
        return None


def _address(text: Any, what: str, where: str, report: _Report) -> Addr | None:
    if not isinstance(text, str) or not text:
        report.error(f"{where}: {what} must be an IP address string, got {text!r}")
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        report.error(f"{where}: {what} {text!r} is not an IP address")
        return None


def _inside_net(addr: Addr | None, net: Net, what: str, where: str, report: _Report) -> None:
    if addr is not None and addr not in net:
        report.error(f"{where}: {what} {addr} is not inside subnet {net}")


def _check_range(rng: Any, where: str, report: _Report) -> Net | None:
    """One host-local range: the subnet and the addresses that must lie inside it."""
    if not isinstance(rng, dict):
        report.error(f"{where}: a range must be an object")
        return None
    net = _network(rng.get("subnet"), "subnet", where, report)
    if net is None:
        return None
    subnet_ip = ipaddress.ip_interface(rng["subnet"]).ip
    if subnet_ip != net.network_address:
        report.error(f"{where}: subnet {rng['subnet']} has host bits set (the network is {net})")
    if net.prefixlen > net.max_prefixlen - 2:
        report.error(f"{where}: subnet {net} is too small to allocate from")
    bounds: dict[str, Addr | None] = {}
    for key in ("rangeStart", "rangeEnd", "gateway"):
        if rng.get(key) is not None:
            bounds[key] = _address(rng[key], key, where, report)
            _inside_net(bounds[key], net, key, where, report)
    start, end = bounds.get("rangeStart"), bounds.get("rangeEnd")
    if start is not None and end is not None and start.version == end.version and int(start) > int(end):
        report.error(f"{where}: rangeStart {start} is after rangeEnd {end}")
    return net


def _check_host_local(ipam: Mapping[str, Any], where: str, report: _Report) -> None:
    ranges = ipam.get("ranges")
    if ranges is None:
        if not ipam.get("subnet"):
            report.error(f'{where}: neither "ranges" nor "subnet" is set: there is nothing to allocate from')
            return
        _check_range(ipam, where, report)  # the deprecated single range at the top level
        return
    if not isinstance(ranges, list) or not ranges:
        report.error(f'{where}: "ranges" must be a non-empty list of range sets')
        return
    seen: list[tuple[str, Net]] = []
    for i, range_set in enumerate(ranges):
        if not isinstance(range_set, list) or not range_set:
            report.error(f"{where}: ranges[{i}] must be a non-empty list of ranges")
            continue
        versions = set()
        for j, rng in enumerate(range_set):
            net = _check_range(rng, f"{where}: ranges[{i}][{j}]", report)
            if net is None:
                continue
            versions.add(net.version)
            for other_where, other in seen:
                if net.version == other.version and net.overlaps(other):
                    report.error(f"{where}: ranges[{i}][{j}] {net} overlaps {other_where} {other}")
            seen.append((f"ranges[{i}][{j}]", net))
        if len(versions) > 1:
            report.error(f"{where}: ranges[{i}] mixes IPv4 and IPv6 (one range set is one address family)")


def _check_static(ipam: Mapping[str, Any], where: str, report: _Report, capabilities: Mapping[str, bool]) -> None:
    addresses = ipam.get("addresses")
    if addresses is None:
        if not capabilities.get("ips"):
            report.warning(f'{where}: no "addresses" and capabilities.ips is not enabled: the pod gets no address')
        return
    if not isinstance(addresses, list):
        report.error(f'{where}: "addresses" must be a list')
        return
    for i, entry in enumerate(addresses):
        here = f"{where}: addresses[{i}]"
        if not isinstance(entry, dict):
            report.error(f"{here} must be an object")
            continue
        address = entry.get("address")
        try:
            iface = ipaddress.ip_interface(address) if isinstance(address, str) and "/" in address else None
        except ValueError:
            iface = None
        if iface is None:
            report.error(f"{here}: address {address!r} is not an address with a prefix length (e.g. 10.1.1.5/24)")
            continue
        if entry.get("gateway") is not None:
            gateway = _address(entry["gateway"], "gateway", here, report)
            _inside_net(gateway, iface.network, "gateway", here, report)


def _check_whereabouts(ipam: Mapping[str, Any], where: str, report: _Report) -> None:
    ranges: list[tuple[str, Any, Mapping[str, Any]]] = []
    if ipam.get("range") is not None:
        ranges.append((where, ipam["range"], ipam))
    ip_ranges = ipam.get("ipRanges")
    if ip_ranges is not None:
        if not isinstance(ip_ranges, list):
            report.error(f'{where}: "ipRanges" must be a list')
        else:
            for i, entry in enumerate(ip_ranges):
                if isinstance(entry, dict):
                    ranges.append((f"{where}: ipRanges[{i}]", entry.get("range"), entry))
                else:
                    report.error(f"{where}: ipRanges[{i}] must be an object")
    if not ranges:
        report.error(f'{where}: neither "range" nor "ipRanges" is set')
        return
    for here, text, block in ranges:
        net = _whereabouts_range(text, here, report)
        if net is None:
            continue
        for key in ("range_start", "range_end"):
            if block.get(key) is not None:
                _inside_net(_address(block[key], key, here, report), net, key, here, report)
        excludes = block.get("exclude")
        if excludes is not None:
            if not isinstance(excludes, list):
                report.error(f'{here}: "exclude" must be a list of CIDRs')
            else:
                for item in excludes:
                    _network(item, "exclude entry", here, report)
    if ipam.get("gateway") is not None:
        _address(ipam["gateway"], "gateway", where, report)


def _whereabouts_range(text: Any, where: str, report: _Report) -> Net | None:
    """``10.0.0.0/24``, or ``10.0.0.10-10.0.0.50/24`` (a start-end span inside the network)."""
    if isinstance(text, str) and "-" in text and "/" in text:
        span, _, prefix = text.rpartition("/")
        first, _, last = span.partition("-")
        net = _network(f"{first}/{prefix}", "range", where, report)
        if net is not None:
            _inside_net(_address(first, "range start", where, report), net, "range start", where, report)
            _inside_net(_address(last, "range end", where, report), net, "range end", where, report)
        return net
    return _network(text, "range", where, report)


def _check_routes(routes: Any, where: str, report: _Report) -> None:
    if routes is None:
        return
    if not isinstance(routes, list):
        report.error(f'{where}: "routes" must be a list')
        return
    for i, route in enumerate(routes):
        here = f"{where}: routes[{i}]"
        if not isinstance(route, dict):
            report.error(f"{here} must be an object")
            continue
        _network(route.get("dst"), "dst", here, report)
        if route.get("gw") is not None:
            _address(route["gw"], "gw", here, report)


# --------------------------------------------------------------------------------------------
# Pods


def check_pod(pod: PodManifest, known: Mapping[tuple[str, str], bool], options: Options, where: str) -> list[Finding]:
    """The pod's selection annotations parse and name NADs that exist.

    ``known`` maps ``(namespace, name)`` of every NAD given to whether it had errors; ``where``
    says what was searched, for the not-found message.
    """
    from multusd.attach.selection import (
        SelectionError,
        parse_default_network_annotation,
        parse_networks_annotation,
    )
    from multusd.cni.conf import validate_ifname
    from multusd.cni.errors import CniError

    report = _Report(pod.kind, pod.namespace, pod.name, pod.source)
    selected: list[str] = []

    def lookup(namespace: str, name: str, annotation: str) -> None:
        ref = f"{namespace}/{name}"
        if (namespace, name) not in known:
            report.error(
                f'{annotation}: network "{ref}": no NetworkAttachmentDefinition "{name}" in namespace '
                f'"{namespace}" {where}'
            )
        elif known[(namespace, name)]:
            report.warning(f'{annotation}: network "{ref}" has errors (see its own findings)')

    for key in (DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION):
        if key in pod.annotations and not isinstance(pod.annotations[key], str):
            report.error(f"annotation {key}: the value must be a string (quote it in YAML)")
            return report.findings

    value = pod.annotations.get(DEFAULT_NETWORK_ANNOTATION)
    if value is not None:
        try:
            default = parse_default_network_annotation(str(value), options.multus_namespace)
        except SelectionError as exc:
            report.error(f"annotation {DEFAULT_NETWORK_ANNOTATION}: {exc.msg}")
        else:
            if default is not None:
                lookup(default.namespace, default.name, f"annotation {DEFAULT_NETWORK_ANNOTATION}")
                selected.append(f"default {default.ref}")

    value = pod.annotations.get(NETWORKS_ANNOTATION)
    if value is not None:
        try:
            selections = parse_networks_annotation(str(value), pod.namespace)
        except SelectionError as exc:
            report.error(f"annotation {NETWORKS_ANNOTATION}: {exc.msg}")
            selections = []
        first_index = 1 + (options.default_networks if pod.namespace not in options.system_namespaces else 0)
        ifnames: dict[str, str] = {"eth0": "the cluster network"}
        for offset, sel in enumerate(selections):
            what = f"annotation {NETWORKS_ANNOTATION}"
            if not sel.name:
                report.error(f"{what}: item {offset + 1} has an empty network name (a stray comma?)")
                continue
            isolated = options.namespace_isolation and sel.namespace != pod.namespace
            if isolated and sel.namespace not in options.global_namespaces:
                report.error(
                    f'{what}: network "{sel.ref}" is in another namespace and namespaceIsolation is on '
                    f"(allowed: {pod.namespace}, {', '.join(options.global_namespaces)})"
                )
            lookup(sel.namespace, sel.name, what)
            ifname = sel.interface or f"net{first_index + offset}"
            if sel.interface:
                try:
                    validate_ifname(sel.interface)
                except CniError as exc:
                    report.error(f'{what}: network "{sel.ref}": interface "{sel.interface}": {exc.msg}')
            if ifname in ifnames:
                report.error(f'{what}: interface "{ifname}" of "{sel.ref}" is also used by {ifnames[ifname]}')
            else:
                ifnames[ifname] = f'"{sel.ref}"'
            selected.append(f"{sel.ref}@{ifname}")
    if not selected and not report.findings:
        return report.close("no multus networks requested")
    return report.close("networks " + ", ".join(selected))


# --------------------------------------------------------------------------------------------
# Everything together


def validate(
    nads: Sequence[tuple[Mapping[str, Any], str]],
    pods: Sequence[PodManifest],
    options: Options,
    where: str = "among the given NADs",
) -> list[Finding]:
    """NAD findings first (input order), then pod findings, which see which NADs had errors."""
    findings: list[Finding] = []
    known: dict[tuple[str, str], bool] = {}
    for nad, source in nads:
        result = check_nad(nad, options, source)
        findings.extend(result)
        known[_meta(nad)] = known.get(_meta(nad), False) or any(f.severity == ERROR for f in result)
    for pod in pods:
        findings.extend(check_pod(pod, known, options, where))
    return findings


def merge_nads(
    files: Sequence[tuple[dict[str, Any], str]], cluster: Sequence[dict[str, Any]]
) -> list[tuple[dict[str, Any], str]]:
    """Cluster NADs plus the files' ones; a file's NAD replaces the cluster's of the same name
    (the file is what is about to be applied)."""
    from_files = {_meta(nad) for nad, _ in files}
    merged = [(nad, "cluster") for nad in cluster if _meta(nad) not in from_files]
    return merged + list(files)


# --------------------------------------------------------------------------------------------
# Kubernetes access (shared with ``multusd inspect``)


def resolve_api_access(explicit: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Which credentials to use: a kubeconfig path, ``""`` for in-cluster, None for no access.

    ``--kubeconfig`` wins, then ``$KUBECONFIG``, then the in-cluster service account when
    ``KUBERNETES_SERVICE_HOST`` is set (``kubectl exec`` into the DaemonSet), then K3s's own
    admin kubeconfig when readable (a K3s server node).
    """
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("KUBECONFIG"):
        return env["KUBECONFIG"].split(os.pathsep)[0]
    if env.get("KUBERNETES_SERVICE_HOST"):
        return ""
    if os.access(K3S_KUBECONFIG, os.R_OK):
        return K3S_KUBECONFIG
    return None


async def fetch_cluster_nads(kubeconfig: str, timeout_seconds: float) -> list[dict[str, Any]]:
    """Every NAD of the cluster, one paginated LIST. Raises KubeError."""
    from multusd.kube.client import ClientSettings, make_kube_client

    settings = ClientSettings(request_timeout_seconds=timeout_seconds, retry_backoff_seconds=(0.2, 0.5))
    async with await make_kube_client(kubeconfig or None, settings=settings) as client:
        listed = await client.list_nads()
    return [dict(item) for item in listed["items"]]


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``multusd validate``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "One line per finding: '<error|warning|ok> <kind>/<namespace>/<name>: <message>'.\n"
        "Exit 0: no errors; 1: errors found; 2: the check could not run.\n"
        "Examples:\n"
        "  multusd validate macvlan-nad.yaml app.yaml           # on a node: binaries checked too\n"
        "  multusd validate --offline manifests/*.yaml          # in CI\n"
        "  multusd validate --from-cluster --config /etc/cni/net.d/multus.d/daemon-config.json"
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="YAML/JSON manifests ('-' = stdin)")
    parser.add_argument(
        "--from-cluster", action="store_true", help="also check every NAD in the cluster (and resolve pod refs there)"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help=f"API credentials (default: $KUBECONFIG, in-cluster, else {K3S_KUBECONFIG} if readable)",
    )
    parser.add_argument("--config", metavar="PATH", help="daemon-config.json: binDir, chrootDir, confDir, namespaces")
    parser.add_argument(
        "--bin-dir",
        action="append",
        metavar="DIR",
        help=f"CNI plugin directory, repeatable (default: binDir of --config, else {K3S_BIN_DIR})",
    )
    parser.add_argument(
        "--chroot",
        metavar="DIR",
        help="look plugins up inside this host root, as the daemon does (default: chrootDir of --config if it exists)",
    )
    parser.add_argument(
        "--conf-dir",
        metavar="DIR",
        help=f"where empty-config NADs are found (default: confDir, else {DEFAULT_CONF_DIR})",
    )
    parser.add_argument("--offline", action="store_true", help="skip the checks that need this node")
    parser.add_argument(
        "--namespace", "-n", default=DEFAULT_NAMESPACE, help="namespace of objects that set none (default: default)"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="API request timeout")


def options_from_args(args: argparse.Namespace) -> Options:
    """Options from the command line over daemon-config.json. Raises ConfigError."""
    from multusd.config import DaemonConfig, load_config

    cfg = load_config(args.config) if args.config else DaemonConfig()
    chroot = args.chroot
    if chroot is None and cfg.chroot_dir:
        if os.path.isdir(cfg.chroot_dir):
            chroot = cfg.chroot_dir
        else:
            print(
                f"multusd validate: chrootDir {cfg.chroot_dir} does not exist here; looking plugins up in /",
                file=sys.stderr,
            )
    global_ns = tuple(n.strip() for n in cfg.global_namespaces.split(",") if n.strip()) or ("default",)
    return Options(
        bin_dirs=tuple(args.bin_dir) if args.bin_dir else (cfg.bin_dir,),
        chroot=chroot or None,
        conf_dir=args.conf_dir or cfg.conf_dir,
        check_node=not args.offline,
        multus_namespace=cfg.multus_namespace,
        namespace_isolation=cfg.namespace_isolation,
        global_namespaces=global_ns,
        default_networks=len(cfg.default_networks),
        system_namespaces=tuple(cfg.system_namespaces),
    )


def render(findings: Sequence[Finding], output: str) -> Iterator[str]:
    """Text lines, or one JSON document with the findings and their counts."""
    if output == "json":
        counts = {s: sum(1 for f in findings if f.severity == s) for s in (ERROR, WARNING, OK)}
        yield json.dumps({"findings": [f.to_json() for f in findings], "counts": counts}, indent=2)
        return
    for finding in findings:
        yield finding.line()


def run(args: argparse.Namespace) -> int:
    """``multusd validate``: print the findings; exit 1 on any error, 2 when unable to check."""
    import asyncio

    from multusd.config import ConfigError
    from multusd.kube.errors import KubeError

    if not args.files and not args.from_cluster:
        print("multusd validate: give manifest files and/or --from-cluster", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    try:
        options = options_from_args(args)
    except ConfigError as exc:
        print(f"multusd validate: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    manifests = load_manifests(args.files, args.namespace)
    nads = manifests.nads
    where = "among the given NADs"
    if args.from_cluster:
        kubeconfig = resolve_api_access(args.kubeconfig)
        if kubeconfig is None:
            print("multusd validate: --from-cluster needs API access: give --kubeconfig", file=sys.stderr)
            return EXIT_CANNOT_CHECK
        try:
            cluster = asyncio.run(fetch_cluster_nads(kubeconfig, args.timeout))
        except (KubeError, OSError) as exc:
            print(f"multusd validate: cannot list NetworkAttachmentDefinitions: {exc}", file=sys.stderr)
            return EXIT_CANNOT_CHECK
        nads = merge_nads(nads, cluster)
        where = "in the cluster or the given files"
    findings = manifests.findings + validate(nads, manifests.pods, options, where)
    for line in render(findings, args.output):
        print(line)
    errors = sum(1 for f in findings if f.severity == ERROR)
    warnings = sum(1 for f in findings if f.severity == WARNING)
    if args.output == "text":
        print(
            f"{len(nads)} NADs, {len(manifests.pods)} pods checked: {errors} errors, {warnings} warnings",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if errors else 0
