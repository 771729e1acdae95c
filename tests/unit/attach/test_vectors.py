"""Upstream's flow vectors (reference §9.5) through :class:`Multus` with the pod hook, real plugins.

Plugins are the real ``cni-recorder`` under upstream's plugin type names (``weave-net``,
``other-plugin``, ``mynet``, ``firstPlugin``): symlinks in a tmp bin dir with a
``<type>.json`` beside each naming the record file, so the configs sent are exactly upstream's.
upstream's ``delegates: [weave1, …]`` mode maps to a clusterNetwork file plus NADs selected by
the pod's annotation. Error texts are compared as substrings: multusd prefixes ``[ns/pod:net]``
where upstream wrote ``[ns/pod/uid:net]:``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.flows import FlowSettings, Multus, PodInfo
from multusd.attach.podnets import make_pod_delegates
from multusd.attach.request import CniRequest, parse_request
from multusd.attach.selection import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION
from multusd.cni.cache import ResultCache
from multusd.cni.errors import CniError
from multusd.cni.exec import PluginExecutor
from multusd.cni.runtime import CniRuntime
from multusd.cni.types import has_check
from multusd.state import StateStore
from tests.unit.attach.doubles import Netns, Pods, Sink

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PLUGIN_TYPES = ("weave-net", "other-plugin", "mynet", "firstPlugin")
NETNS = "/var/run/netns/test"
CID = "123456789"


@dataclass
class Nads:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, namespace: str, name: str, config: dict[str, Any]) -> None:
        self.objects[(namespace, name)] = {
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"config": json.dumps(config)},
        }

    async def get_nad(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))


@dataclass
class Rig:
    tmp: Path
    multus: Multus
    pods: Pods
    nads: Nads
    sink: Sink
    state: StateStore
    record: Path
    conf_dir: Path
    netns: Netns

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def set_pod(self, networks: str | None = None, default: str | None = None) -> PodInfo:
        annotations = {}
        if networks is not None:
            annotations[NETWORKS_ANNOTATION] = networks
        if default is not None:
            annotations[DEFAULT_NETWORK_ANNOTATION] = default
        pod = PodInfo("test", "testpod", "testUID", annotations)
        self.pods.pods[("test", "testpod")] = pod
        return pod

    def cluster(self, version: str, **extra: Any) -> str:
        """weave1, upstream's master delegate, as the clusterNetwork file."""
        conf = {"cniVersion": version, "name": "weave1", "type": "weave-net", "ip": "1.1.1.2/24", **extra}
        path = self.conf_dir / "10-weave1.conf"
        path.write_text(json.dumps(conf))
        return str(path)

    def request(
        self,
        command: str,
        *,
        version: str = "1.0.0",
        uid: str = "testUID",
        pod: str = "testpod",
        ns: str = "test",
        **config: Any,
    ) -> CniRequest:
        stdin = {
            "cniVersion": version,
            "name": "node-cni-network",
            "type": "multus-shim",
            "clusterNetwork": str(self.conf_dir / "10-weave1.conf"),
            "confDir": str(self.conf_dir),
            **config,
        }
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": CID,
            "CNI_NETNS": NETNS,
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID={uid}",
        }
        body = {"env": env, "config": base64.b64encode(json.dumps(stdin).encode()).decode()}
        return parse_request(json.dumps(body).encode())


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    record = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for plugin_type in PLUGIN_TYPES:
        os.symlink(PLUGINS / "cni-recorder", bin_dir / plugin_type)
        (bin_dir / f"{plugin_type}.json").write_text(json.dumps({"recordFile": str(record)}))
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    state = StateStore(tmp_path / "multus")
    runtime = CniRuntime(PluginExecutor([str(bin_dir)], timeout_seconds=20), ResultCache(str(tmp_path / "multus")))
    pods, nads, sink, netns = Pods(), Nads(), Sink(), Netns()

    def no_network_found(pod: PodInfo, message: str) -> None:
        sink.event(pod, "Warning", "NoNetworkFound", message)

    multus = Multus(
        runtime,
        state,
        pods=pods,
        nads=nads,
        sink=sink,
        settings=FlowSettings(pod_lookup_timeout=0.5),
        pod_delegates=make_pod_delegates(nads, no_network_found),
        netns=netns,
    )
    return Rig(tmp_path, multus, pods, nads, sink, state, record, conf_dir, netns)


def strip_injected(stdin: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stdin.items() if k not in ("prevResult", "runtimeConfig")}


def weave_result(version: str) -> dict[str, Any]:
    ip: dict[str, Any] = {"address": "1.1.1.2/24", "gateway": "1.1.1.1", "interface": 0}
    if not version.startswith("1."):
        ip["version"] = "4"
    return {
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "sandbox": NETNS}],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": "1.1.1.1"}],
        "dns": {"nameservers": ["8.8.8.8"]},
    }


VERSIONS = [pytest.param(v, id=f"[{v}]") for v in ("0.3.1", "0.4.0", "1.0.0", "1.1.0")]


@pytest.mark.parametrize("version", VERSIONS)
async def test_V73_master_result_returned_configs_unchanged_del_in_reverse(rig: Rig, version: str) -> None:
    weave = rig.cluster(version, result=weave_result(version))
    other1 = {"cniVersion": version, "name": "other1", "type": "other-plugin", "ip": "1.1.1.3/24"}
    rig.nads.add("test", "other1", other1)
    rig.set_pod("other1")

    result = await rig.multus.add(rig.request("ADD", version=version))
    assert result.to_json(version) == weave_result(version)
    adds = rig.calls()
    assert [(c["command"], c["ifname"]) for c in adds] == [("ADD", "eth0"), ("ADD", "net1")]
    assert strip_injected(adds[0]["stdin"]) == json.loads(Path(weave).read_text())
    assert strip_injected(adds[1]["stdin"]) == other1

    if has_check(version):
        await rig.multus.check(rig.request("CHECK", version=version))
        assert [c["command"] for c in rig.calls()][2:] == ["CHECK", "CHECK"]
    rig.record.unlink()
    await rig.multus.delete(rig.request("DEL", version=version))
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("DEL", "net1"), ("DEL", "eth0")]


async def test_V75_empty_result_from_a_secondary_is_fine(rig: Rig) -> None:
    rig.cluster("1.0.0", result=weave_result("1.0.0"))
    rig.nads.add("test", "other1", {"cniVersion": "1.0.0", "name": "other1", "type": "other-plugin", "result": {}})
    rig.set_pod("other1")
    result = await rig.multus.add(rig.request("ADD"))
    assert result.to_json("1.0.0") == weave_result("1.0.0")
    assert [e[2] for e in rig.sink.events] == ["Add eth0 [1.1.1.2/24] from weave1"]


async def test_V77_failing_secondary_rolls_back_both(rig: Rig) -> None:
    rig.cluster("1.0.0")
    failing = {
        "cniVersion": "1.0.0",
        "name": "other1",
        "type": "other-plugin",
        "error": {"code": 7, "msg": "expected plugin failure"},
        "errorOn": ["ADD"],
    }
    rig.nads.add("test", "other1", failing)
    rig.set_pod("other1")
    with pytest.raises(CniError) as info:
        await rig.multus.add(rig.request("ADD"))
    assert 'error adding container to network "other1": expected plugin failure' in info.value.msg
    assert info.value.msg.startswith("[test/testpod:test/other1] ")
    assert info.value.code == 7
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [
        ("ADD", "eth0"),
        ("ADD", "net1"),
        ("DEL", "net1"),
        ("DEL", "eth0"),
    ]


async def test_V79_element_requests_reach_the_nad_plugin_as_runtime_config(rig: Rig) -> None:
    rig.cluster("1.0.0")
    net1 = {
        "name": "net1",
        "type": "mynet",
        "capabilities": {"mac": True, "ips": True, "bandwidth": True, "portMappings": True},
        "cniVersion": "1.0.0",
    }
    rig.nads.add("test", "net1", net1)
    bandwidth = {"ingressRate": 2048, "ingressBurst": 1600, "egressRate": 4096, "egressBurst": 1600}
    ports = [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8000, "containerPort": 8001, "protocol": "udp"},
    ]
    element = {
        "name": "net1",
        "mac": "c2:11:22:33:44:66",
        "ips": ["10.0.0.1"],
        "bandwidth": bandwidth,
        "portMappings": ports,
    }
    rig.set_pod(json.dumps([element]))
    await rig.multus.add(rig.request("ADD"))
    weave_call, net1_call = rig.calls()
    assert "runtimeConfig" not in weave_call["stdin"]
    stdin = {k: v for k, v in net1_call["stdin"].items() if k != "prevResult"}
    assert stdin == {
        **net1,
        "runtimeConfig": {
            "ips": ["10.0.0.1"],
            "mac": "c2:11:22:33:44:66",
            "bandwidth": bandwidth,
            "portMappings": ports,
        },
    }


async def test_V80_added_interface_events_for_020_results(rig: Rig) -> None:
    rig.cluster("0.2.0")
    rig.nads.add("test", "net1", {"name": "net1", "type": "mynet", "cniVersion": "0.2.0", "ip": "1.1.1.3/24"})
    rig.nads.add("test", "net2", {"name": "net2", "type": "mynet", "cniVersion": "0.2.0", "ip": "1.1.1.4/24"})
    rig.set_pod("net1,net2")
    await rig.multus.add(rig.request("ADD", version="0.2.0"))
    assert rig.sink.events == [
        ("Normal", "AddedInterface", "Add eth0 [1.1.1.2/24] from weave1"),
        ("Normal", "AddedInterface", "Add net1 [1.1.1.3/24] from test/net1"),
        ("Normal", "AddedInterface", "Add net2 [1.1.1.4/24] from test/net2"),
    ]


@pytest.mark.parametrize(("uid", "expected"), [("testUID", "testUID"), ("", "")], ids=["V82-uid", "V82-no-uid"])
async def test_V82_plugin_environment(rig: Rig, uid: str, expected: str) -> None:
    rig.cluster("1.0.0")
    rig.set_pod()
    await rig.multus.add(rig.request("ADD", uid=uid))
    [call] = rig.calls()
    assert call["args"] == (
        f"IgnoreUnknown=true;K8S_POD_NAMESPACE=test;K8S_POD_NAME=testpod;K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID={expected}"
    )
    assert (call["command"], call["ifname"]) == ("ADD", "eth0")


async def test_V83_conflist_capability_from_multus_runtime_config(rig: Rig) -> None:
    listing = {
        "cniVersion": "0.3.1",
        "name": "mynet-confList",
        "plugins": [{"type": "firstPlugin", "capabilities": {"portMappings": True}}],
    }
    path = rig.conf_dir / "10-mynet.conflist"
    path.write_text(json.dumps(listing))
    rig.set_pod()
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    config = {"clusterNetwork": str(path), "runtimeConfig": {"portMappings": ports}}
    await rig.multus.add(rig.request("ADD", version="0.3.1", **config))
    [call] = rig.calls()
    assert call["stdin"] == {
        "capabilities": {"portMappings": True},
        "name": "mynet-confList",
        "cniVersion": "0.3.1",
        "type": "firstPlugin",
        "runtimeConfig": {"portMappings": ports},
    }
    await rig.multus.delete(rig.request("DEL", version="0.3.1", **config))
    assert [c["command"] for c in rig.calls()] == ["ADD", "DEL"]


@pytest.mark.parametrize("hidden_polls", [0, 3], ids=["V84", "V84-cache-lags"])
async def test_V84_default_network_annotation_same_as_cluster_network(rig: Rig, hidden_polls: int) -> None:
    net1 = {"cniVersion": "1.0.0", "name": "net1", "type": "mynet", "ip": "10.1.0.5/24"}
    rig.nads.add("kube-system", "net1", net1)
    rig.set_pod(default="kube-system/net1")
    rig.pods.hidden_polls = hidden_polls
    result = await rig.multus.add(rig.request("ADD", clusterNetwork="net1"))
    assert [str(ip.address) for ip in result.ips] == ["10.1.0.5/24"]
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("ADD", "eth0")]
    assert rig.pods.live_gets == 0  # found in the cache within the bounded wait
    await rig.multus.delete(rig.request("DEL", clusterNetwork="net1"))
    assert [c["command"] for c in rig.calls()] == ["ADD", "DEL"]


async def _add_weave_and_other1(rig: Rig) -> None:
    rig.cluster("1.0.0")
    rig.nads.add("test", "other1", {"cniVersion": "1.0.0", "name": "other1", "type": "other-plugin"})
    rig.set_pod("other1")
    await rig.multus.add(rig.request("ADD"))
    rig.record.unlink()


async def test_V85_scratch_file_written_and_del_runs_both(rig: Rig) -> None:
    await _add_weave_and_other1(rig)
    assert (rig.tmp / "multus" / CID).exists()
    await rig.multus.delete(rig.request("DEL"))
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("DEL", "net1"), ("DEL", "eth0")]


async def test_V86_lost_scratch_file_rebuilds_from_pod_annotations(rig: Rig) -> None:
    await _add_weave_and_other1(rig)
    (rig.tmp / "multus" / CID).unlink()
    await rig.multus.delete(rig.request("DEL"))
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("DEL", "net1"), ("DEL", "eth0")]


async def test_V87_pod_gone_del_uses_the_scratch_file(rig: Rig) -> None:
    await _add_weave_and_other1(rig)
    rig.pods.pods.clear()
    rig.nads.objects.clear()
    await rig.multus.delete(rig.request("DEL"))
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("DEL", "net1"), ("DEL", "eth0")]


async def test_V89_pod_not_found_gives_empty_110_result(rig: Rig) -> None:
    rig.cluster("1.1.0")
    result = await rig.multus.add(rig.request("ADD", version="1.1.0", pod="missing-pod", ns="default", uid=""))
    assert result.to_json("1.1.0")["cniVersion"] == "1.1.0"
    assert rig.calls() == []


async def test_missing_nad_fails_add_with_event_and_runs_nothing(rig: Rig) -> None:
    rig.cluster("1.0.0")
    rig.set_pod("net1")
    with pytest.raises(CniError) as info:
        await rig.multus.add(rig.request("ADD"))
    assert info.value.msg.startswith("[test/testpod:test/net1] ")  # the house prefix names the network
    assert (
        "GetNetworkDelegates: failed getting the delegate: getKubernetesDelegate: cannot find a "
        "network-attachment-definition (net1) in namespace (test)"
    ) in info.value.msg
    assert rig.sink.events == [
        (
            "Warning",
            "NoNetworkFound",
            "cannot find a network-attachment-definition (net1) in namespace (test): "
            'network-attachment-definitions.k8s.cni.cncf.io "net1" not found',
        )
    ]
    assert rig.calls() == []
    assert rig.state.load(CID) is None


async def test_explicit_and_automatic_interface_names(rig: Rig) -> None:
    # a@foo,b gives foo then net2: the index counts the cluster network (§6 step 10)
    rig.cluster("1.0.0")
    for name in ("a", "b"):
        rig.nads.add("test", name, {"cniVersion": "1.0.0", "name": name, "type": "mynet"})
    rig.set_pod("a@foo,b")
    await rig.multus.add(rig.request("ADD"))
    assert [c["ifname"] for c in rig.calls()] == ["eth0", "foo", "net2"]


async def test_cni_args_reach_the_plugin(rig: Rig) -> None:
    rig.cluster("1.0.0")
    rig.nads.add("test", "net1", {"cniVersion": "1.0.0", "name": "net1", "type": "mynet"})
    rig.set_pod('[{"name":"net1","cni-args":{"foo":"bar"}}]')
    await rig.multus.add(rig.request("ADD"))
    assert rig.calls()[1]["stdin"]["args"] == {"cni": {"foo": "bar"}}


async def test_V05_default_route_request_moves_the_default_route(rig: Rig) -> None:
    # §6 step 13: every interface is filtered, net1 keeps only its requested v4 gateway
    rig.cluster("1.0.0")
    rig.nads.add("test", "net1", {"cniVersion": "1.0.0", "name": "net1", "type": "mynet", "ip": "1.1.1.3/24"})
    rig.set_pod('[{"name":"net1","default-route":["1.1.1.1"]}]')
    await rig.multus.add(rig.request("ADD"))
    assert rig.netns.gateway_calls == [("eth0", True, True, ()), ("net1", True, True, ("1.1.1.1",))]


async def test_no_default_route_request_touches_no_route(rig: Rig) -> None:
    rig.cluster("1.0.0")
    rig.nads.add("test", "net1", {"cniVersion": "1.0.0", "name": "net1", "type": "mynet", "ip": "1.1.1.3/24"})
    rig.set_pod("net1")
    await rig.multus.add(rig.request("ADD"))
    assert rig.netns.gateway_calls == []
