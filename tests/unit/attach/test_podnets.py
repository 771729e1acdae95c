"""The pod's networks resolved into delegates: upstream's vectors (reference §9.1 V01 to V21, §9.2).

NADs come from an in-memory double of our ``NadSource`` seam; NADs with an empty spec read real
conf files from ``tmp_path``, as upstream's ``NewFakeNetAttachDefFile`` does.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.delegates import Delegate, MultusConf, cluster_delegates, inject_cni_args, inject_device_id
from multusd.attach.flows import PodInfo
from multusd.attach.podnets import ECMP_ERROR, PodNetworkError, check_gateway_config, make_pod_delegates
from multusd.attach.selection import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, SelectionError
from multusd.cni.conf import ConfList, PluginConf, parse_conf_list, parse_plugin_conf
from multusd.cni.errors import CniCode, CniError

NOT_FOUND_V02 = (
    "GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a "
    'network-attachment-definition (net1) in namespace (test): network-attachment-definitions.k8s.cni.cncf.io "net1" '
    "not found"
)


def nad(namespace: str, name: str, config: Any = None, **annotations: str) -> dict[str, Any]:
    """A trimmed NAD as the watch cache holds it; ``config`` None means an empty spec."""
    spec: dict[str, Any] = {}
    if config is not None:
        spec["config"] = config if isinstance(config, str) else json.dumps(config)
    return {"metadata": {"namespace": namespace, "name": name, "annotations": annotations}, "spec": spec}


@dataclass
class Nads:
    """NadSource double: a dict, the lookups it served, and an optional API failure."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lookups: list[tuple[str, str]] = field(default_factory=list)
    fail: CniError | None = None

    def add(self, obj: dict[str, Any]) -> Nads:
        meta = obj["metadata"]
        self.objects[(meta["namespace"], meta["name"])] = obj
        return self

    async def get_nad(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.lookups.append((namespace, name))
        if self.fail is not None:
            raise self.fail
        return self.objects.get((namespace, name))


@dataclass
class Events:
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, pod: PodInfo, message: str) -> None:
        self.seen.append((f"{pod.namespace}/{pod.name}", message))


def pod(networks: str | None = None, default: str | None = None, namespace: str = "test") -> PodInfo:
    annotations = {}
    if networks is not None:
        annotations[NETWORKS_ANNOTATION] = networks
    if default is not None:
        annotations[DEFAULT_NETWORK_ANNOTATION] = default
    return PodInfo(namespace, "testpod", "testUID", annotations)


CLUSTER = Delegate("cbr0", parse_plugin_conf({"cniVersion": "1.0.0", "name": "cbr0", "type": "flannel"}), master=True)


async def resolve(
    nads: Nads,
    the_pod: PodInfo,
    mconf: MultusConf | None = None,
    events: Events | None = None,
    cluster: list[Delegate] | None = None,
) -> list[Delegate]:
    hook = make_pod_delegates(nads, events)
    return await hook(the_pod, mconf or MultusConf(), [CLUSTER] if cluster is None else cluster)


def conf_type(d: Delegate) -> str:
    return d.conf.type if isinstance(d.conf, PluginConf) else d.conf.plugins[0].type


# --------------------------------------------------------------------------------------------
# §9.1: NAD resolution


async def test_V01_two_nads_in_order_none_master() -> None:
    nads = Nads()
    nads.add(nad("test", "net1", {"name": "net1", "type": "mynet", "cniVersion": "0.2.0"}))
    nads.add(nad("test", "net2", {"name": "net2", "type": "mynet2", "cniVersion": "0.2.0"}))
    nads.add(nad("test", "net3", {"name": "net3", "type": "mynet3", "cniVersion": "0.2.0"}))
    out = await resolve(nads, pod("net1,net2"))
    assert out[0] is CLUSTER
    added = out[1:]
    assert [(d.network_name, conf_type(d), d.master) for d in added] == [
        ("net1", "mynet", False),
        ("net2", "mynet2", False),
    ]
    assert [d.name for d in added] == ["test/net1", "test/net2"]
    assert ("test", "net3") not in nads.lookups


async def test_V02_missing_nad_fails_with_upstream_text_and_event() -> None:
    nads = Nads().add(nad("test", "net3", {"name": "net3", "type": "mynet3"}))
    events = Events()
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod("net1,net2"), events=events)
    assert info.value.msg == NOT_FOUND_V02
    assert info.value.network == "test/net1"
    assert info.value.code == CniCode.INVALID_NETWORK_CONFIG
    assert events.seen == [
        (
            "test/testpod",
            "cannot find a network-attachment-definition (net1) in namespace (test): "
            'network-attachment-definitions.k8s.cni.cncf.io "net1" not found',
        )
    ]
    assert nads.lookups == [("test", "net1")]  # the first failure aborts


async def test_V03_json_selection_with_namespaces() -> None:
    nads = Nads()
    nads.add(nad("test", "net1", {"name": "net1", "type": "mynet"}))
    nads.add(nad("test", "net2", {"name": "net2", "type": "mynet2"}))
    nads.add(nad("other-ns", "net3", {"name": "net3", "type": "mynet3"}))
    value = (
        '[{"name":"net1"},{"name":"net2","ipRequest":"1.2.3.4","macRequest":"aa:bb:cc:dd:ee:ff"},'
        '{"name":"net3","namespace":"other-ns"}]'
    )
    out = (await resolve(nads, pod(value)))[1:]
    assert [d.name for d in out] == ["test/net1", "test/net2", "other-ns/net3"]
    assert out[1].ip_request == () and out[1].mac_request == ""


async def test_V04_unparsable_annotation_resolves_nothing() -> None:
    nads = Nads()
    with pytest.raises(SelectionError) as info:
        await resolve(nads, pod("[adsfasdfasdfasf]"))
    assert (
        "parsePodNetworkAnnotation: failed to parse pod Network Attachment Selection Annotation JSON format: "
        "invalid character 'a' looking for beginning of value"
    ) in info.value.msg
    assert info.value.msg.startswith(f"{NETWORKS_ANNOTATION} annotation: ")
    assert nads.lookups == []


async def test_V05_default_route_element_parses_and_sets_filters() -> None:
    nads = Nads()
    for name in ("net1", "net2", "net3"):
        nads.add(nad("test", name, {"name": name, "type": "mynet"}))
    value = '[{"name":"net1"},{"name":"net2","default-route":["192.168.2.2"]},{"name":"net3"}]'
    out = await resolve(nads, pod(value))
    assert len(out) == 4
    assert [(d.filter_v4_gateway, d.filter_v6_gateway) for d in out] == [
        (True, True),
        (True, True),
        (False, True),
        (True, True),
    ]
    assert out[2].default_route == ("192.168.2.2",)


async def test_V06_empty_spec_nads_read_conf_files(tmp_path: Path) -> None:
    (tmp_path / "10-net1.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "net1", "type": "mynet"}))
    (tmp_path / "20-net2.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "net2", "type": "mynet2"}))
    nads = Nads().add(nad("test", "net1")).add(nad("test", "net2"))
    out = (await resolve(nads, pod("net1,net2"), MultusConf(conf_dir=str(tmp_path))))[1:]
    assert [(d.network_name, conf_type(d)) for d in out] == [("net1", "mynet"), ("net2", "mynet2")]


async def test_V06_empty_spec_conflist_file(tmp_path: Path) -> None:
    listing = {"cniVersion": "1.0.0", "name": "net1", "plugins": [{"type": "mynet"}, {"type": "tuning"}]}
    (tmp_path / "10-net1.conflist").write_text(json.dumps(listing))
    out = (await resolve(Nads().add(nad("test", "net1")), pod("net1"), MultusConf(conf_dir=str(tmp_path))))[1:]
    assert isinstance(out[0].conf, ConfList)
    assert [p.type for p in out[0].conf.plugins] == ["mynet", "tuning"]


async def test_V07_nameless_spec_config_gets_the_nad_name() -> None:
    out = (await resolve(Nads().add(nad("test", "net1", '{"type": "mynet"}')), pod("net1")))[1:]
    assert (out[0].network_name, conf_type(out[0])) == ("net1", "mynet")


async def test_V08_unparsable_file_is_reported_not_fatal_to_other_lookups(tmp_path: Path) -> None:
    # Upstream (Q16) failed every lookup after a broken file; multusd skips it and lists it in
    # the error's details, so net1 resolves and net2 fails naming the file.
    (tmp_path / "10-net1.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "net1", "type": "mynet"}))
    (tmp_path / "20-net2.conf").write_text("asdfasdfasfdasfd")
    nads = Nads().add(nad("test", "net1")).add(nad("test", "net2"))
    mconf = MultusConf(conf_dir=str(tmp_path))
    assert len(await resolve(nads, pod("net1"), mconf)) == 2
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod("net1,net2"), mconf)
    assert info.value.msg.startswith("GetNetworkDelegates: failed getting the delegate: test/net2: ")
    assert "20-net2.conf" in info.value.details
    assert info.value.network == "test/net2"


async def test_invalid_spec_config_names_the_network() -> None:
    with pytest.raises(PodNetworkError) as info:
        await resolve(Nads().add(nad("test", "net1", "{not json")), pod("net1"))
    assert info.value.msg.startswith(
        "GetNetworkDelegates: failed getting the delegate: test/net1: "
        "GetCNIConfig: err in getCNIConfigFromSpec: failed to unmarshal Spec.Config: "
    )


# V09 to V15 are the clusterNetwork/defaultNetworks vectors: resolved by delegates.cluster_delegates,
# checked here against the same NadSource double because the pod hook builds on their output.


async def test_V09_V10_V11_cluster_and_default_networks_from_nads() -> None:
    nads = (
        Nads()
        .add(nad("kube-system", "myCRD1", {"type": "mynet"}))
        .add(nad("kube-system", "myCRD2", {"type": "mynet2"}))
    )
    one = await cluster_delegates(MultusConf(cluster_network="myCRD1"), nads, "test")
    assert [(d.network_name, conf_type(d), d.master) for d in one] == [("myCRD1", "mynet", True)]
    mconf = MultusConf(cluster_network="myCRD1", default_networks=("myCRD2",))
    two = await cluster_delegates(mconf, nads, "test")
    assert [d.network_name for d in two] == ["myCRD1", "myCRD2"]
    system = await cluster_delegates(mconf, nads, "kube-system")
    assert [d.network_name for d in system] == ["myCRD1"]


async def test_V12_V13_V14_V15_cluster_network_from_files(tmp_path: Path) -> None:
    (tmp_path / "10-net1.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "myFile1", "type": "mynet"}))
    by_name = await cluster_delegates(MultusConf(cluster_network="myFile1", conf_dir=str(tmp_path)), Nads(), "test")
    assert [(d.network_name, conf_type(d)) for d in by_name] == [("myFile1", "mynet")]
    by_dir = await cluster_delegates(MultusConf(cluster_network=str(tmp_path)), Nads(), "test")
    assert by_dir[0].network_name == "myFile1"
    by_file = await cluster_delegates(MultusConf(cluster_network=str(tmp_path / "10-net1.conf")), Nads(), "test")
    assert by_file[0].network_name == "myFile1"
    with pytest.raises(
        CniError, match="GetDefaultNetworks: failed to get clusterNetwork myCRD1 in namespace kube-system"
    ):
        await cluster_delegates(MultusConf(cluster_network="myCRD1", conf_dir=str(tmp_path)), Nads(), "test")


async def test_V16_default_network_annotation_replaces_the_cluster_network() -> None:
    nads = (
        Nads().add(nad("kube-system", "net1", {"type": "mynet1"})).add(nad("kube-system", "net2", {"type": "mynet2"}))
    )
    mconf = MultusConf(cluster_network="net2")
    cluster = await cluster_delegates(mconf, nads, "test")
    assert (cluster[0].network_name, conf_type(cluster[0])) == ("net2", "mynet2")
    out = await resolve(nads, pod(default="net1"), mconf, cluster=cluster)
    assert len(out) == 1
    assert (out[0].network_name, conf_type(out[0]), out[0].master, out[0].name) == (
        "net1",
        "mynet1",
        True,
        "kube-system/net1",
    )


async def test_V17_empty_spec_without_files_fails_for_default_network(tmp_path: Path) -> None:
    nads = Nads().add(nad("kube-system", "net1")).add(nad("kube-system", "net2"))
    with pytest.raises(CniError):
        await cluster_delegates(MultusConf(cluster_network="net2", conf_dir=str(tmp_path)), nads, "test")
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod(default="net1"), MultusConf(conf_dir="badfilepath"))
    assert info.value.msg.startswith(
        "TryLoadPodDelegates: error in loading K8s cluster default network from pod annotation: "
        "tryLoadK8sPodDefaultNetwork: failed getting the delegate: kube-system/net1: "
    )


async def test_V18_default_network_replaces_a_file_cluster_delegate() -> None:
    file_cluster = Delegate("net2", parse_plugin_conf({"type": "mynet2", "name": "net2"}), master=True)
    nads = Nads().add(nad("kube-system", "net1", {"type": "mynet1"}))
    out = await resolve(nads, pod(default="net1"), cluster=[file_cluster])
    assert [(d.network_name, conf_type(d), d.master) for d in out] == [("net1", "mynet1", True)]


async def test_default_network_errors_and_isolation_exemption() -> None:
    nads = Nads().add(nad("other", "net1", {"type": "mynet1"}))
    with pytest.raises(SelectionError, match="more than one default network is specified: a,b"):
        await resolve(nads, pod(default="a,b"))
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod(default="net1"))  # defaults to kube-system, not the pod's namespace
    assert "cannot find a network-attachment-definition (net1) in namespace (kube-system)" in info.value.msg
    out = await resolve(nads, pod(default="other/net1"), MultusConf(namespace_isolation=True))
    assert out[0].name == "other/net1"  # isolation does not apply to the default network
    assert await resolve(nads, pod(default="")) == [CLUSTER]


async def test_V20_namespace_isolation_refuses_other_namespaces() -> None:
    nads = Nads().add(nad("kube-system", "net1", {"type": "mynet"}))
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod("kube-system/net1"), MultusConf(namespace_isolation=True))
    assert (
        "GetNetworkDelegates: namespace isolation enabled, annotation violates permission, pod is in namespace test "
        "but refers to target namespace kube-system"
    ) in info.value.msg
    assert info.value.network == "kube-system/net1"
    assert nads.lookups == []


async def test_V21_global_namespaces_are_allowed() -> None:
    nads = Nads().add(nad("kube-system", "net1", {"type": "mynet"})).add(nad("default", "d", {"type": "x"}))
    mconf = MultusConf.parse({"namespaceIsolation": True, "globalNamespaces": "kube-system,donkey-kong"})
    out = await resolve(nads, pod("kube-system/net1"), mconf)
    assert out[1].name == "kube-system/net1"
    with pytest.raises(PodNetworkError, match="target namespace default"):
        await resolve(nads, pod("default/d"), mconf)  # the list replaces the default ["default"]
    assert (await resolve(nads, pod("default/d"), MultusConf(namespace_isolation=True)))[1].name == "default/d"


async def test_isolation_off_and_same_namespace_are_fine() -> None:
    nads = Nads().add(nad("kube-system", "net1", {"type": "mynet"})).add(nad("test", "own", {"type": "x"}))
    assert len(await resolve(nads, pod("kube-system/net1"))) == 2
    assert len(await resolve(nads, pod("own"), MultusConf(namespace_isolation=True))) == 2


async def test_names_that_cannot_exist_are_not_looked_up() -> None:
    events = Events()
    nads = Nads().add(nad("test", "a", {"type": "x"}))
    with pytest.raises(PodNetworkError, match=r"cannot find a network-attachment-definition \(\.\./x\)"):
        await resolve(nads, pod('[{"name":"../x"}]'), events=events)
    with pytest.raises(PodNetworkError, match=r"network-attachment-definition \(\) in namespace \(test\)"):
        await resolve(nads, pod("a,,b"), events=events)  # Q17: the empty name fails after "a" resolved
    assert nads.lookups == [("test", "a")]
    assert len(events.seen) == 2


async def test_dotted_json_names_are_valid_nad_names() -> None:
    nads = Nads().add(nad("test", "net.v1", {"type": "mynet"}))
    assert (await resolve(nads, pod('[{"name":"net.v1"}]')))[1].name == "test/net.v1"


async def test_api_failure_keeps_its_code_and_names_the_network() -> None:
    nads = Nads(fail=CniError(CniCode.TRY_AGAIN_LATER, "GET network-attachment-definition test/net1: timeout"))
    events = Events()
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod("net1"), events=events)
    assert info.value.code == CniCode.TRY_AGAIN_LATER
    assert info.value.network == "test/net1"
    assert "timeout" in info.value.msg
    assert events.seen == []


async def test_explicit_interface_names_are_checked_before_anything_runs() -> None:
    nads = Nads().add(nad("test", "net1", {"type": "mynet"}))
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod('[{"name":"net1","interface":"a:b"}]'))
    assert info.value.msg.endswith("test/net1: interface name contains / or : or whitespace characters")
    for bad, text in ((".", "interface name is . or .."), ("x" * 16, "interface name is too long")):
        with pytest.raises(PodNetworkError, match=text):
            await resolve(nads, pod(json.dumps([{"name": "net1", "interface": bad}])))


async def test_resource_name_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    nads = Nads().add(nad("test", "net1", {"type": "sriov"}, **{"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}))
    with caplog.at_level(logging.WARNING, logger="multusd.attach"):
        out = await resolve(nads, pod("net1"))
    assert out[1].device_id == "" and "deviceID" not in out[1].conf.raw
    assert "device plugins are not supported" in caplog.text


def test_pod_network_error_survives_copy_and_pickle() -> None:
    err = PodNetworkError(7, "bad", "ns/n", "why")
    for clone in (copy.copy(err), pickle.loads(pickle.dumps(err))):
        assert clone == err and clone.network == "ns/n"


# --------------------------------------------------------------------------------------------
# §9.2: delegate config edits


@pytest.mark.parametrize(
    ("conf", "device_id"),
    [
        pytest.param({"name": "second-network", "type": "sriov"}, "0000:00:00.0", id="V51-conf"),
        pytest.param({"name": "second-network", "type": "host-device"}, "0000:00:00.2", id="V51-host-device"),
        pytest.param({"name": "second-network", "plugins": [{"type": "sriov"}]}, "0000:00:00.1", id="V51-list"),
        pytest.param(
            {"name": "second-network", "plugins": [{"type": "sriov"}, {"type": "tuning", "ipam": {"type": "x"}}]},
            "0000:00:00.1",
            id="V51-list-every-plugin",
        ),
    ],
)
def test_V51_device_id_into_conf_and_every_list_plugin(conf: dict[str, Any], device_id: str) -> None:
    parsed = parse_conf_list(conf) if "plugins" in conf else parse_plugin_conf(conf)
    out = inject_device_id(parsed, device_id)
    data = json.loads(out.to_bytes())
    targets = data.get("plugins", [data])
    for plugin in targets:
        assert plugin["deviceID"] == device_id and plugin["pciBusID"] == device_id
    if isinstance(out, ConfList):
        assert all(p.raw["deviceID"] == device_id for p in out.plugins)  # the parsed view follows
        assert out.plugins[-1].raw.get("ipam", {"type": "x"}) == {"type": "x"}


@pytest.mark.parametrize(
    ("conf", "cni_args", "expected"),
    [
        pytest.param({"name": "second-network", "type": "bridge"}, {"args1": "val1"}, {"args1": "val1"}, id="V52-add"),
        pytest.param(
            {"name": "second-network", "type": "bridge", "args": {"cni": {"args0": "val0", "args1": "val1"}}},
            {"args1": "val1a"},
            {"args0": "val0", "args1": "val1a"},
            id="V52-merge",
        ),
        pytest.param(
            {"name": "second-network", "type": "bridge", "args": {"other": 1}},
            {"a": 1},
            {"a": 1},
            id="args-without-cni",
        ),
        pytest.param({"name": "n", "type": "bridge"}, {}, {}, id="empty-still-creates"),
    ],
)
def test_V52_cni_args_into_a_conf(conf: dict[str, Any], cni_args: dict[str, Any], expected: dict[str, Any]) -> None:
    out = inject_cni_args(parse_plugin_conf(conf), cni_args)
    assert json.loads(out.to_bytes())["args"]["cni"] == expected
    assert out.raw["args"]["cni"] == expected
    assert conf.get("args", {}).get("cni", {}).get("args1") in (None, "val1")  # the input is untouched


def test_V52_cni_args_into_every_list_plugin() -> None:
    listing = parse_conf_list({"name": "second-network", "plugins": [{"type": "bridge"}, {"type": "tuning"}]})
    out = inject_cni_args(listing, {"args1": "val1"})
    assert isinstance(out, ConfList)
    assert [json.loads(out.to_bytes())["plugins"][i]["args"]["cni"] for i in (0, 1)] == [{"args1": "val1"}] * 2
    assert [p.raw["args"]["cni"]["args1"] for p in out.plugins] == ["val1", "val1"]
    assert listing.plugins[0].raw.get("args") is None


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"name": "n", "type": "bridge", "args": "x"}, id="Q13-args-string"),
        pytest.param({"name": "n", "type": "bridge", "args": None}, id="Q13-args-null"),
        pytest.param({"name": "n", "type": "bridge", "args": {"cni": [1]}}, id="Q13-cni-array"),
        pytest.param({"name": "n", "plugins": [{"type": "bridge", "args": 1}]}, id="Q13-list-plugin"),
    ],
)
def test_Q13_non_object_args_is_an_error_not_a_crash(conf: dict[str, Any]) -> None:
    parsed = parse_conf_list(conf) if "plugins" in conf else parse_plugin_conf(conf)
    with pytest.raises(CniError) as info:
        inject_cni_args(parsed, {"a": "b"})
    assert info.value.code == CniCode.INVALID_NETWORK_CONFIG
    assert "failed to add cni-args" in info.value.msg


async def test_V52_cni_args_through_the_annotation() -> None:
    nads = Nads()
    nads.add(nad("test", "br", {"name": "br", "type": "bridge", "args": {"cni": {"keep": 1}}}))
    nads.add(nad("test", "lst", {"name": "lst", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}))
    nads.add(nad("test", "bad", {"name": "bad", "type": "bridge", "args": "x"}))
    value = '[{"name":"br","cni-args":{"k":"v"}},{"name":"lst","cni-args":{"k":"v"}},{"name":"br"}]'
    br, lst, plain = (await resolve(nads, pod(value)))[1:]
    assert br.conf.raw["args"]["cni"] == {"keep": 1, "k": "v"}
    assert isinstance(lst.conf, ConfList) and [p.raw["args"]["cni"] for p in lst.conf.plugins] == [{"k": "v"}] * 2
    assert plain.conf.raw["args"]["cni"] == {"keep": 1}
    with pytest.raises(PodNetworkError) as info:
        await resolve(nads, pod('[{"name":"bad","cni-args":{"k":"v"}}]'))
    assert info.value.network == "test/bad" and "failed to add cni-args" in info.value.msg


async def test_V56_element_requests_are_copied_onto_the_delegate() -> None:
    nads = Nads().add(nad("test", "testname", {"name": "testname", "type": "mynet"}))
    value = json.dumps(
        [
            {
                "name": "testname",
                "interfaceRequest": "testIF1",
                "mac": "c2:11:22:33:44:66",
                "infiniband-guid": "24:8a:07:03:00:8d:ae:2e",
                "ips": ["10.0.0.1/24"],
                "bandwidth": {"ingressRate": 100, "ingressBurst": 200, "egressRate": 100, "egressBurst": 200},
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "10.0.0.1"}],
                "deviceID": "0000:03:00.1",
            }
        ]
    )
    [d] = (await resolve(nads, pod(value)))[1:]
    assert d.name == "test/testname" and not d.master
    assert d.ifname_request == "testIF1"
    assert d.mac_request == "c2:11:22:33:44:66"
    assert d.infiniband_guid_request == "24:8a:07:03:00:8d:ae:2e"
    assert d.ip_request == ("10.0.0.1/24",)
    assert d.bandwidth == {"ingressRate": 100, "ingressBurst": 200, "egressRate": 100, "egressBurst": 200}
    assert d.port_mappings == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "10.0.0.1"}]
    # upstream: the element's deviceID is the delegate's (a capability arg), the config is not edited
    assert d.device_id == "0000:03:00.1" and "deviceID" not in d.conf.raw
    assert d.default_route is None and (d.filter_v4_gateway, d.filter_v6_gateway) == (False, False)


async def test_V57_delegate_network_name_is_the_config_name() -> None:
    nads = Nads()
    nads.add(nad("test", "a", {"name": "weave", "type": "weave-net"}))
    nads.add(nad("test", "b", {"name": "weave-list", "plugins": [{"type": "weave"}]}))
    a, b = (await resolve(nads, pod("a,b")))[1:]
    assert (a.name, a.network_name) == ("test/a", "weave")
    assert (b.name, b.network_name) == ("test/b", "weave-list")


# --------------------------------------------------------------------------------------------
# CheckGatewayConfig (§6 step 13, V58)


def delegate(routes: tuple[str, ...] | None, name: str = "n") -> Delegate:
    return Delegate(name, parse_plugin_conf({"name": name, "type": "x"}), default_route=routes)


@pytest.mark.parametrize(
    ("routes", "flags"),
    [
        pytest.param(None, (True, True), id="V58-absent"),
        pytest.param((), (True, True), id="V58-empty-Q11"),
        pytest.param(("10.1.1.1",), (False, True), id="V58-v4"),
        pytest.param(("10.1.1.1", "fc00::1"), (False, False), id="V58-both"),
        pytest.param(("fc00::1",), (True, False), id="v6"),
        pytest.param(("",), (True, False), id="nil-ip-counts-as-v6"),
    ],
)
def test_V58_check_gateway_config_single_delegate(routes: tuple[str, ...] | None, flags: tuple[bool, bool]) -> None:
    [d] = check_gateway_config([delegate(routes)])
    assert (d.filter_v4_gateway, d.filter_v6_gateway) == flags
    assert d.default_route == routes


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param([("10.1.1.1",), ("10.1.1.2",)], id="two-v4-across-delegates"),
        pytest.param([("10.1.1.1", "10.1.1.2")], id="two-v4-one-delegate"),
        pytest.param([("fc00::1",), ("fc00::2",)], id="two-v6"),
        pytest.param([("::ffff:10.0.0.1",), ("10.0.0.2",)], id="mapped-counts-v4"),
    ],
)
def test_ecmp_is_refused(routes: list[tuple[str, ...]]) -> None:
    with pytest.raises(CniError) as info:
        check_gateway_config([delegate(r) for r in routes])
    assert info.value.msg == ECMP_ERROR


def test_check_gateway_config_returns_new_delegates() -> None:
    original = [delegate(None, "a"), delegate(("10.0.0.1",), "b"), delegate(("fc00::1",), "c")]
    out = check_gateway_config(original)
    assert [(d.filter_v4_gateway, d.filter_v6_gateway) for d in out] == [(True, True), (False, True), (True, False)]
    assert all(not d.filter_v4_gateway for d in original)


async def test_Q11_empty_default_route_filters_every_interface() -> None:
    nads = Nads().add(nad("test", "net1", {"type": "mynet"}))
    out = await resolve(nads, pod('[{"name":"net1","default-route":[]}]'))
    assert [(d.filter_v4_gateway, d.filter_v6_gateway) for d in out] == [(True, True), (True, True)]


async def test_ecmp_through_the_annotation() -> None:
    nads = Nads().add(nad("test", "a", {"type": "x"})).add(nad("test", "b", {"type": "x"}))
    with pytest.raises(CniError, match=ECMP_ERROR):
        await resolve(
            nads, pod('[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.0.1.1"]}]')
        )


async def test_gateway_check_runs_only_with_a_networks_annotation() -> None:
    # upstream runs CheckGatewayConfig inside the networks-annotation branch only (§6 step 13)
    nads = Nads().add(nad("kube-system", "def", {"type": "x"}))
    out = await resolve(nads, pod(default='[{"name":"def","default-route":["10.0.0.1"]}]'))
    assert out[0].default_route == ("10.0.0.1",)
    assert (out[0].filter_v4_gateway, out[0].filter_v6_gateway) == (False, False)
    nads.add(nad("test", "n", {"type": "x"}))
    out = await resolve(nads, pod("n", default='[{"name":"def","default-route":["10.0.0.1"]}]'))
    assert [(d.filter_v4_gateway, d.filter_v6_gateway) for d in out] == [(False, True), (True, True)]
