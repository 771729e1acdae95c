"""The thick path end to end: real shim → real multusd process → real plugins in a node namespace.

The API is the in-process localapi reached over real HTTP by the daemon's kubernetes_asyncio
client. Every namespace, process and file is cleaned up by the fixtures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from multusd.kube.localapi import LocalApi
from tests.daemon_rig import Node, pod_manifest
from tests.netns import Netns, NetnsFactory, delete_netns

pytestmark = pytest.mark.root

STATUS_KEY = "k8s.v1.cni.cncf.io/network-status"


@pytest.fixture
def node(multus_node: Node, api: LocalApi) -> Node:
    api.create(pod_manifest("web-0"))
    return multus_node


async def event_messages(api: LocalApi, reason: str, wanted: int, timeout: float = 10.0) -> list[str]:
    """Messages of ``reason`` events once at least ``wanted`` arrived: events are posted in the
    background, after the CNI answer, so a test must wait for them (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            messages = [e["message"] for e in api.list("events", namespace="default") if e.get("reason") == reason]
            if len(messages) >= wanted:
                return messages
            await asyncio.sleep(0.05)


def create_pod(api: LocalApi, name: str) -> tuple[str, str, str]:
    """Create a pod on the node; (namespace, name, uid) as the runtime's CNI_ARGS carry them."""
    obj = api.create(pod_manifest(name))
    return ("default", name, obj["metadata"]["uid"])


def reservations(node: Node) -> list[str]:
    """host-local's reservation files for the flannel network (IPs in use)."""
    net_dir = node.tmp / "ipam" / "cbr0"
    return (
        sorted(p.name for p in net_dir.iterdir() if re.match(r"^\d+\.\d+\.\d+\.\d+$", p.name))
        if net_dir.exists()
        else []
    )


async def started(node: Node) -> Node:
    node.start()
    await node.wait_ready()
    return node


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
async def test_add_then_del_through_the_shim(
    node: Node, api: LocalApi, netns_factory: NetnsFactory, version: str
) -> None:
    await started(node)
    pod: Netns = netns_factory.create()
    conf = node.multus_conf(
        version, runtimeConfig={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    )

    add = await node.shim("ADD", "cid-1", pod.path, conf)
    assert add.returncode == 0, add.stdout + add.stderr + node.log()
    result = add.json()
    assert result["cniVersion"] == version
    ips = [ip["address"] for ip in result["ips"]]
    assert len(ips) == 1 and ips[0].startswith("10.42.5.")
    assert pod.addresses("eth0") == ips
    assert reservations(node) == [ips[0].split("/")[0]]

    stored = api.get("pods", "web-0", namespace="default")
    assert stored is not None
    status = json.loads(stored["metadata"]["annotations"][STATUS_KEY])
    assert status[0]["name"] == "cbr0" and status[0]["interface"] == "eth0" and status[0]["default"] is True
    assert status[0]["ips"] == [ips[0].split("/")[0]]
    assert await event_messages(api, "AddedInterface", 1) == [f"Add eth0 [{ips[0]}] from cbr0"]
    assert (node.cni_dir / "cid-1").exists()
    assert list((node.cni_dir / "results").iterdir())

    assert stat.S_IMODE(node.socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.socket_path.parent.stat().st_mode) == 0o700
    assert os.readlink(node.socket_path.parent / "multus.sock") == node.socket_path.name
    # upstream's Go shim connects to <daemonSocketDir>/multus.sock and polls POST /readyz (body null)
    legacy = aiohttp.UnixConnector(path=str(node.socket_path.parent / "multus.sock"))
    async with (
        aiohttp.ClientSession(connector=legacy) as session,
        session.post("http://dummy/readyz", data=b"null") as r,
    ):
        assert r.status == 200
    assert "ADD default/web-0 container=cid-1" in node.log() and "networks=cbr0=eth0 ok" in node.log()

    delete = await node.shim("DEL", "cid-1", pod.path, conf)
    assert delete.returncode == 0, delete.stdout + delete.stderr
    assert not pod.link_exists("eth0")
    assert reservations(node) == []
    assert not (node.cni_dir / "cid-1").exists()
    assert not list((node.cni_dir / "results").iterdir())


async def test_del_without_api_after_pod_deletion_and_restart_and_twice(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    await started(node)
    conf = node.multus_conf()
    pods = [netns_factory.create() for _ in range(3)]
    identities = [create_pod(api, f"p{i}") for i in range(3)]
    for i, pod in enumerate(pods):
        add = await node.shim("ADD", f"cid-{i}", pod.path, conf, pod=identities[i])
        assert add.returncode == 0, add.stdout + node.log()
    assert len(reservations(node)) == 3

    # 1. the API is down
    api.faults.down = True
    first = await node.shim("DEL", "cid-0", pods[0].path, conf, pod=identities[0])
    assert first.returncode == 0, first.stdout + first.stderr
    api.faults.down = False
    assert not pods[0].link_exists("eth0")

    # 2. the pod is already deleted from the API
    api.delete("pods", "p1", namespace="default")
    second = await node.shim("DEL", "cid-1", pods[1].path, conf, pod=identities[1])
    assert second.returncode == 0, second.stdout
    assert not pods[1].link_exists("eth0")

    # 3. after a daemon restart
    assert await node.terminate() == 0
    await started(node)
    third = await node.shim("DEL", "cid-2", pods[2].path, conf, pod=identities[2])
    assert third.returncode == 0, third.stdout
    assert not pods[2].link_exists("eth0")
    assert reservations(node) == []

    # containerd sends DEL twice, the second time with an empty netns
    again = await node.shim("DEL", "cid-2", "", conf, pod=identities[2])
    assert again.returncode == 0, again.stdout + again.stderr
    assert not (node.cni_dir / "cid-2").exists()


async def test_shim_waits_for_a_restarting_daemon_then_gives_up_with_code_11(
    node: Node, netns_factory: NetnsFactory
) -> None:
    pod = netns_factory.create()
    conf = node.multus_conf(daemonReadyTimeout=30)
    pending = asyncio.create_task(node.shim("ADD", "cid-late", pod.path, conf))
    await asyncio.sleep(1.0)
    assert not pending.done()
    await started(node)
    add = await pending
    assert add.returncode == 0, add.stdout + node.log()
    assert pod.link_exists("eth0")
    assert (await node.shim("DEL", "cid-late", pod.path, conf)).returncode == 0

    await node.terminate()
    began = time.monotonic()
    late = await node.shim("ADD", "cid-never", pod.path, node.multus_conf(daemonReadyTimeout=2))
    assert late.returncode == 1
    assert late.json()["code"] == 11
    assert time.monotonic() - began < 15


async def test_delegate_error_codes_reach_the_runtime_unchanged(node: Node, netns_factory: NetnsFactory) -> None:
    failing = node.conf_dir / "20-failing.conf"
    failing.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "failing",
                "type": "cni-recorder",
                "error": {"code": 107, "msg": "vendor says no"},
            }
        )
    )
    await started(node)
    pod = netns_factory.create()
    add = await node.shim("ADD", "cid-x", pod.path, node.multus_conf(clusterNetwork=str(failing)))
    assert add.returncode == 1
    err = add.json()
    assert err["code"] == 107
    assert err["msg"].startswith('[default/web-0:failing] error adding container to network "failing": ')
    assert "vendor says no" in err["msg"]
    assert not (node.cni_dir / "cid-x").exists()


async def test_upstream_scratch_file_is_deleted_correctly(node: Node, netns_factory: NetnsFactory) -> None:
    """A pod attached by upstream's Go daemon: its scratch file (built by hand from §7.1) drives DEL."""
    await started(node)
    pod = netns_factory.create()
    conf = node.multus_conf()
    add = await node.shim("ADD", "cid-go", pod.path, conf)
    assert add.returncode == 0
    flannel_bytes = node.cluster_conflist.read_bytes()
    listing = json.loads(flannel_bytes)
    go_file = [
        {
            "Conf": {"ipam": {}, "dns": {}},
            "ConfList": {"cniVersion": listing["cniVersion"], "name": "cbr0", "plugins": listing["plugins"]},
            "Name": "cbr0",
            "IsFilterV4Gateway": False,
            "IsFilterV6Gateway": False,
            "Bytes": base64.b64encode(flannel_bytes).decode(),
        }
    ]
    (node.cni_dir / "cid-go").write_text(json.dumps(go_file))
    delete = await node.shim("DEL", "cid-go", pod.path, conf)
    assert delete.returncode == 0, delete.stdout
    assert not pod.link_exists("eth0")
    assert reservations(node) == []
    assert not (node.cni_dir / "cid-go").exists()


def sample(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, label_text = key.partition("{")
        if metric == name and ",".join(sorted(label_text.rstrip("}").split(","))) == wanted:
            return float(value)
    return 0.0


async def test_metrics_count_requests_with_go_labels(node: Node, netns_factory: NetnsFactory) -> None:
    await started(node)
    pod = netns_factory.create()
    before = await node.metrics()
    conf = node.multus_conf()
    assert (await node.shim("ADD", "cid-m", pod.path, conf)).returncode == 0
    assert (await node.shim("DEL", "cid-m", pod.path, conf)).returncode == 0
    after = await node.metrics()
    name = "multus_server_request_total"
    labels = {"handler": "/cni", "code": "200", "method": "post"}
    assert sample(after, name, **labels) - sample(before, name, **labels) == 2
    for command in ("ADD", "DEL"):
        assert sample(after, "multus_request_duration_seconds_count", command=command, outcome="success") >= 1
        assert sample(after, "multus_delegate_duration_seconds_count", plugin="flannel", command=command) >= 1
    assert sample(after, "process_resident_memory_bytes") > 0


async def test_thirty_concurrent_adds_with_four_slots(
    node: Node, api: LocalApi, tmp_path: Path, netns_factory: NetnsFactory
) -> None:
    shared = netns_factory.create()  # the recorder creates no interface: one netns serves every pod
    slow = node.conf_dir / "30-slow.conflist"
    slow.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "slow",
                "plugins": [{"type": "cni-slow", "sleepSeconds": 0.3, "ip": "10.9.0.2/24"}],
            }
        )
    )
    node.write_config(maxConcurrentRequests=4)
    identities = [create_pod(api, f"burst-{i}") for i in range(30)]
    await started(node)
    conf = node.multus_conf(clusterNetwork=str(slow))
    depths: list[float] = []

    async def watch_queue() -> None:
        while True:
            depths.append(sample(await node.metrics(), "multus_request_queue_depth"))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_queue())
    results = await asyncio.gather(
        *(node.shim("ADD", f"cid-b{i}", shared.path, conf, pod=identities[i]) for i in range(30))
    )
    watcher.cancel()
    failures = [r.stdout for r in results if r.returncode != 0]
    assert not failures, failures[:3]
    assert max(depths) > 0
    metrics = await node.metrics()
    assert sample(metrics, "multus_request_queue_wait_seconds_count", command="ADD") == 30
    assert sample(metrics, "multus_requests_in_flight") == 0


async def test_graceful_shutdown_finishes_in_flight_serves_del_and_removes_socket(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    slow = node.conf_dir / "40-slow.conflist"
    slow.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "slow",
                "plugins": [{"type": "cni-slow", "sleepSeconds": 3, "ip": "10.9.0.3/24"}],
            }
        )
    )
    node.write_config(shutdownTimeout=20, logFile=str(node.tmp / "multusd.log"), logToStderr=False)
    other = create_pod(api, "other")
    await started(node)
    conf = node.multus_conf(clusterNetwork=str(slow))
    pod = netns_factory.create()
    in_flight = asyncio.create_task(node.shim("ADD", "cid-slow", pod.path, conf))
    async with asyncio.timeout(10):
        while "multus_requests_in_flight 1.0" not in await node.metrics():
            await asyncio.sleep(0.05)

    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(5), aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://127.0.0.1:{node.metrics_port}/readyz") as resp:
                if resp.status == 500:
                    break
            await asyncio.sleep(0.05)

    refused = await node.shim("ADD", "cid-new", pod.path, node.multus_conf(daemonReadyTimeout=1), pod=other)
    assert refused.returncode == 1 and refused.json()["code"] == 11
    served = await node.shim("DEL", "cid-other", pod.path, conf, pod=other)
    assert served.returncode == 0, served.stdout

    add = await in_flight
    assert add.returncode == 0, add.stdout
    async with asyncio.timeout(15):
        while node.process.poll() is None:
            await asyncio.sleep(0.05)
    assert node.process.returncode == 0
    assert not node.socket_path.exists()
    assert not (node.socket_path.parent / "multus.sock").is_symlink()
    log_text = (node.tmp / "multusd.log").read_text()
    assert "ADD default/web-0 container=cid-slow" in log_text
    assert "shutting down" in log_text


async def post_delegate(
    node: Node,
    command: str,
    cid: str,
    netns: str,
    ifname: str,
    uid: str,
    conf: dict[str, object],
    attributes: dict[str, object] | None = None,
) -> tuple[int, Any]:
    """A /delegate request as the dynamic-networks controller sends it (reference §12.1)."""
    body = {
        "env": {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID={uid}",
        },
        "config": base64.b64encode(json.dumps(conf).encode()).decode(),
        "interfaceAttributes": attributes or {"cni-args": None},
    }
    connector = aiohttp.UnixConnector(path=str(node.socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post("http://dummy/delegate", json=body) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def test_delegate_hotplug_adds_and_removes_an_interface(
    node: Node, api: LocalApi, netns_factory: NetnsFactory, tmp_path: Path
) -> None:
    await started(node)
    pod = netns_factory.create()
    uid = api.get("pods", "web-0", namespace="default")["metadata"]["uid"]
    conf = node.multus_conf()
    assert (await node.shim("ADD", "cid-hp", pod.path, conf, pod=("default", "web-0", uid))).returncode == 0

    macvlan = {
        "cniVersion": "1.0.0",
        "name": "macvlan-conf",
        "type": "macvlan",
        "master": "ens3",
        "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "192.168.77.0/24", "dataDir": str(tmp_path / "ipam-hp")},
    }
    status, body = await post_delegate(node, "ADD", "cid-hp", pod.path, "net1", uid, macvlan)
    assert status == 200, body
    address = body["Result"]["ips"][0]["address"]
    assert pod.addresses("net1") == [address]
    annotation = json.loads(api.get("pods", "web-0", namespace="default")["metadata"]["annotations"][STATUS_KEY])
    assert [(e["name"], e["interface"]) for e in annotation] == [("cbr0", "eth0"), ("macvlan-conf", "net1")]
    assert annotation[1]["ips"] == [address.split("/")[0]]
    assert f"Add net1 [{address}] from macvlan-conf" in await event_messages(api, "AddedInterface", 2)

    status, body = await post_delegate(node, "DEL", "cid-hp", pod.path, "net1", uid, macvlan)
    assert status == 200, body
    assert not pod.link_exists("net1")
    annotation = json.loads(api.get("pods", "web-0", namespace="default")["metadata"]["annotations"][STATUS_KEY])
    assert [e["interface"] for e in annotation] == ["eth0"]
    assert not [p for p in (tmp_path / "ipam-hp" / "macvlan-conf").iterdir() if p.name[0].isdigit()]

    # a hot-plugged interface that is never removed is released by the pod's own DEL
    status, body = await post_delegate(node, "ADD", "cid-hp", pod.path, "net2", uid, macvlan)
    assert status == 200, body
    assert (await node.shim("DEL", "cid-hp", pod.path, conf, pod=("default", "web-0", uid))).returncode == 0
    assert not [p for p in (tmp_path / "ipam-hp" / "macvlan-conf").iterdir() if p.name[0].isdigit()]
    assert reservations(node) == []


async def test_reaper_releases_only_orphans(node: Node, api: LocalApi, netns_factory: NetnsFactory) -> None:
    node.write_config(reaperInterval=0.5)
    await started(node)
    conf = node.multus_conf()
    live, doomed = netns_factory.create(), netns_factory.create()
    live_pod, doomed_pod = create_pod(api, "live"), create_pod(api, "doomed")
    assert (await node.shim("ADD", "cid-live", live.path, conf, pod=live_pod)).returncode == 0
    assert (await node.shim("ADD", "cid-doomed", doomed.path, conf, pod=doomed_pod)).returncode == 0
    assert len(reservations(node)) == 2

    # the node lost the DEL: the sandbox netns vanished and the pod was deleted
    delete_netns(doomed)
    api.delete("pods", "doomed", namespace="default")
    async with asyncio.timeout(15):
        while (node.cni_dir / "cid-doomed").exists():
            await asyncio.sleep(0.1)
    assert len(reservations(node)) == 1
    assert (node.cni_dir / "cid-live").exists()
    assert live.link_exists("eth0")
    assert sample(await node.metrics(), "multus_reaper_removed_total", outcome="removed") == 1
    assert (await node.shim("DEL", "cid-live", live.path, conf, pod=live_pod)).returncode == 0


DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "kube-multus-ds", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"app": "multus"}},
        "template": {"metadata": {"labels": {"app": "multus"}}, "spec": {"containers": [{"name": "m", "image": "x"}]}},
    },
}


async def test_generated_multus_conf_drives_the_shim_and_survives_restarts(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    api.create(DAEMONSET)
    generated = node.conf_dir / "00-multus.conf"
    node.start(env={"MULTUS_POD_NAMESPACE": "kube-system"})
    await node.wait_ready()
    async with asyncio.timeout(10):
        while not generated.exists():
            await asyncio.sleep(0.05)
    conf = json.loads(generated.read_text())
    assert conf == {  # upstream copies binDir/cniDir/logLevel when daemon-config sets them
        "binDir": str(node.bin_dir),
        "cniDir": str(node.cni_dir),
        "capabilities": {"bandwidth": True, "portMappings": True},
        "cniVersion": "1.0.0",
        "logLevel": "debug",
        "name": "multus-cni-network",
        "clusterNetwork": str(node.cluster_conflist),
        "daemonSocketPath": str(node.socket_path),
        "type": "multus-shim",
    }
    pod = netns_factory.create()
    add = await node.shim("ADD", "cid-gen", pod.path, conf)
    assert add.returncode == 0, add.stdout + node.log()
    assert (await node.shim("DEL", "cid-gen", pod.path, conf)).returncode == 0

    assert await node.terminate() == 0
    assert generated.exists(), "a restart must not open a flannel-only window (cleanupConfigOnExit: auto)"

    node.start(env={"MULTUS_POD_NAMESPACE": "kube-system"})
    await node.wait_ready()
    api.delete("daemonsets", "kube-multus-ds", namespace="kube-system")
    assert await node.terminate() == 0
    assert not generated.exists(), "uninstalling the DaemonSet removes 00-multus.conf\n" + node.log()[-3000:]
