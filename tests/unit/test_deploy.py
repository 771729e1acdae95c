"""deploy/: the K3s manifest, monitoring files and examples agree with Kubernetes and with our code.

- Every object validates, offline, against the Kubernetes 1.30 OpenAPI schemas (kubernetes-validate
  bundles them; strict mode rejects unknown fields). NADs validate against the openAPIV3Schema of
  our own CRD; the ServiceMonitor (a Prometheus Operator CRD, no schema here) is checked by hand.
- The ConfigMap's daemon-config.json loads with :func:`multusd.config.load_config`, and every path
  it names is mounted, writable, from the right host directory.
- The ClusterRole/Role grant exactly the (group, resource, verb) triples ``multusd/kube/client.py``
  uses, read from its source with ``ast`` — nothing missing, nothing more.
- The init and main containers' arguments parse with ``multusd``'s own CLI parser.
- Every metric the Grafana dashboard queries is exported by :class:`multusd.metrics.Metrics` (or a
  scrape-time gauge the daemon registers), with the labels it groups by.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

import multusd
from multusd.attach.selection import parse_networks_annotation
from multusd.cli import make_parser
from multusd.cni.conf import parse_plugin_conf
from multusd.config import FIELDS, K3S_BIN_DIR, K3S_CONF_DIR, SOCKET_NAME, DaemonConfig, load_config
from multusd.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFEST = DEPLOY / "multus-daemonset-thick.yml"
SERVICE_MONITOR = DEPLOY / "servicemonitor.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
EXAMPLES = sorted((DEPLOY / "examples").glob("*.yaml"))
CLIENT_SOURCE = ROOT / "multusd" / "kube" / "client.py"

KUBERNETES_VERSION = "1.30.0"  # K3s v1.30 is the oldest line with the fixed CNI bin dir and still common
CUSTOM_KINDS = {"NetworkAttachmentDefinition", "ServiceMonitor"}  # no built-in schema
CONFIG_KEY = "daemon-config.json"
DAEMON_CONTAINER = "kube-multus"
INIT_CONTAINER = "install-multus-shim"
# Seconds of grace beyond shutdownTimeout: event drain (2 s), closing caches, sockets, the runner.
SHUTDOWN_MARGIN_SECONDS = 5


# ----------------------------------------------------------------------------- loading


def load_objects(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


MANIFEST_OBJECTS = load_objects(MANIFEST)
DAEMONSET = one(MANIFEST_OBJECTS, "DaemonSet")
POD_SPEC = DAEMONSET["spec"]["template"]["spec"]
CONFIGMAP = one(MANIFEST_OBJECTS, "ConfigMap", "multus-daemon-config")
CRD = one(MANIFEST_OBJECTS, "CustomResourceDefinition")
SERVICE = one(MANIFEST_OBJECTS, "Service")


def container(name: str, init: bool = False) -> dict[str, Any]:
    containers = POD_SPEC["initContainers" if init else "containers"]
    found = [c for c in containers if c["name"] == name]
    assert len(found) == 1, f"container {name} not in the DaemonSet"
    return found[0]


def daemon_config(tmp_path: Path) -> DaemonConfig:
    """The ConfigMap's daemon-config.json, loaded exactly as the daemon loads its file."""
    path = tmp_path / CONFIG_KEY
    path.write_text(CONFIGMAP["data"][CONFIG_KEY], encoding="utf-8")
    return load_config(path, env={})


def all_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in [MANIFEST, *EXAMPLES]:
        for obj in load_objects(path):
            yield f"{path.relative_to(DEPLOY)}:{obj['kind']}/{obj['metadata']['name']}", obj


# ----------------------------------------------------------------------------- schemas


BUILTIN_OBJECTS = [(label, obj) for label, obj in all_objects() if obj["kind"] not in CUSTOM_KINDS]


@pytest.mark.parametrize(("label", "obj"), BUILTIN_OBJECTS, ids=[label for label, _ in BUILTIN_OBJECTS])
def test_object_validates_against_the_kubernetes_schema(label: str, obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{label}: {exc.message} at {'/'.join(map(str, exc.path))}")


def test_the_validator_rejects_a_broken_daemonset() -> None:
    """Negative control: the offline validation is real (an unknown field and a wrong type)."""
    broken = copy.deepcopy(DAEMONSET)
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="volumeMount"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(DAEMONSET)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "19090"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_manifest_holds_exactly_the_expected_objects() -> None:
    kinds = sorted(
        f"{o['kind']}/{o['metadata'].get('namespace', '-')}/{o['metadata']['name']}" for o in MANIFEST_OBJECTS
    )
    assert kinds == [
        "ClusterRole/-/multus",
        "ClusterRoleBinding/-/multus",
        "ConfigMap/kube-system/multus-daemon-config",
        "CustomResourceDefinition/-/network-attachment-definitions.k8s.cni.cncf.io",
        "DaemonSet/kube-system/kube-multus-ds",
        "Role/kube-system/multus-daemonset-reader",
        "RoleBinding/kube-system/multus-daemonset-reader",
        "Service/kube-system/multus-http-metrics",
        "ServiceAccount/kube-system/multus",
    ]


def test_crd_is_the_network_plumbing_nad_definition() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["group"] == "k8s.cni.cncf.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "NetworkAttachmentDefinition"
    assert spec["names"]["plural"] == "network-attachment-definitions"
    assert sorted(spec["names"]["shortNames"]) == ["nad", "net-attach-def"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["config"]["type"] == "string"


def nad_schema() -> dict[str, Any]:
    return dict(CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


NAD_EXAMPLES = [(label, obj) for label, obj in all_objects() if obj["kind"] == "NetworkAttachmentDefinition"]


@pytest.mark.parametrize(("label", "nad"), NAD_EXAMPLES, ids=[label for label, _ in NAD_EXAMPLES])
def test_nad_example_matches_our_crd_and_is_a_usable_cni_config(label: str, nad: dict[str, Any]) -> None:
    group, _, version = nad["apiVersion"].partition("/")
    assert (group, version) == (CRD["spec"]["group"], "v1"), label
    jsonschema.validate(nad, nad_schema())
    conf = parse_plugin_conf(nad["spec"]["config"])
    assert conf.name == nad["metadata"]["name"], f"{label}: CNI name should match the NAD's name"
    assert conf.cni_version == "1.0.0"
    # Every plugin the example needs is on a K3s node after our init container ran.
    installed = set(init_install_args().plugins) | {"host-local", "bridge", "flannel", "portmap", "loopback"}
    assert conf.type in installed, f"{label}: {conf.type} is neither in K3s nor installed by the init container"
    assert conf.raw["ipam"]["type"] in installed
    assert conf.raw.get("master"), f"{label}: the NIC to edit must be there"


def test_nad_schema_check_is_real() -> None:
    """Negative control for the hand-rolled CRD check: spec.config must be a string."""
    broken = copy.deepcopy(NAD_EXAMPLES[0][1])
    broken["spec"]["config"] = {"type": "ipvlan"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, nad_schema())


def test_example_pod_asks_for_example_networks() -> None:
    pods = [obj for _, obj in all_objects() if obj["kind"] == "Pod"]
    assert pods, "deploy/examples has a test pod"
    nads = {(obj["metadata"]["namespace"], obj["metadata"]["name"]) for _, obj in NAD_EXAMPLES}
    for pod in pods:
        annotation = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
        selections = parse_networks_annotation(annotation, pod["metadata"]["namespace"])
        assert selections
        for selection in selections:
            assert (selection.namespace, selection.name) in nads


# ----------------------------------------------------------------------------- config and mounts


def test_daemon_config_loads_with_k3s_settings(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path)
    assert cfg.chroot_dir == "/hostroot"
    assert cfg.bin_dir == K3S_BIN_DIR
    assert cfg.cni_config_dir == cfg.multus_autoconfig_dir == K3S_CONF_DIR
    assert cfg.auto_mode
    assert cfg.cni_version == "1.0.0"  # K3s's 10-flannel.conflist
    assert cfg.cleanup_config_on_exit == "auto"
    assert (cfg.log_level, cfg.log_to_stderr) == ("verbose", True)
    assert cfg.effective_socket_path == Path("/run/multus") / SOCKET_NAME
    unknown = set(json.loads(CONFIGMAP["data"][CONFIG_KEY])) - {f.key for f in FIELDS}
    assert not unknown, f"keys the daemon would ignore (typos?): {unknown}"


def host_path_of(container_path: str, c: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The host path behind ``container_path`` in container ``c``, and the mount providing it."""
    volumes = {v["name"]: v for v in POD_SPEC["volumes"]}
    best: dict[str, Any] | None = None
    path = container_path.rstrip("/") or "/"
    for mount in c.get("volumeMounts", []):
        mount_path = mount["mountPath"].rstrip("/") or "/"
        if (path == mount_path or path.startswith(mount_path + "/")) and (
            best is None or len(mount_path) > len(best["mountPath"])
        ):
            best = mount
    assert best is not None, f"{container_path} is not inside any volumeMount of {c['name']}"
    volume = volumes[best["name"]]
    assert "hostPath" in volume, f"{container_path} is on volume {best['name']}, not a host directory"
    rest = path[len(best["mountPath"].rstrip("/")) :]
    return (volume["hostPath"]["path"].rstrip("/") + rest) or "/", best


def test_every_config_path_is_mounted_from_the_right_host_directory(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path)
    daemon = container(DAEMON_CONTAINER)
    expected = {
        "chrootDir": (cfg.chroot_dir, "/"),
        "cniConfigDir": (cfg.cni_config_dir, K3S_CONF_DIR),
        "multusAutoconfigDir": (cfg.multus_autoconfig_dir, K3S_CONF_DIR),
        "socketDir": (str(cfg.effective_socket_path.parent), "/run/multus"),
        "cniDir": (cfg.cni_dir, "/var/lib/cni/multus"),
    }
    for key, (path, host) in expected.items():
        got, mount = host_path_of(path, daemon)
        assert got == host, f"{key} {path} is host {got}, expected {host}"
        assert not mount.get("readOnly"), f"{key} must be writable"
        if key != "chrootDir":
            # 00-multus.conf (read on the host by containerd and the shim) carries these paths as
            # the daemon sees them: clusterNetwork, daemonSocketPath, cniDir. They must be equal.
            assert path.rstrip("/") == host, f"{key}: mount host {host} at the same path, not {path}"
    chroot_mount = host_path_of(cfg.chroot_dir, daemon)[1]
    assert chroot_mount.get("mountPropagation") == "HostToContainer"
    # binDir is looked up inside chrootDir: a host path, no mount of its own needed.
    assert cfg.bin_dir.startswith("/") and host_path_of(cfg.chroot_dir + cfg.bin_dir, daemon)[0] == K3S_BIN_DIR


def test_pod_netns_paths_are_visible_with_propagation() -> None:
    host, mount = host_path_of("/run/netns", container(DAEMON_CONTAINER))
    assert host == "/run/netns"
    assert mount.get("mountPropagation") == "HostToContainer"


def test_config_file_comes_from_the_configmap() -> None:
    daemon = container(DAEMON_CONTAINER)
    args = make_parser().parse_args(daemon["args"])
    assert args.command == "run"
    config_path = Path(args.config)
    volumes = {v["name"]: v for v in POD_SPEC["volumes"]}
    mounts = [m for m in daemon["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    assert len(mounts) == 1 and mounts[0].get("readOnly")
    volume = volumes[mounts[0]["name"]]
    assert volume["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
    assert items.get(config_path.name, config_path.name) == CONFIG_KEY


def init_install_args() -> Any:
    return make_parser().parse_args(container(INIT_CONTAINER, init=True)["args"])


def test_init_container_installs_into_the_daemons_bin_dir(tmp_path: Path) -> None:
    args = init_install_args()
    assert args.command == "install"
    assert args.bin_dir == daemon_config(tmp_path).bin_dir
    host, mount = host_path_of(args.host_root, container(INIT_CONTAINER, init=True))
    assert host == "/" and not mount.get("readOnly")
    assert {"ipvlan", "macvlan"} <= set(args.plugins)  # the examples' plugins; K3s has neither


# ----------------------------------------------------------------------------- the DaemonSet


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_daemon_env_names_node_pod_and_daemonset() -> None:
    env = env_of(container(DAEMON_CONTAINER))
    assert env["MULTUS_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["MULTUS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MULTUS_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MULTUS_DAEMONSET_NAME"] == DAEMONSET["metadata"]["name"]


def test_daemonset_runs_on_every_node_with_host_access(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path)
    assert POD_SPEC["hostNetwork"] is True and POD_SPEC["hostPID"] is True
    assert POD_SPEC["priorityClassName"] == "system-node-critical"
    assert POD_SPEC["tolerations"] == [{"operator": "Exists"}]
    assert POD_SPEC["terminationGracePeriodSeconds"] >= cfg.shutdown_timeout + SHUTDOWN_MARGIN_SECONDS
    for c in [*POD_SPEC["containers"], *POD_SPEC["initContainers"]]:
        assert c["securityContext"]["privileged"] is True
        assert c["image"].rpartition(":")[2] == multusd.__version__, f"{c['name']}: image tag != package version"
    assert len({c["image"] for c in [*POD_SPEC["containers"], *POD_SPEC["initContainers"]]}) == 1
    labels = DAEMONSET["spec"]["template"]["metadata"]["labels"]
    assert DAEMONSET["spec"]["selector"]["matchLabels"] == {"name": "multus"}  # upstream's: in-place migration
    assert DAEMONSET["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert SERVICE["spec"]["selector"].items() <= labels.items()


def test_probes_hit_the_metrics_listener(tmp_path: Path) -> None:
    cfg = daemon_config(tmp_path)
    daemon = container(DAEMON_CONTAINER)
    ports = {p["name"]: p["containerPort"] for p in daemon["ports"]}
    _, metrics_port = cfg.effective_metrics_address
    assert ports["metrics"] == metrics_port == 19090
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        http = daemon[probe]["httpGet"]
        assert http["path"] == path
        assert ports.get(http["port"], http["port"]) == metrics_port
    service_port = SERVICE["spec"]["ports"][0]
    assert service_port["port"] == metrics_port and service_port["targetPort"] == "metrics"


def memory_mib(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)?", quantity)
    assert match, f"unexpected memory quantity {quantity!r}"
    number, unit = match.groups()
    return float(number) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[unit]


def test_resources_leave_room_for_delegates_and_never_throttle() -> None:
    resources = container(DAEMON_CONTAINER)["resources"]
    assert "cpu" not in resources.get("limits", {}), "a CPU limit throttles the delegates too (P15)"
    request = memory_mib(resources["requests"]["memory"])
    limit = memory_mib(resources["limits"]["memory"])
    assert request >= 64, "the daemon alone is ~45-50 MiB at ready"
    assert limit >= 4 * 50, "upstream's 50Mi OOM-loops (P1); delegates run in this cgroup"
    assert limit >= request
    init = container(INIT_CONTAINER, init=True)["resources"]
    assert "cpu" not in init.get("limits", {})
    assert memory_mib(init["limits"]["memory"]) >= 48  # a Python process, not upstream's 15Mi Go binary


# ----------------------------------------------------------------------------- RBAC


def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def _text(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _path_prefix(node: ast.expr, constants: dict[str, str], local: dict[str, ast.expr] | None = None) -> str:
    """The leading constant part of a request path (an f-string stops at its first variable).

    ``local`` maps the method's own variables to what was assigned to them (``path = f"…"``).
    """
    if isinstance(node, ast.Name) and local and node.id in local:
        return _path_prefix(local[node.id], constants)
    if not isinstance(node, ast.JoinedStr):
        return _text(node, constants) or ""
    prefix = ""
    for part in node.values:
        value = part.value if isinstance(part, ast.FormattedValue) else part
        text = _text(value, constants)
        if text is None:
            break
        prefix += text
    return prefix


def _api_group(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/api/"):
        return ""
    assert path.startswith("/apis/") and len(parts) > 3, f"cannot tell the API group of {path!r}"
    return parts[2]


# Which positional arguments hold the verb, the resource and the path, per request helper.
_HELPERS = {"_call": (0, 1, 3), "_list": (None, 0, 1), "_watch": (None, 0, 1)}
_HELPER_VERBS = {"_list": "list", "_watch": "watch"}


def client_api_calls() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every request ``KubeClient`` makes, read from its source."""
    tree = ast.parse(CLIENT_SOURCE.read_text(encoding="utf-8"))
    constants = _module_constants(tree)
    calls: set[tuple[str, str, str]] = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
            local = {
                target.id: node.value
                for node in ast.walk(method)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(method):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "self"
                    and node.func.attr in _HELPERS
                ):
                    continue
                verb_at, resource_at, path_at = _HELPERS[node.func.attr]
                verb = _HELPER_VERBS.get(node.func.attr)
                if verb_at is not None:
                    verb = _text(node.args[verb_at], constants)
                resource = _text(node.args[resource_at], constants)
                if method.name in _HELPERS and resource is None:
                    continue  # the helpers' own plumbing: the resource is their parameter
                assert verb and resource, f"{method.name}: cannot read verb/resource of {ast.unparse(node)}"
                path = _path_prefix(node.args[path_at], constants, local)
                calls.add((_api_group(path), resource, verb))
    return calls


def granted_rules() -> set[tuple[str, str, str]]:
    roles = [o for o in MANIFEST_OBJECTS if o["kind"] in ("ClusterRole", "Role")]
    granted: set[tuple[str, str, str]] = set()
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['metadata']['name']}: wildcard {field}"
            granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


def test_client_calls_are_read_from_the_source() -> None:
    """Sanity check of the ast reading itself, against what client.py is known to do."""
    calls = client_api_calls()
    assert ("", "pods", "watch") in calls
    assert ("", "pods/status", "patch") in calls
    assert ("k8s.cni.cncf.io", "network-attachment-definitions", "list") in calls
    assert ("apps", "daemonsets", "get") in calls


def test_rbac_grants_exactly_what_the_client_calls() -> None:
    calls = client_api_calls()
    granted = granted_rules()
    assert calls - granted == set(), "the daemon would get 403 for these"
    assert granted - calls == set(), "granted but never used: remove (least privilege)"


def test_rbac_is_bound_to_the_daemonsets_service_account() -> None:
    account = one(MANIFEST_OBJECTS, "ServiceAccount")
    assert POD_SPEC["serviceAccountName"] == account["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "kube-system"}
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(MANIFEST_OBJECTS, binding_kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind
        one(MANIFEST_OBJECTS, role_kind, binding["roleRef"]["name"])
    # The namespaced Role reads only our own DaemonSet, in its namespace.
    role = one(MANIFEST_OBJECTS, "Role")
    assert role["metadata"]["namespace"] == DAEMONSET["metadata"]["namespace"]
    (rule,) = role["rules"]
    assert rule["resourceNames"] == [DAEMONSET["metadata"]["name"]]


# ----------------------------------------------------------------------------- monitoring


def test_servicemonitor_scrapes_the_metrics_service() -> None:
    (monitor,) = load_objects(SERVICE_MONITOR)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= SERVICE["metadata"]["labels"].items()
    assert SERVICE["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    port_names = {p["name"] for p in SERVICE["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint.get("path", "/metrics") == "/metrics"


def _scrape_gauge_names() -> set[str]:
    """Names the daemon registers with ``metrics.scrape_gauge("name", …)`` anywhere in multusd/."""
    names: set[str] = set()
    for source in (ROOT / "multusd").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "scrape_gauge"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def exported_series() -> dict[str, set[str]]:
    """Every series name /metrics can carry, with the label names it has."""
    metrics = Metrics()
    labels_of = {
        m._name: set(m._labelnames)  # prometheus_client has no public accessor for these
        for m in vars(metrics).values()
        if hasattr(m, "_labelnames") and hasattr(m, "_name")
    }
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            series[family.name + suffix] = labels_of.get(family.name, set()) | (
                {"le"} if suffix == "_bucket" else set()
            )
    for name in _scrape_gauge_names():
        series[name] = set()
    return series


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return exprs


METRIC_NAME = re.compile(r"\b((?:multus|process)_[a-z0-9_]+)\b")
GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every series


def test_dashboard_queries_only_exported_metrics_and_labels() -> None:
    series = exported_series()
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        names = METRIC_NAME.findall(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            assert name in series, f"dashboard queries {name}, which multusd does not export"
        available = set.union(*(series[n] for n in names)) | TARGET_LABELS
        for group in GROUPING.findall(expr):
            for label in (x.strip() for x in group.split(",") if x.strip()):
                assert label in available, f"{expr!r} groups by {label!r}, not a label of {names}"


def test_dashboard_covers_the_key_metrics() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    for name in (
        "multus_server_request_total",
        "multus_request_duration_seconds_bucket",
        "multus_delegate_duration_seconds_bucket",
        "multus_request_queue_depth",
        "multus_requests_in_flight",
        "multus_delegate_errors_total",
        "multus_api_request_errors_total",
        "multus_network_status_write_failures_total",
        "process_resident_memory_bytes",
        "multus_state_files",
    ):
        assert name in used, f"the dashboard has no panel for {name}"


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        for target in panel["targets"]:
            assert 'job="$job"' in target["expr"], f"{panel['title']}: not filtered by job"
