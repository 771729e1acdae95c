"""multusd under the real runtime: containerd's CRI plugin → multus-shim → multusd → plugins.

The kubelet's part is played by a small CRI client (``tests/cri``); containerd creates the pod
sandbox netns (``/var/run/netns/cni-…``), runs the pause container with runc and calls the CNI
chain exactly as on a K3s node — including the CNI_ARGS order it happens to produce and the
second DEL with an empty CNI_NETNS on RemovePodSandbox.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from typing import Any

import grpc
import pytest

from multusd.kube.localapi import LocalApi
from tests.e2e.cluster import NAD_SUPPORT, Cluster, Sandbox, host_local_reservations, sandbox_processes_gone
from tests.netns import run

pytestmark = [pytest.mark.root, pytest.mark.e2e]

STATUS_KEY = "k8s.v1.cni.cncf.io/network-status"
NETWORKS_KEY = "k8s.v1.cni.cncf.io/networks"
FLANNEL_SUBNET = ipaddress.ip_network("10.42.5.0/24")
PROCESS_EXIT_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0
NEEDS_NADS = pytest.mark.skipif(
    not NAD_SUPPORT,
    reason="multusd/daemon.py does not pass pod_delegates to the flows yet: NAD (networks annotation) "
    "support is not wired into the daemon",
)


def sample(metrics: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition (0 when absent)."""
    wanted = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in metrics.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, label_text = key.partition("{")
        if metric == name and sorted(filter(None, label_text.rstrip("}").split(","))) == wanted:
            return float(value)
    return 0.0


def network_status(api: LocalApi, name: str, namespace: str = "default") -> list[dict[str, object]]:
    pod = api.get("pods", name, namespace=namespace)
    assert pod is not None, f"pod {namespace}/{name} is gone"
    text = pod["metadata"].get("annotations", {}).get(STATUS_KEY)
    assert text, f"no network-status on {namespace}/{name}: {pod['metadata'].get('annotations')}"
    entries: list[dict[str, object]] = json.loads(text)
    return entries


def pod_addresses(netns: str, ifname: str) -> list[str]:
    """``addr/prefix`` of an interface inside a netns given by path (global scope only)."""
    out = run(["nsenter", f"--net={netns}", "--", "ip", "-j", "addr", "show", "dev", ifname]).stdout
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in json.loads(out)
        for a in link.get("addr_info", [])
        if a.get("scope") != "link"
    ]


async def wait_for_events(api: LocalApi, reason: str, timeout: float = EVENT_TIMEOUT) -> list[dict[str, Any]]:
    """Events with ``reason`` once there are any: the daemon posts events off the critical path."""
    async with asyncio.timeout(timeout):
        while True:
            events = [e for e in api.list("events", namespace="default") if e.get("reason") == reason]
            if events:
                return events
            await asyncio.sleep(0.05)


async def wait_gone(sandbox: Sandbox) -> None:
    """The pause process and its shim exit shortly after RemovePodSandbox returns (bounded)."""
    async with asyncio.timeout(PROCESS_EXIT_TIMEOUT):
        while not sandbox_processes_gone(sandbox):
            await asyncio.sleep(0.05)


async def test_unannotated_pod_gets_eth0_from_flannel_and_leaves_nothing(cluster: Cluster) -> None:
    node, api = cluster.node, cluster.api
    version = await cluster.cri.version()
    assert version.runtime_name == "containerd" and version.runtime_api_version == "v1"
    pod = cluster.create_pod("web-0")
    before = await node.metrics()

    sandbox = await cluster.run_sandbox(pod)

    assert ipaddress.ip_address(sandbox.ip) in FLANNEL_SUBNET, sandbox
    assert sandbox.netns.startswith("/var/run/netns/cni-"), sandbox.netns
    assert pod_addresses(sandbox.netns, "eth0") == [f"{sandbox.ip}/24"]
    status = network_status(api, "web-0")
    assert [(s["name"], s["interface"], s["ips"], s.get("default")) for s in status] == [
        ("cbr0", "eth0", [sandbox.ip], True)
    ]
    assert host_local_reservations(node) == [sandbox.ip]
    added = await wait_for_events(api, "AddedInterface")
    assert [e["message"] for e in added] == [f"Add eth0 [{sandbox.ip}/24] from cbr0"]
    assert (node.cni_dir / sandbox.id).exists(), "no scratch file for the sandbox"
    assert (node.tmp / "flannel" / sandbox.id).exists()
    # containerd went through the multus conf, not straight to flannel
    after_add = await node.metrics()
    assert sample(after_add, "multus_request_duration_seconds_count", command="ADD", outcome="success") == 1

    await cluster.stop_and_remove(sandbox.id)
    await wait_gone(sandbox)

    assert not os.path.exists(sandbox.netns), "sandbox netns left behind"
    assert not (node.cni_dir / sandbox.id).exists(), "scratch file left behind"
    assert not list((node.cni_dir / "results").glob(f"*{sandbox.id}*")), "libcni result cache left behind"
    assert not (node.tmp / "flannel" / sandbox.id).exists()
    assert host_local_reservations(node) == [], "IP still reserved"
    assert await cluster.cri.list_pod_sandbox() == []
    # StopPodSandbox DELs with the netns, RemovePodSandbox DELs again with an empty CNI_NETNS
    metrics = await node.metrics()
    dels = sample(metrics, "multus_request_duration_seconds_count", command="DEL", outcome="success") - sample(
        before, "multus_request_duration_seconds_count", command="DEL", outcome="success"
    )
    assert dels == 2, f"containerd 1.6 DELs once on Stop and once (empty CNI_NETNS) on Remove; saw {dels}"


async def test_twenty_sandboxes_started_concurrently(cluster: Cluster) -> None:
    node = cluster.node
    pods = [cluster.create_pod(f"burst-{i}") for i in range(20)]

    sandboxes = await asyncio.gather(*(cluster.run_sandbox(pod, timeout=120) for pod in pods))

    ips = [s.ip for s in sandboxes]
    assert len(set(ips)) == 20, ips
    assert all(ipaddress.ip_address(ip) in FLANNEL_SUBNET for ip in ips), ips
    assert set(host_local_reservations(node)) == set(ips)
    for sandbox in sandboxes:
        status = network_status(cluster.api, sandbox.pod.name)
        assert [(s["interface"], s["ips"]) for s in status] == [("eth0", [sandbox.ip])], status

    await asyncio.gather(*(cluster.stop_and_remove(s.id) for s in sandboxes))
    for sandbox in sandboxes:
        await wait_gone(sandbox)
        assert not os.path.exists(sandbox.netns)
        assert not (node.cni_dir / sandbox.id).exists()
    assert host_local_reservations(node) == []
    assert await cluster.cri.list_pod_sandbox() == []


def macvlan_nad(name: str, ipam: dict[str, object], capabilities: dict[str, bool] | None = None) -> dict[str, object]:
    """A NetworkAttachmentDefinition for macvlan on the node's ``ens3``."""
    config: dict[str, object] = {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "macvlan",
        "master": "ens3",
        "mode": "bridge",
    }
    config["ipam"] = ipam
    if capabilities:
        config["capabilities"] = capabilities
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": json.dumps(config)},
    }


@NEEDS_NADS
async def test_macvlan_nad_adds_net1_with_host_local_ip(cluster: Cluster) -> None:
    node, api = cluster.node, cluster.api
    api.create(
        macvlan_nad(
            "macvlan-conf",
            {
                "type": "host-local",
                "ranges": [[{"subnet": "192.168.77.0/24", "rangeStart": "192.168.77.10", "rangeEnd": "192.168.77.20"}]],
                "dataDir": str(node.tmp / "ipam"),
            },
        )
    )
    pod = cluster.create_pod("macvlan-0", annotations={NETWORKS_KEY: "macvlan-conf"})

    sandbox = await cluster.run_sandbox(pod)

    assert ipaddress.ip_address(sandbox.ip) in FLANNEL_SUBNET
    assert pod_addresses(sandbox.netns, "eth0") == [f"{sandbox.ip}/24"]
    assert pod_addresses(sandbox.netns, "net1") == ["192.168.77.10/24"]
    status = network_status(api, "macvlan-0")
    assert [(s["name"], s["interface"], s["ips"]) for s in status] == [
        ("cbr0", "eth0", [sandbox.ip]),
        ("default/macvlan-conf", "net1", ["192.168.77.10"]),
    ], status
    assert status[0].get("default") is True and not status[1].get("default")
    assert status[1].get("mac"), status

    await cluster.stop_and_remove(sandbox.id)
    await wait_gone(sandbox)
    assert not os.path.exists(sandbox.netns)
    assert host_local_reservations(node, "macvlan-conf") == []
    assert host_local_reservations(node) == []
    assert not (node.cni_dir / sandbox.id).exists()


@NEEDS_NADS
async def test_macvlan_nad_static_ip_from_the_selection(cluster: Cluster) -> None:
    cluster.api.create(macvlan_nad("macvlan-static", {"type": "static"}, capabilities={"ips": True}))
    selection = json.dumps([{"name": "macvlan-static", "ips": ["192.168.78.5/24"]}])
    pod = cluster.create_pod("static-0", annotations={NETWORKS_KEY: selection})

    sandbox = await cluster.run_sandbox(pod)

    assert pod_addresses(sandbox.netns, "net1") == ["192.168.78.5/24"]
    status = network_status(cluster.api, "static-0")
    assert [(s["interface"], s["ips"]) for s in status] == [("eth0", [sandbox.ip]), ("net1", ["192.168.78.5"])]
    await cluster.stop_and_remove(sandbox.id)
    await wait_gone(sandbox)
    assert not os.path.exists(sandbox.netns)
    assert host_local_reservations(cluster.node) == []


@NEEDS_NADS
async def test_missing_nad_fails_the_sandbox_naming_it(cluster: Cluster) -> None:
    node = cluster.node
    pod = cluster.create_pod("lost-0", annotations={NETWORKS_KEY: "no-such-nad"})

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await cluster.run_sandbox(pod)

    details = failed.value.details() or ""
    assert "no-such-nad" in details, details
    assert "default/lost-0" in details, details
    # containerd tears down what it set up; nothing stays reserved or recorded
    async with asyncio.timeout(30):
        while await cluster.cri.list_pod_sandbox():
            await cluster.cleanup()
    assert host_local_reservations(node) == []
    assert not [p.name for p in node.cni_dir.glob("*") if p.is_file()], "scratch file left behind"
    missing = await wait_for_events(cluster.api, "NoNetworkFound")
    assert any("no-such-nad" in e.get("message", "") for e in missing), missing
