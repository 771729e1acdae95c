"""The meta-plugin's flows with real plugin processes (the recorder), no root needed.

The pod and status seams are in-memory doubles of *our* protocols; plugins, the result cache and
the scratch files are real.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.flows import FlowSettings, Multus, PodInfo
from multusd.attach.request import CniRequest, parse_request
from multusd.cni.cache import ResultCache
from multusd.cni.errors import CniError
from multusd.cni.exec import PluginExecutor
from multusd.cni.runtime import CniRuntime
from multusd.state import StateStore
from tests.unit.attach.doubles import Netns, Pods, Sink

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


@dataclass
class Rig:
    tmp: Path
    multus: Multus
    pods: Pods
    sink: Sink
    state: StateStore
    record: Path
    conf_dir: Path
    counters: dict[str, int]

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def request(self, command: str, *, cid: str = "c1", **config: Any) -> CniRequest:
        stdin = {
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus-shim",
            "clusterNetwork": str(self.conf_dir / "10-cluster.conflist"),
            "confDir": str(self.conf_dir),
            **config,
        }
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/var/run/netns/test",
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
            "K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=uid-1",
        }
        body = {"env": env, "config": base64.b64encode(json.dumps(stdin).encode()).decode()}
        return parse_request(json.dumps(body).encode())


def cluster_list(record: Path, **extra: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "plugins": [
            {"type": "cni-recorder", "recordFile": str(record), "ip": "10.42.0.9/24", **extra},
            {"type": "cni-recorder", "recordFile": str(record), "capabilities": {"portMappings": True}},
        ],
    }


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    record = tmp_path / "calls.jsonl"
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-cluster.conflist").write_text(json.dumps(cluster_list(record)))
    (conf_dir / "extra.conf").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "extra",
                "type": "cni-recorder",
                "recordFile": str(record),
                "ip": "192.168.5.5/24",
            }
        )
    )
    state = StateStore(tmp_path / "multus")
    runtime = CniRuntime(PluginExecutor([str(PLUGINS)], timeout_seconds=20), ResultCache(str(tmp_path / "multus")))
    pods = Pods({("default", "web-0"): PodInfo("default", "web-0", "uid-1")})
    sink = Sink()
    counters = {"status": 0, "corrupt": 0}
    settings = FlowSettings(
        pod_lookup_timeout=0.2,
        on_status_failure=lambda: counters.__setitem__("status", counters["status"] + 1),
        on_corrupt_state=lambda: counters.__setitem__("corrupt", counters["corrupt"] + 1),
    )
    multus = Multus(runtime, state, pods=pods, sink=sink, settings=settings, netns=Netns())
    return Rig(tmp_path, multus, pods, sink, state, record, conf_dir, counters)


async def test_add_runs_cluster_list_saves_state_and_reports(rig: Rig) -> None:
    req = rig.request("ADD", runtimeConfig={"portMappings": [{"hostPort": 8080, "containerPort": 80}]})
    result = await rig.multus.add(req)
    assert [str(ip.address) for ip in result.ips] == ["10.42.0.9/24"]
    calls = rig.calls()
    assert [c["command"] for c in calls] == ["ADD", "ADD"]
    assert calls[0]["args"] == (
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=uid-1"
    )
    assert calls[0]["ifname"] == "eth0"
    assert "runtimeConfig" not in calls[0]["stdin"]
    assert calls[1]["stdin"]["runtimeConfig"] == {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}
    assert calls[1]["stdin"]["prevResult"]["ips"][0]["address"] == "10.42.0.9/24"
    records = rig.state.load("c1")
    assert records is not None and [r.name for r in records] == ["cbr0"]
    [(pod_name, value)] = rig.sink.statuses
    assert pod_name == "web-0"
    status = json.loads(value)
    assert status == [
        {"name": "cbr0", "interface": "eth0", "ips": ["10.42.0.9"], "default": True, "dns": {}},
    ]
    assert rig.sink.events == [("Normal", "AddedInterface", "Add eth0 [10.42.0.9/24] from cbr0")]


async def test_default_networks_get_net1_and_failure_rolls_everything_back(rig: Rig) -> None:
    ok = await rig.multus.add(rig.request("ADD", defaultNetworks=["extra"]))
    assert ok.ips[0].address.ip.exploded == "10.42.0.9"
    assert [c["ifname"] for c in rig.calls()] == ["eth0", "eth0", "net1"]
    rig.record.unlink()

    failing = {"cniVersion": "1.0.0", "name": "extra", "type": "cni-recorder", "recordFile": str(rig.record)}
    failing["error"] = {"code": 7, "msg": "bad master"}
    failing["errorOn"] = ["ADD"]
    (rig.conf_dir / "extra.conf").write_text(json.dumps(failing))
    with pytest.raises(CniError) as info:
        await rig.multus.add(rig.request("ADD", cid="c2", defaultNetworks=["extra"]))
    assert info.value.code == 7
    assert info.value.msg.startswith('[default/web-0:extra] error adding container to network "extra": ')
    assert "bad master" in info.value.msg
    commands = [(c["command"], c["ifname"]) for c in rig.calls()]
    assert commands == [
        ("ADD", "eth0"),
        ("ADD", "eth0"),
        ("ADD", "net1"),
        ("DEL", "net1"),
        ("DEL", "eth0"),
        ("DEL", "eth0"),
    ]
    assert rig.state.load("c2") is None


async def test_system_namespace_pods_skip_default_networks(rig: Rig) -> None:
    rig.pods.pods[("kube-system", "coredns")] = PodInfo("kube-system", "coredns", "uid-9")
    req = rig.request("ADD", defaultNetworks=["extra"])
    req = CniRequest(**{**req.__dict__, "pod_namespace": "kube-system", "pod_name": "coredns", "pod_uid": "uid-9"})
    await rig.multus.add(req)
    assert [c["ifname"] for c in rig.calls()] == ["eth0", "eth0"]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
async def test_pod_not_found_gives_valid_empty_result_in_every_version(rig: Rig, version: str) -> None:
    rig.pods.pods.clear()
    result = await rig.multus.add(rig.request("ADD", cniVersion=version))
    assert result.to_json(version)  # convertible: upstream panicked here for 0.x (Q6)
    assert result.interfaces[0].name == "eth0"
    assert rig.calls() == []
    assert rig.pods.live_gets == 1
    assert rig.state.load("c1") is None


async def test_uid_mismatch_is_refused(rig: Rig) -> None:
    rig.pods.pods[("default", "web-0")] = PodInfo("default", "web-0", "other-uid")
    with pytest.raises(CniError, match='expected pod UID "uid-1" but got "other-uid"'):
        await rig.multus.add(rig.request("ADD"))
    assert rig.calls() == []


async def test_a_hanging_status_write_is_bounded(rig: Rig) -> None:
    rig.sink.hang = True
    rig.multus.settings.status_timeout = 0.2
    async with asyncio.timeout(5):
        await rig.multus.add(rig.request("ADD"))
    assert rig.counters["status"] == 1
    assert "no answer within" in rig.sink.events[-1][2]


async def test_status_write_failure_does_not_fail_add(rig: Rig) -> None:
    rig.sink.fail = True
    await rig.multus.add(rig.request("ADD"))
    assert rig.counters["status"] == 1
    assert rig.sink.events[-1][1] == "NetworkStatusFailed"


async def test_del_uses_state_in_reverse_and_needs_no_pod_or_conf_file(rig: Rig) -> None:
    await rig.multus.add(rig.request("ADD", defaultNetworks=["extra"]))
    rig.record.unlink()
    rig.pods.pods.clear()
    (rig.conf_dir / "10-cluster.conflist").unlink()
    (rig.conf_dir / "extra.conf").unlink()
    await rig.multus.delete(rig.request("DEL"))
    assert [(c["command"], c["ifname"]) for c in rig.calls()] == [("DEL", "net1"), ("DEL", "eth0"), ("DEL", "eth0")]
    assert rig.state.load("c1") is None
    assert not list((rig.tmp / "multus" / "results").iterdir())
    rig.record.unlink()
    await rig.multus.delete(rig.request("DEL"))  # the second DEL containerd sends: nothing left to do
    assert rig.calls() == []


async def test_del_without_state_rebuilds_from_config(rig: Rig) -> None:
    await rig.multus.delete(rig.request("DEL", cid="never-added"))
    assert [c["command"] for c in rig.calls()] == ["DEL", "DEL"]


async def test_corrupt_state_is_counted_rebuilt_and_removed(rig: Rig) -> None:
    (rig.tmp / "multus").mkdir(exist_ok=True)
    (rig.tmp / "multus" / "c1").write_text('[{"Name": "cbr0", "Bytes": "%%%"}]')
    await rig.multus.delete(rig.request("DEL"))
    assert rig.counters["corrupt"] == 1
    assert [c["command"] for c in rig.calls()] == ["DEL", "DEL"]
    assert not (rig.tmp / "multus" / "c1").exists()


async def test_del_failure_is_reported_with_code_and_state_kept_for_retry(rig: Rig) -> None:
    await rig.multus.add(rig.request("ADD"))
    records = rig.state.load("c1")
    assert records is not None
    broken = json.loads(records[0].conf_bytes)
    broken["plugins"][0]["error"] = {"code": 11, "msg": "busy"}
    broken["plugins"][0]["errorOn"] = ["DEL"]
    from multusd.attach.delegates import Delegate
    from multusd.cni.conf import parse_conf_list

    rig.state.save("c1", [Delegate("cbr0", parse_conf_list(broken), master=True).to_record()])
    with pytest.raises(CniError) as info:
        await rig.multus.delete(rig.request("DEL", retryDeleteOnError=True))
    assert info.value.code == 11
    assert info.value.msg.startswith("errors: [default/web-0:cbr0] ")
    assert rig.state.load("c1") is not None


async def test_check_runs_recorded_delegates(rig: Rig) -> None:
    await rig.multus.add(rig.request("ADD"))
    await rig.multus.check(rig.request("CHECK"))
    assert [c["command"] for c in rig.calls()][-2:] == ["CHECK", "CHECK"]
    with pytest.raises(CniError) as info:
        await rig.multus.check(rig.request("CHECK", cid="unknown"))
    assert info.value.code == 3


async def test_status_preserves_plugin_code(rig: Rig) -> None:
    status_file = rig.tmp / "status.json"
    listing = cluster_list(rig.record, statusFile=str(status_file))
    listing["cniVersion"] = "1.1.0"
    (rig.conf_dir / "10-cluster.conflist").write_text(json.dumps(listing))
    await rig.multus.status(rig.request("STATUS"))
    status_file.write_text(json.dumps({"code": 50, "msg": "status failed"}))
    with pytest.raises(CniError) as info:
        await rig.multus.status(rig.request("STATUS"))
    assert (info.value.code, info.value.msg) == (50, "status failed")


async def test_gc_passes_runtime_valid_attachments(rig: Rig) -> None:
    listing = cluster_list(rig.record)
    listing["cniVersion"] = "1.1.0"
    (rig.conf_dir / "10-cluster.conflist").write_text(json.dumps(listing))
    valid = [{"containerID": "c1", "ifname": "eth0"}]
    await rig.multus.gc(rig.request("GC", **{"cni.dev/valid-attachments": valid}))
    gcs = [c for c in rig.calls() if c["command"] == "GC"]
    assert len(gcs) == 2
    assert gcs[0]["stdin"]["cni.dev/valid-attachments"] == valid


async def test_existing_interface_name_is_refused_before_running_and_rolled_back(rig: Rig) -> None:
    netns = rig.multus.netns
    assert isinstance(netns, Netns)
    netns.existing.add(("/var/run/netns/test", "eth0"))
    with pytest.raises(CniError) as info:
        await rig.multus.add(rig.request("ADD"))
    assert info.value.msg.startswith('[default/web-0:cbr0] error adding container to network "cbr0": ')
    assert 'DelegateAdd: cannot set "cni-recorder" interface name to "eth0"' in info.value.msg
    assert [c["command"] for c in rig.calls()] == ["DEL", "DEL"]  # the failed delegate is rolled back too
    assert rig.state.load("c1") is None


async def test_default_route_request_moves_routes_and_edits_the_cache(rig: Rig) -> None:
    async def with_gateway(pod: PodInfo, mconf: Any, delegates: list[Any]) -> list[Any]:
        import dataclasses

        return [dataclasses.replace(delegates[0], default_route=("10.42.0.254",))]

    rig.multus.pod_delegates = with_gateway
    await rig.multus.add(rig.request("ADD"))
    netns = rig.multus.netns
    assert isinstance(netns, Netns)
    assert netns.gateway_calls == [("eth0", True, True, ("10.42.0.254",))]
    cached = ResultCache(str(rig.tmp / "multus")).load("cbr0", "c1", "eth0")
    assert cached is not None and cached.result is not None
    assert {"dst": "0.0.0.0/0", "gw": "10.42.0.254"} in cached.result["routes"]
