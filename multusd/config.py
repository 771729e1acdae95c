"""daemon-config.json → a typed, validated :class:`DaemonConfig`.

The file is the same one upstream's Go daemon reads (§2.2 of the upstream reference), so an
operator can switch images without touching the ConfigMap. Defaults are K3s's paths, because a
K3s node is where multusd runs; every key, its default and meaning is listed in the README (a test
keeps that table equal to :data:`FIELDS`).

Upstream also applies the *whole raw file* as an override on every request's multus NetConf
(§2.3), so the raw mapping is kept next to the typed view.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/cni/net.d/multus.d/daemon-config.json"
SOCKET_NAME = "multus-cni-network.sock"
LEGACY_SOCKET_NAME = "multus.sock"
K3S_CONF_DIR = "/var/lib/rancher/k3s/agent/etc/cni/net.d"
K3S_BIN_DIR = "/var/lib/rancher/k3s/data/cni"
LOG_LEVELS = ("panic", "error", "verbose", "debug")
CLEANUP_POLICIES = ("auto", "always", "never")


class ConfigError(Exception):
    """A daemon-config problem, always naming the file and the key."""


@dataclass(frozen=True)
class Field:
    """One daemon-config key: JSON name, attribute, type check and meaning (default: on DaemonConfig)."""

    key: str
    attr: str
    kind: str  # "str" | "bool" | "int" | "float" | "list[str]" | "object" | "int?"
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns an error text, or None when fine


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if str(value).lower() in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _port(value: Any) -> str | None:
    return None if 0 < value < 65536 else "must be a TCP port (1-65535)"


def _host_port(value: Any) -> str | None:
    _host, sep, port = str(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        return "must be HOST:PORT, e.g. 0.0.0.0:19090 or 127.0.0.1:0"
    return None


FIELDS: tuple[Field, ...] = (
    # -- where things are --------------------------------------------------------------------
    Field(
        "chrootDir",
        "chroot_dir",
        "str",
        "Host root mounted in the pod. When set, plugins are looked up *and* executed inside it "
        "(`/usr/sbin/chroot`), so K3s's absolute plugin symlinks resolve.",
    ),
    Field(
        "binDir",
        "bin_dir",
        "str",
        "First plugin directory (path inside `chrootDir` when that is set); the daemon's own "
        "`CNI_PATH` is searched after it.",
    ),
    Field(
        "cniDir",
        "cni_dir",
        "str",
        "State: `<cniDir>/<containerID>` scratch files and `<cniDir>/results/` libcni caches.",
    ),
    Field(
        "confDir",
        "conf_dir",
        "str",
        "Where NADs with an empty `spec.config` and clusterNetwork/defaultNetworks names are looked up.",
    ),
    Field(
        "socketDir",
        "socket_dir",
        "str",
        "Directory of the daemon socket `multus-cni-network.sock` (and the `multus.sock` link).",
    ),
    Field("socketPath", "socket_path", "str", "Full socket path; overrides `socketDir` when set."),
    Field(
        "kubeconfig",
        "kubeconfig",
        "str",
        "Kubeconfig for out-of-cluster use (tests, the demo). Empty: in-cluster service account.",
    ),
    Field(
        "nodeName",
        "node_name",
        "str",
        "This node's name; only its pods are watched. Empty: `MULTUS_NODE_NAME` from the environment.",
    ),
    # -- 00-multus.conf -------------------------------------------------------------------------
    Field(
        "multusConfigFile",
        "multus_config_file",
        "str",
        "`auto` generates 00-multus.conf from the primary config; a path copies that file instead.",
    ),
    Field(
        "cniConfigDir",
        "cni_config_dir",
        "str",
        "Where 00-multus.conf is written (containerd's CNI conf dir).",
    ),
    Field(
        "multusAutoconfigDir",
        "multus_autoconfig_dir",
        "str",
        "Directory scanned and watched for the primary (flannel) config.",
    ),
    Field(
        "multusMasterCNI",
        "multus_master_cni",
        "str",
        "File name in `multusAutoconfigDir` to use as the primary instead of the first by name.",
    ),
    Field(
        "cniVersion",
        "cni_version",
        "str",
        "cniVersion of the generated 00-multus.conf (K3s's flannel list is 1.0.0).",
    ),
    Field(
        "forceCNIVersion",
        "force_cni_version",
        "bool",
        "Rewrite the primary config's cniVersion to `cniVersion`.",
    ),
    Field(
        "overrideNetworkName",
        "override_network_name",
        "bool",
        "Name the generated config after the primary instead of `multus-cni-network`.",
    ),
    Field(
        "readinessindicatorfile",
        "readiness_indicator_file",
        "str",
        "File that must exist before the daemon serves (e.g. `/run/flannel/subnet.env`).",
    ),
    Field(
        "cleanupConfigOnExit",
        "cleanup_config_on_exit",
        "str",
        "Remove 00-multus.conf on exit: `auto` only when this DaemonSet is being deleted, "
        "`always` (upstream's behaviour), `never`.",
        _one_of(*CLEANUP_POLICIES),
    ),
    Field(
        "daemonSocketDir",
        "daemon_socket_dir",
        "str",
        "Copied into 00-multus.conf for upstream shims (ours read `daemonSocketPath`).",
    ),
    Field(
        "capabilities",
        "capabilities",
        "object",
        "Extra capabilities for 00-multus.conf (those of the primary are added automatically).",
    ),
    Field("type", "type", "str", "Plugin type written into 00-multus.conf."),
    # -- multus semantics -------------------------------------------------------------------------
    Field(
        "clusterNetwork",
        "cluster_network",
        "str",
        "Cluster network: file, directory, NAD or conf name. Empty in auto mode: the primary config.",
    ),
    Field(
        "defaultNetworks",
        "default_networks",
        "list[str]",
        "Networks added to every pod outside `systemNamespaces`.",
    ),
    Field(
        "systemNamespaces",
        "system_namespaces",
        "list[str]",
        "Namespaces whose pods do not get `defaultNetworks`.",
    ),
    Field(
        "multusNamespace",
        "multus_namespace",
        "str",
        "Namespace of the NADs named by clusterNetwork/defaultNetworks and the default-network annotation.",
    ),
    Field(
        "namespaceIsolation",
        "namespace_isolation",
        "bool",
        "Pods may only use NADs of their own namespace (and of `globalNamespaces`).",
    ),
    Field(
        "globalNamespaces",
        "global_namespaces",
        "str",
        "Comma list of namespaces whose NADs any pod may use under isolation (default: `default`).",
    ),
    Field(
        "auxiliaryCNIChainName",
        "auxiliary_cni_chain_name",
        "str",
        "Name of the auxiliary chain directory beside the cluster network config.",
    ),
    Field(
        "retryDeleteOnError",
        "retry_delete_on_error",
        "bool",
        "Keep the scratch file when a delegate DEL fails, so the next DEL retries it.",
    ),
    # -- serving ------------------------------------------------------------------------------------
    Field(
        "metricsAddress",
        "metrics_address",
        "str",
        "Listen address of `/metrics`, `/healthz`, `/readyz` (port 0 picks a free one).",
        _host_port,
    ),
    Field(
        "metricsPort",
        "metrics_port",
        "int?",
        "Upstream's key: when set, replaces the port of `metricsAddress`.",
        _port,
    ),
    Field(
        "maxConcurrentRequests",
        "max_concurrent_requests",
        "int",
        "CNI requests executing plugins at once; the rest wait in a FIFO queue.",
        _positive,
    ),
    Field(
        "connectionLimit",
        "connection_limit",
        "int?",
        "Upstream's key: accepted and used as `maxConcurrentRequests` when that is not set.",
        _positive,
    ),
    Field(
        "delegateTimeout",
        "delegate_timeout",
        "float",
        "Seconds one plugin execution may take before it is killed.",
        _positive,
    ),
    Field("apiTimeout", "api_timeout", "float", "Seconds for one Kubernetes API request.", _positive),
    Field(
        "podLookupTimeout",
        "pod_lookup_timeout",
        "float",
        "Seconds an ADD waits for its pod to appear in the cache before a live GET.",
        _positive,
    ),
    Field(
        "readinessTimeout",
        "readiness_timeout",
        "float",
        "Seconds to wait at startup for `readinessindicatorfile` and the API caches.",
        _positive,
    ),
    Field(
        "shutdownTimeout",
        "shutdown_timeout",
        "float",
        "Seconds in-flight requests get to finish after SIGTERM.",
        _positive,
    ),
    Field(
        "reaperInterval",
        "reaper_interval",
        "float",
        "Seconds between orphan-state sweeps (0 disables).",
        lambda v: None if v >= 0 else "must be >= 0",
    ),
    # -- logging ------------------------------------------------------------------------------------
    Field(
        "logLevel",
        "log_level",
        "str",
        "`error`, `verbose` (one line per request) or `debug` (`panic`: errors only).",
        _one_of(*LOG_LEVELS),
    ),
    Field("logToStderr", "log_to_stderr", "bool", "Log to stderr (the container log)."),
    Field("logFile", "log_file", "str", "Also log to this file, rotated by size."),
    Field(
        "logOptions",
        "log_options",
        "object",
        "Rotation of `logFile`: `{maxSize (MB, 100), maxBackups (5)}`; "
        "upstream's `maxAge`, `compress` are accepted and ignored.",
    ),
)

# Keys upstream accepts that multusd ignores on purpose (warned about, not errors).
IGNORED_KEYS: dict[str, str] = {
    "enablePprof": "multusd has no pprof endpoint",
    "perNodeCertificate": "per-node certificates are not supported; the service account is used",
    "name": "network name of the request config",
    "delegates": "only clusterNetwork mode is supported",
}


# Shim settings: not the daemon's, but copied into 00-multus.conf for the shim (README, "Shim settings").
SHIM_KEYS = ("daemonReadyTimeout", "daemonDelTimeout", "daemonRequestTimeout")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("int", "int?"):
        return (value is None and kind == "int?") or (isinstance(value, int) and not isinstance(value, bool))
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "object":
        return value is None or isinstance(value, dict)
    raise AssertionError(kind)


_KIND_WORDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "int?": "an integer",
    "float": "a number",
    "list[str]": "a list of strings",
    "object": "an object",
}


@dataclass(frozen=True)
class DaemonConfig:
    """The validated daemon configuration. Attribute names are the snake_case of the keys."""

    chroot_dir: str = ""
    bin_dir: str = K3S_BIN_DIR
    cni_dir: str = "/var/lib/cni/multus"
    conf_dir: str = "/etc/cni/multus/net.d"
    socket_dir: str = "/run/multus/"
    socket_path: str = ""
    kubeconfig: str = ""
    node_name: str = ""
    multus_config_file: str = "auto"
    cni_config_dir: str = K3S_CONF_DIR
    multus_autoconfig_dir: str = K3S_CONF_DIR
    multus_master_cni: str = ""
    cni_version: str = "1.0.0"
    force_cni_version: bool = False
    override_network_name: bool = False
    readiness_indicator_file: str = ""
    cleanup_config_on_exit: str = "auto"
    daemon_socket_dir: str = ""
    capabilities: dict[str, Any] | None = None
    type: str = "multus-shim"
    cluster_network: str = ""
    default_networks: list[str] = field(default_factory=list)
    system_namespaces: list[str] = field(default_factory=lambda: ["kube-system"])
    multus_namespace: str = "kube-system"
    namespace_isolation: bool = False
    global_namespaces: str = ""
    auxiliary_cni_chain_name: str = ""
    retry_delete_on_error: bool = False
    metrics_address: str = "0.0.0.0:19090"
    metrics_port: int | None = None
    max_concurrent_requests: int = 8
    connection_limit: int | None = None
    delegate_timeout: float = 60.0
    api_timeout: float = 10.0
    pod_lookup_timeout: float = 3.0
    readiness_timeout: float = 45.0
    shutdown_timeout: float = 20.0
    reaper_interval: float = 300.0
    log_level: str = "verbose"
    log_to_stderr: bool = True
    log_file: str = ""
    log_options: dict[str, Any] | None = None
    #: The file exactly as read: upstream overlays every top-level key on each request's NetConf.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: str = ""

    @property
    def effective_socket_path(self) -> Path:
        if self.socket_path:
            return Path(self.socket_path)
        return Path(self.socket_dir) / SOCKET_NAME

    @property
    def effective_metrics_address(self) -> tuple[str, int]:
        host, _, port = self.metrics_address.rpartition(":")
        if self.metrics_port is not None:
            port = str(self.metrics_port)
        return host.strip("[]"), int(port)

    @property
    def auto_mode(self) -> bool:
        return self.multus_config_file == "auto"


def parse_config(obj: Any, source: str = "<config>", env: Mapping[str, str] | None = None) -> DaemonConfig:
    """Validate a decoded daemon-config document. Raises :class:`ConfigError` naming the key."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{source}: daemon config must be a JSON object, got {type(obj).__name__}")
    env = os.environ if env is None else env
    known = {f.key: f for f in FIELDS}
    lowered = {f.key.lower(): f for f in FIELDS}
    values: dict[str, Any] = {}
    for key, value in obj.items():
        spec = known.get(key) or lowered.get(key.lower())  # Go's decoder matches keys case-insensitively
        if spec is None:
            if key in SHIM_KEYS:
                if not _type_ok("float", value) or value <= 0:
                    raise ConfigError(f"{source}: key {key!r} must be a number of seconds greater than 0: {value!r}")
                continue
            if key in IGNORED_KEYS:
                log.warning("%s: key %r is ignored: %s", source, key, IGNORED_KEYS[key])
            else:
                log.warning("%s: unknown key %r is ignored (it still overrides request configs)", source, key)
            continue
        if not _type_ok(spec.kind, value):
            raise ConfigError(f"{source}: key {spec.key!r} must be {_KIND_WORDS[spec.kind]}, got {value!r}")
        if spec.kind == "float":
            value = float(value)
        if spec.check is not None and value is not None:
            problem = spec.check(value)
            if problem:
                raise ConfigError(f"{source}: key {spec.key!r} {problem}, got {value!r}")
        if spec.attr == "log_level":
            value = value.lower()
        values[spec.attr] = value
    if "node_name" not in values:
        values["node_name"] = env.get("MULTUS_NODE_NAME", "")
    if "max_concurrent_requests" not in values and values.get("connection_limit"):
        values["max_concurrent_requests"] = values["connection_limit"]
    if values.get("multus_config_file", "auto") == "auto" and not values.get("cni_version", "1.0.0"):
        raise ConfigError(f"{source}: key 'cniVersion' must be set when multusConfigFile is auto")
    return DaemonConfig(**values, raw=dict(obj), source=source)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> DaemonConfig:
    """Read and validate daemon-config.json; every problem is a ConfigError naming the file."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read daemon config: {exc.strerror or exc}") from exc
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from exc
    return parse_config(obj, source, env)


def default_of(spec: Field) -> Any:
    """The default of a key, read from :class:`DaemonConfig` so there is one source of truth."""
    for f in dataclasses.fields(DaemonConfig):
        if f.name == spec.attr:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            return f.default
    raise KeyError(spec.attr)


def describe_fields() -> str:
    """The key reference shown by ``multusd run --help``."""
    lines = []
    for spec in FIELDS:
        lines.append(f"  {spec.key} (default {json.dumps(default_of(spec))})")
        lines.append(f"      {spec.doc}")
    return "\n".join(lines)
