"""``multusd validate``: bad NADs and pods are named in the findings; good ones pass."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from multusd import validate
from multusd.kube.localapi import LocalApi
from multusd.validate import Options, PodManifest, check_nad, check_pod, resolve_api_access

BRIDGE = '{"cniVersion":"0.3.1","type":"bridge","ipam":{"type":"host-local","subnet":"10.10.0.0/24"}}'
# "lo": the one interface every node (and this test machine) has, as the CLI reads the real /sys.
MACVLAN = json.dumps(
    {
        "cniVersion": "1.0.0",
        "type": "macvlan",
        "master": "lo",
        "ipam": {"type": "static", "addresses": [{"address": "10.9.0.5/24"}]},
    }
)


def nad(name: str, config: Any, namespace: str | None = "default", **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    spec = {} if config is None else {"config": config}
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": metadata,
        "spec": spec,
    }


def pod(name: str, networks: str | None = None, namespace: str = "default", **extra: str) -> dict[str, Any]:
    annotations = dict(extra)
    if networks is not None:
        annotations["k8s.v1.cni.cncf.io/networks"] = networks
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def write_yaml(path: Path, *docs: dict[str, Any]) -> Path:
    """Multi-document YAML (JSON documents are YAML)."""
    path.write_text("\n---\n".join(json.dumps(d, indent=2) for d in docs) + "\n")
    return path


class Node:
    """A stand-in node: a bin dir with some plugins, a confDir, /sys/class/net with eth1."""

    def __init__(self, tmp: Path, plugins: tuple[str, ...] = ("bridge", "host-local", "static", "macvlan")) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for plugin in plugins:
            (self.bin / plugin).write_text("#!/bin/sh\n")
        self.conf_dir = tmp / "net.d"
        self.conf_dir.mkdir()
        self.sys_net = tmp / "sys-class-net"
        (self.sys_net / "eth1").mkdir(parents=True)
        (self.sys_net / "lo").mkdir()

    def options(self, **kwargs: Any) -> Options:
        base: dict[str, Any] = {
            "bin_dirs": (str(self.bin),),
            "conf_dir": str(self.conf_dir),
            "sys_class_net": str(self.sys_net),
        }
        return Options(**{**base, **kwargs})

    def argv(self) -> list[str]:
        return ["--bin-dir", str(self.bin), "--conf-dir", str(self.conf_dir)]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    validate.add_arguments(parser)
    return validate.run(parser.parse_args(list(argv)))


def lines_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line]


def errors_of(findings: list[validate.Finding]) -> list[str]:
    return [f.message for f in findings if f.severity == "error"]


# --------------------------------------------------------------------------------------------
# The CLI, end to end on files


def test_good_nads_and_pods_pass(node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(
        tmp_path / "good.yaml",
        nad("br", BRIDGE),
        nad("mv", MACVLAN, namespace="team"),
        pod("web", "br@net1, team/mv"),
        pod("other", namespace="team", **{"k8s.v1.cni.cncf.io/networks": '[{"name":"mv","interface":"data0"}]'}),
    )
    assert run_cli(str(path), *node.argv()) == 0
    out = lines_of(capsys.readouterr().out)
    assert out == [
        "ok nad/default/br: bridge (ipam host-local), cniVersion 0.3.1",
        "ok nad/team/mv: macvlan (ipam static), cniVersion 1.0.0",
        "ok pod/default/web: networks default/br@net1, team/mv@net2",
        "ok pod/team/other: networks team/mv@data0",
    ]


def test_bad_json_missing_binary_and_bad_annotation_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = Node(tmp_path, plugins=("bridge", "host-local"))  # no macvlan, as on a stock K3s node
    path = write_yaml(
        tmp_path / "mixed.yaml",
        nad("fine", BRIDGE),
        nad("broken-json", '{"cniVersion": "0.3.1", "type": "bridge",}'),
        nad("needs-macvlan", '{"cniVersion":"0.3.1","type":"macvlan","master":"eth1"}'),
        pod("bad-annotation", "fine, Not_A_Name"),
        pod("good-pod", "fine"),
    )
    assert run_cli(str(path), *node.argv()) == 1
    out = lines_of(capsys.readouterr().out)
    assert "ok nad/default/fine: bridge (ipam host-local), cniVersion 0.3.1" in out
    assert "ok pod/default/good-pod: networks default/fine@net1" in out
    by_ref = {line.split(":", 1)[0]: line for line in out if line.startswith("error")}
    assert set(by_ref) == {
        "error nad/default/broken-json",
        "error nad/default/needs-macvlan",
        "error pod/default/bad-annotation",
    }
    assert "spec.config is not valid JSON" in by_ref["error nad/default/broken-json"]
    assert f'binary "macvlan" not found in [{node.bin}]' in by_ref["error nad/default/needs-macvlan"]
    assert (
        "multusd install --plugins macvlan" in by_ref["error nad/default/needs-macvlan"]
    )  # the fix, not just the fault
    assert "mismatch @ 'Not_A_Name'" in by_ref["error pod/default/bad-annotation"]


def test_json_output_lists_findings_and_counts(node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path / "x.yaml", nad("br", BRIDGE), pod("web", "missing"))
    assert run_cli(str(path), *node.argv(), "-o", "json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"error": 1, "warning": 0, "ok": 1}
    assert doc["findings"][1] == {
        "severity": "error",
        "kind": "pod",
        "namespace": "default",
        "name": "web",
        "message": 'annotation k8s.v1.cni.cncf.io/networks: network "default/missing": no '
        'NetworkAttachmentDefinition "missing" in namespace "default" among the given NADs',
        "source": f"{path} document 2",
    }


def test_json_files_lists_and_workload_templates_are_read(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"template": {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "default/br"}}}},
    }
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {
            "jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "br"}}}}}
        },
    }
    listed = {"apiVersion": "v1", "kind": "List", "items": [nad("br", BRIDGE, namespace=None), deployment, cronjob]}
    path = tmp_path / "all.json"
    path.write_text(json.dumps(listed, indent="\t"))  # tabs: valid JSON, invalid YAML
    assert run_cli(str(path), *node.argv()) == 1
    out = lines_of(capsys.readouterr().out)
    assert out[0].startswith("ok nad/default/br:")  # no namespace → default, as kubectl apply
    assert out[1] == "ok deployment/shop/api: networks default/br@net1"
    assert out[2].startswith('error cronjob/shop/nightly: annotation k8s.v1.cni.cncf.io/networks: network "shop/br"')


def test_unreadable_and_unparsable_files_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.yaml"
    junk.write_text("a: [unclosed\n")
    assert run_cli(str(tmp_path / "absent.yaml"), str(junk), "--offline") == 1
    out = lines_of(capsys.readouterr().out)
    assert out[0] == f"error file/-/{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"
    assert out[1].startswith(f"error file/-/{junk}: not valid YAML/JSON")


def test_no_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli() == 2
    assert "--from-cluster" in capsys.readouterr().err


def test_daemon_config_supplies_bin_dir_and_multus_namespace(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "daemon-config.json"
    cfg.write_text(json.dumps({"binDir": str(node.bin), "confDir": str(node.conf_dir), "multusNamespace": "multus"}))
    path = write_yaml(
        tmp_path / "x.yaml",
        nad("br", BRIDGE, namespace="multus"),
        pod("web", **{"v1.multus-cni.io/default-network": "br"}),
    )
    assert run_cli(str(path), "--config", str(cfg)) == 0
    assert lines_of(capsys.readouterr().out)[1] == "ok pod/default/web: networks default multus/br"


# --------------------------------------------------------------------------------------------
# NAD rules


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('["not", "an", "object"]', "spec.config must be a JSON object, got list"),
        ({"type": "bridge"}, "spec.config must be a string holding the CNI config as JSON, not a YAML object"),
        ('{"cniVersion":"0.3.1","name":"x"}', 'spec.config has neither "type" (a single plugin) nor "plugins"'),
        ('{"cniVersion":"0.3.1","plugins":[]}', "invalid CNI config: error parsing configuration list: no plugins"),
        ('{"cniVersion":"0.3.1","plugins":[{"mtu":1400}]}', "failed to parse plugin config 0: error parsing"),
        ('{"cniVersion":"9.9.9","type":"bridge"}', 'cniVersion "9.9.9" is not supported'),
        ('{"cniVersion":"0.3.1","name":"bad name!","type":"bridge"}', "invalid characters found in network name"),
    ],
)
def test_cni_config_structure_errors(node: Node, config: Any, expected: str) -> None:
    findings = check_nad(nad("n", config), node.options())
    assert [f.ref for f in findings if f.severity == "error"] == ["nad/default/n"]
    assert any(expected in message for message in errors_of(findings)), errors_of(findings)


def test_conflist_plugins_each_need_a_binary(node: Node) -> None:
    config = {
        "cniVersion": "1.0.0",
        "plugins": [{"type": "bridge", "ipam": {"type": "dhcp"}}, {"type": "tuning"}, {"type": "portmap"}],
    }
    errors = errors_of(check_nad(nad("chain", json.dumps(config)), node.options()))
    assert len(errors) == 3
    assert errors[0].startswith('plugin 0 "bridge": ipam: binary "dhcp" not found')
    assert errors[1].startswith('plugin 1 "tuning": binary "tuning" not found')
    assert "K3s ships only" not in errors[2]  # portmap is in K3s's multi-call binary: no install hint


def test_plugins_are_found_through_absolute_symlinks_inside_the_chroot(tmp_path: Path) -> None:
    """K3s's bin dir holds absolute links into /var/lib/rancher/k3s/data/<hash>/ (P9)."""
    root = tmp_path / "host"
    real = root / "var/lib/rancher/k3s/data/abc123/bin"
    real.mkdir(parents=True)
    (real / "cni").write_text("multi-call")
    bin_dir = root / "var/lib/rancher/k3s/data/cni"
    bin_dir.mkdir()
    os.symlink("/var/lib/rancher/k3s/data/abc123/bin/cni", bin_dir / "bridge")
    (bin_dir / "host-local").symlink_to("/var/lib/rancher/k3s/data/abc123/bin/cni")
    config = nad("br", BRIDGE)
    inside = Options(bin_dirs=("/var/lib/rancher/k3s/data/cni",), chroot=str(root), check_node=True)
    assert [f.severity for f in check_nad(config, inside)] == ["ok"]
    outside = Options(bin_dirs=(str(bin_dir),))  # the links dangle outside the root
    assert errors_of(check_nad(config, outside))[0].startswith('plugin "bridge": binary "bridge" not found')


def test_missing_bin_dir_warns_instead_of_failing_every_plugin(tmp_path: Path) -> None:
    findings = check_nad(nad("br", BRIDGE), Options(bin_dirs=(str(tmp_path / "nope"),)))
    assert [(f.severity, f.message.split(":")[0]) for f in findings] == [("warning", "plugin binaries not checked")]


def test_offline_skips_node_checks(tmp_path: Path) -> None:
    findings = check_nad(nad("mv", MACVLAN), Options(bin_dirs=(str(tmp_path / "nope"),), check_node=False))
    assert [f.severity for f in findings] == ["ok"]


def test_empty_config_is_looked_up_in_conf_dir(node: Node) -> None:
    (node.conf_dir / "10-lan.conflist").write_text(
        json.dumps({"cniVersion": "0.4.0", "name": "lan", "plugins": [{"type": "bridge"}]})
    )
    found = check_nad(nad("lan", None), node.options())
    assert [f.line() for f in found] == [
        f"ok nad/default/lan: conflist of 1: bridge, cniVersion 0.4.0 (from confDir {node.conf_dir})"
    ]
    missing = check_nad(nad("wan", ""), node.options())
    assert errors_of(missing) == [f'spec.config is empty and confDir {node.conf_dir} has no CNI config named "wan"']


def test_both_type_and_plugins_warns(node: Node) -> None:
    config = '{"cniVersion":"0.3.1","type":"bridge","plugins":[{"type":"tuning"}]}'
    findings = check_nad(nad("both", config), node.options())
    assert [f.severity for f in findings] == ["warning"]
    assert '"plugins" is ignored' in findings[0].message


def test_macvlan_master_checks(node: Node) -> None:
    no_master = check_nad(nad("m", '{"cniVersion":"0.3.1","type":"macvlan"}'), node.options())
    assert [(f.severity, f.message) for f in no_master] == [
        ("warning", 'plugin "macvlan": no "master": the node\'s default-route interface is used')
    ]
    absent = check_nad(nad("m", '{"cniVersion":"0.3.1","type":"macvlan","master":"ens9"}'), node.options())
    assert [f.message for f in absent] == ['plugin "macvlan": master interface "ens9" does not exist on this node']


def _ipam_config(ipam: dict[str, Any], plugin: str = "bridge") -> str:
    return json.dumps({"cniVersion": "0.3.1", "type": plugin, "master": "eth1", "ipam": ipam})


@pytest.mark.parametrize(
    ("ipam", "expected"),
    [
        ({"type": "host-local"}, ['neither "ranges" nor "subnet" is set']),
        ({"type": "host-local", "subnet": "10.0.0/24"}, ["subnet '10.0.0/24' is not a CIDR"]),
        ({"type": "host-local", "subnet": "10.0.0.5/24"}, ["has host bits set (the network is 10.0.0.0/24)"]),
        ({"type": "host-local", "subnet": "10.0.0.0/31"}, ["too small to allocate from"]),
        (
            {"type": "host-local", "subnet": "10.0.0.0/24", "rangeStart": "10.0.1.10", "gateway": "10.9.9.9"},
            ["rangeStart 10.0.1.10 is not inside subnet 10.0.0.0/24", "gateway 10.9.9.9 is not inside subnet"],
        ),
        (
            {
                "type": "host-local",
                "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.50", "rangeEnd": "10.0.0.5"}]],
            },
            ["ranges[0][0]: rangeStart 10.0.0.50 is after rangeEnd 10.0.0.5"],
        ),
        (
            {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]},
            ["ranges[0] mixes IPv4 and IPv6"],
        ),
        (
            {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/16"}], [{"subnet": "10.0.3.0/24"}]]},
            ["ranges[1][0] 10.0.3.0/24 overlaps ranges[0][0] 10.0.0.0/16"],
        ),
        (
            {"type": "host-local", "subnet": "10.0.0.0/24", "routes": [{"dst": "default"}]},
            ["routes[0]: dst 'default' is not a CIDR"],
        ),
        ({"type": "static", "addresses": [{"address": "10.1.1.300/24"}]}, ["is not an address with a prefix"]),
        (
            {"type": "static", "addresses": [{"address": "10.1.1.5/24", "gateway": "10.1.2.1"}]},
            ["gateway 10.1.2.1 is not inside subnet 10.1.1.0/24"],
        ),
        ({"type": "whereabouts"}, ['neither "range" nor "ipRanges" is set']),
        ({"type": "whereabouts", "range": "192.168.2.0/33"}, ["range '192.168.2.0/33' is not a CIDR"]),
        (
            {"type": "whereabouts", "range": "192.168.2.225-192.168.3.5/28"},
            ["range end 192.168.3.5 is not inside subnet 192.168.2.224/28"],
        ),
        ({"type": "whereabouts", "range": "10.0.0.0/24", "range_start": "10.1.0.1"}, ["range_start 10.1.0.1"]),
        ({"mtu": 1}, ['ipam has no "type"']),
    ],
)
def test_ipam_sanity(node: Node, ipam: dict[str, Any], expected: list[str]) -> None:
    (node.bin / "whereabouts").write_text("")
    errors = errors_of(check_nad(nad("n", _ipam_config(ipam)), node.options()))
    assert len(errors) == len(expected), errors
    for message, fragment in zip(errors, expected, strict=True):
        assert fragment in message


@pytest.mark.parametrize(
    "ipam",
    [
        {
            "type": "host-local",
            "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "gateway": "10.0.0.1"}]],
        },
        {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]},
        {"type": "static", "addresses": [{"address": "10.1.1.5/24", "gateway": "10.1.1.1"}]},
        {"type": "whereabouts", "range": "192.168.2.225-192.168.2.230/28", "exclude": ["192.168.2.229/32"]},
        {"type": "whereabouts", "ipRanges": [{"range": "10.0.0.0/24"}, {"range": "fd00::/64"}]},
    ],
)
def test_good_ipam_passes(node: Node, ipam: dict[str, Any]) -> None:
    (node.bin / "whereabouts").write_text("")
    assert [f.severity for f in check_nad(nad("n", _ipam_config(ipam, "macvlan")), node.options())] == ["ok"]


def test_static_without_addresses_warns_unless_ips_capability(node: Node) -> None:
    bare = json.dumps({"cniVersion": "0.3.1", "type": "bridge", "ipam": {"type": "static"}})
    assert "the pod gets no address" in check_nad(nad("n", bare), node.options())[0].message
    capable = json.dumps(
        {"cniVersion": "0.3.1", "type": "bridge", "capabilities": {"ips": True}, "ipam": {"type": "static"}}
    )
    assert [f.severity for f in check_nad(nad("n", capable), node.options())] == ["ok"]


# --------------------------------------------------------------------------------------------
# Pod rules


def _pod(annotations: dict[str, Any], namespace: str = "app") -> PodManifest:
    return PodManifest("pod", namespace, "p", annotations, "test")


KNOWN = {("app", "lan"): False, ("default", "shared"): False, ("kube-system", "alt"): False, ("app", "bad"): True}


@pytest.mark.parametrize(
    ("annotations", "severity", "message"),
    [
        ({"k8s.v1.cni.cncf.io/networks": "lan"}, "ok", "networks app/lan@net1"),
        ({"k8s.v1.cni.cncf.io/networks": "default/shared@s0"}, "ok", "networks default/shared@s0"),
        ({}, "ok", "no multus networks requested"),
        ({"v1.multus-cni.io/default-network": "alt"}, "ok", "networks default kube-system/alt"),
        ({"k8s.v1.cni.cncf.io/networks": "shared"}, "error", 'network "app/shared": no NetworkAttachmentDefinition'),
        ({"v1.multus-cni.io/default-network": "lan"}, "error", 'network "kube-system/lan": no'),
        ({"v1.multus-cni.io/default-network": "alt, lan"}, "error", "more than one default network is specified"),
        ({"k8s.v1.cni.cncf.io/networks": "lan,,lan@x"}, "error", "item 2 has an empty network name"),
        ({"k8s.v1.cni.cncf.io/networks": '{"name": "lan"}'}, "error", "failed to parse pod Network Attachment"),
        (
            {"k8s.v1.cni.cncf.io/networks": '[{"name":"lan","interface":"way-too-long-name0"}]'},
            "error",
            'interface "way-too-long-name0": interface name is too long',
        ),
        ({"k8s.v1.cni.cncf.io/networks": "lan@net2, lan"}, "error", 'interface "net2" of "app/lan" is also used'),
        ({"k8s.v1.cni.cncf.io/networks": "bad"}, "warning", 'network "app/bad" has errors'),
        ({"k8s.v1.cni.cncf.io/networks": ["lan"]}, "error", "the value must be a string"),
    ],
)
def test_pod_annotations(annotations: dict[str, Any], severity: str, message: str) -> None:
    findings = check_pod(_pod(annotations), KNOWN, Options(), "among the given NADs")
    assert findings[0].ref == "pod/app/p"
    assert (findings[0].severity, message in findings[0].message) == (severity, True), findings[0].message


def test_namespace_isolation_from_the_daemon_config() -> None:
    options = Options(namespace_isolation=True, global_namespaces=("default",))
    known = {**KNOWN, ("other", "lan"): False}
    assert check_pod(_pod({"k8s.v1.cni.cncf.io/networks": "default/shared"}), known, options, "")[0].severity == "ok"
    isolated = check_pod(_pod({"k8s.v1.cni.cncf.io/networks": "other/lan"}), known, options, "")
    assert "namespaceIsolation is on" in isolated[0].message


def test_default_networks_shift_automatic_interface_names() -> None:
    findings = check_pod(_pod({"k8s.v1.cni.cncf.io/networks": "lan"}), KNOWN, Options(default_networks=2), "")
    assert findings[0].message == "networks app/lan@net3"


# --------------------------------------------------------------------------------------------
# --from-cluster


async def test_from_cluster_checks_every_nad_and_resolves_pod_refs(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LocalApi() as api:
        api.create(nad("br", BRIDGE))
        api.create(nad("broken", "{oops", namespace="team"))
        api.create(nad("replaced", "{oops"))  # the file's version wins: it is about to be applied
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        path = write_yaml(tmp_path / "app.yaml", nad("replaced", BRIDGE), pod("web", "br, replaced, team/broken"))
        argv = [str(path), "--from-cluster", "--kubeconfig", str(kubeconfig), *node.argv()]
        assert await asyncio.to_thread(run_cli, *argv) == 1
    out = lines_of(capsys.readouterr().out)
    assert [line.split(":", 1)[0] for line in out] == [
        "ok nad/default/br",
        "error nad/team/broken",
        "ok nad/default/replaced",
        "warning pod/default/web",
    ]
    assert out[3].endswith('network "team/broken" has errors (see its own findings)')


async def test_from_cluster_unreachable_api_cannot_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with LocalApi() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    rc = await asyncio.to_thread(run_cli, "--from-cluster", "--kubeconfig", str(kubeconfig), "--timeout", "1")
    assert rc == 2
    assert "cannot list NetworkAttachmentDefinitions" in capsys.readouterr().err


def test_resolve_api_access_order(tmp_path: Path) -> None:
    assert resolve_api_access("/x", {"KUBECONFIG": "/y"}) == "/x"
    assert resolve_api_access(None, {"KUBECONFIG": f"/y{os.pathsep}/z", "KUBERNETES_SERVICE_HOST": "h"}) == "/y"
    assert resolve_api_access(None, {"KUBERNETES_SERVICE_HOST": "10.43.0.1"}) == ""
    if not os.access(validate.K3S_KUBECONFIG, os.R_OK):
        assert resolve_api_access(None, {}) is None
