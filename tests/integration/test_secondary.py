"""Secondary networks end to end: real shim → real multusd → macvlan/ipvlan/static NADs in real namespaces.

Acceptance of the "Secondary networks" issue. Every test runs the daemon as a process against the
in-process localapi, the shim as containerd runs it, and the Debian plugins inside a node
namespace whose ``ens3`` veth serves as the macvlan/ipvlan master. host-local keeps its
reservations under ``tmp_path``, so "nothing leaked" is a look at a few directories.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from multusd.kube.localapi import LocalApi
from tests.daemon_rig import Node, ShimResult, pod_manifest
from tests.netns import Netns, NetnsFactory, add_veth, netns

pytestmark = pytest.mark.root

STATUS_KEY = "k8s.v1.cni.cncf.io/network-status"
NETWORKS_KEY = "k8s.v1.cni.cncf.io/networks"
NAD_PATH = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"
"""The cluster-wide NAD list/watch path (a live GET goes through ``/namespaces/<ns>/…`` instead)."""
MASTER = "ens3"
EVENT_WAIT_SECONDS = 10.0
STATIC_MAC = "c2:11:22:33:44:55"
STATIC_IP = "192.168.90.5/24"
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def node(multus_node: Node) -> Node:
    """The daemon rig's node; ``ens3`` in the node namespace is the macvlan master."""
    return multus_node


# -- helpers --------------------------------------------------------------------------------------


async def started(node: Node) -> Node:
    node.start()
    await node.wait_ready()
    return node


def ipam_dir(node: Node) -> Path:
    """Where every secondary network's host-local keeps its reservations (one subdir per network)."""
    return node.tmp / "ipam-secondary"


def host_local(subnet: str, node: Node) -> dict[str, Any]:
    return {"type": "host-local", "subnet": subnet, "dataDir": str(ipam_dir(node))}


def macvlan(name: str, subnet: str, node: Node) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "macvlan",
        "master": MASTER,
        "mode": "bridge",
        "ipam": host_local(subnet, node),
    }


def ipvlan(name: str, subnet: str, node: Node) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "type": "ipvlan",
        "master": MASTER,
        "mode": "l2",
        "ipam": host_local(subnet, node),
    }


STATIC_CONF = {
    "cniVersion": "1.0.0",
    "name": "static-net",
    "type": "macvlan",
    "master": MASTER,
    "mode": "bridge",
    "capabilities": {"ips": True, "mac": True},
    "ipam": {"type": "static"},
}


def nad(name: str, config: Mapping[str, Any] | str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config if isinstance(config, str) else json.dumps(config)},
    }


def create_pod(api: LocalApi, name: str, networks: str = "", namespace: str = "default") -> tuple[str, str, str]:
    """A pod on the node, annotated with ``networks``; (namespace, name, uid) as CNI_ARGS carry them."""
    annotations = {NETWORKS_KEY: networks} if networks else {}
    obj = api.create(pod_manifest(name, namespace, annotations))
    return (namespace, name, obj["metadata"]["uid"])


def reservations(directory: Path) -> list[str]:
    """host-local's reservation files (one per IP in use) in a network's data dir."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if _IPV4.match(p.name))


def flannel_reservations(node: Node) -> list[str]:
    return reservations(node.tmp / "ipam" / "cbr0")


def secondary_reservations(node: Node) -> dict[str, list[str]]:
    """Every secondary network's reservations, only the non-empty ones."""
    root = ipam_dir(node)
    if not root.exists():
        return {}
    found = {d.name: reservations(d) for d in root.iterdir() if d.is_dir()}
    return {k: v for k, v in found.items() if v}


def links(pod: Netns) -> dict[str, dict[str, Any]]:
    """The pod's interfaces by name, from ``ip -j link``."""
    return {link["ifname"]: link for link in pod.ip_json("link", "show")}


def mac_of(pod: Netns, ifname: str) -> str:
    return str(pod.ip_json("link", "show", "dev", ifname)[0]["address"])


def default_routes(pod: Netns) -> list[tuple[str, str]]:
    """(dev, gateway) of every IPv4 default route in the pod."""
    return sorted((r["dev"], r.get("gateway", "")) for r in pod.ip_json("-4", "route", "show", "default"))


def cached_default_routes(node: Node, network: str, cid: str, ifname: str) -> list[tuple[str, str]]:
    """(dst, gw) of the default routes in a libcni cached result."""
    entry = json.loads((node.cni_dir / "results" / f"{network}-{cid}-{ifname}").read_text())
    routes = entry["result"].get("routes") or []
    return [(r["dst"], r.get("gw", "")) for r in routes if r["dst"] in ("0.0.0.0/0", "::/0")]


def network_status(api: LocalApi, ident: tuple[str, str, str]) -> list[dict[str, Any]]:
    stored = api.get("pods", ident[1], namespace=ident[0])
    assert stored is not None
    value = stored["metadata"].get("annotations", {}).get(STATUS_KEY)
    return json.loads(value) if value else []


def pod_events(api: LocalApi, ident: tuple[str, str, str], reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in api.list("events", namespace=ident[0])
        if e.get("reason") == reason and e.get("involvedObject", {}).get("name") == ident[1]
    ]


async def wait_events(api: LocalApi, ident: tuple[str, str, str], reason: str, count: int) -> list[dict[str, Any]]:
    """Events are posted in the background: wait (bounded) until ``count`` of them landed."""
    async with asyncio.timeout(EVENT_WAIT_SECONDS):
        while len(found := pod_events(api, ident, reason)) < count:
            await asyncio.sleep(0.05)
    return found


def assert_nothing_attached(node: Node, pod: Netns, cid: str) -> None:
    """No interface but lo, no IP reserved anywhere, no scratch file, no cached result."""
    assert set(links(pod)) == {"lo"}, links(pod)
    assert flannel_reservations(node) == []
    assert secondary_reservations(node) == {}
    assert not (node.cni_dir / cid).exists(), "scratch file left behind"
    results = node.cni_dir / "results"
    assert not (results.exists() and list(results.iterdir())), list(results.iterdir())


def shim_error(result: ShimResult) -> dict[str, Any]:
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.json()
    assert isinstance(err, dict) and isinstance(err.get("code"), int) and err.get("msg"), result.stdout
    return err


async def add_ok(node: Node, cid: str, pod: Netns, ident: tuple[str, str, str]) -> dict[str, Any]:
    add = await node.shim("ADD", cid, pod.path, node.multus_conf(), pod=ident)
    assert add.returncode == 0, add.stdout + add.stderr + node.log()[-5000:]
    result: dict[str, Any] = add.json()
    return result


async def del_ok(node: Node, cid: str, pod: Netns, ident: tuple[str, str, str]) -> None:
    delete = await node.shim("DEL", cid, pod.path, node.multus_conf(), pod=ident)
    assert delete.returncode == 0, delete.stdout + delete.stderr + node.log()[-5000:]


# -- two NADs + a static element ------------------------------------------------------------------


async def attach_two_nads_and_static(
    node: Node, api: LocalApi, pod: Netns, plugin: str, subnets: tuple[str, str]
) -> None:
    """The issue's main scenario, for macvlan or ipvlan NADs; everything read back from the kernel."""
    make = macvlan if plugin == "macvlan" else ipvlan
    api.create(nad(f"{plugin}-a", make(f"{plugin}-a", subnets[0], node)))
    api.create(nad(f"{plugin}-b", make(f"{plugin}-b", subnets[1], node)))
    static = {**STATIC_CONF, "type": plugin} if plugin == "macvlan" else {**STATIC_CONF, "type": "ipvlan", "mode": "l2"}
    api.create(nad("static-net", static))
    networks = json.dumps(
        [
            {"name": f"{plugin}-a"},
            {"name": f"{plugin}-b"},
            {"name": "static-net", "interface": "data0", "ips": [STATIC_IP], "mac": STATIC_MAC},
        ]
    )
    ident = create_pod(api, "multi", networks)
    await started(node)

    result = await add_ok(node, "cid-multi", pod, ident)

    # the runtime gets the cluster network's result
    assert [ip["address"] for ip in result["ips"]] == pod.addresses("eth0")
    # the kernel: exactly the four interfaces, with the requested addresses and MAC
    assert set(links(pod)) == {"lo", "eth0", "net1", "net2", "data0"}
    eth0, net1, net2, data0 = (pod.addresses(i) for i in ("eth0", "net1", "net2", "data0"))
    assert len(eth0) == 1 and eth0[0].startswith("10.42.5.") and eth0[0].endswith("/24"), eth0
    prefix_a, prefix_b = (s.rsplit(".", 1)[0] + "." for s in subnets)
    assert len(net1) == 1 and net1[0].startswith(prefix_a), net1
    assert len(net2) == 1 and net2[0].startswith(prefix_b), net2
    assert data0 == [STATIC_IP]
    assert default_routes(pod) == [("eth0", "10.42.5.1")]  # no default-route request: flannel's stays
    if plugin == "macvlan":  # ipvlan interfaces share the master's MAC
        assert mac_of(pod, "data0") == STATIC_MAC

    # the reservations behind those addresses
    assert flannel_reservations(node) == [eth0[0].split("/")[0]]
    assert secondary_reservations(node) == {
        f"{plugin}-a": [net1[0].split("/")[0]],
        f"{plugin}-b": [net2[0].split("/")[0]],
    }

    # network-status: the four of them, with what the kernel shows
    status = network_status(api, ident)
    assert [(e["name"], e["interface"]) for e in status] == [
        ("cbr0", "eth0"),
        (f"default/{plugin}-a", "net1"),
        (f"default/{plugin}-b", "net2"),
        ("default/static-net", "data0"),
    ], status
    for entry, addresses in zip(status, (eth0, net1, net2, data0), strict=True):
        assert entry["ips"] == [a.split("/")[0] for a in addresses], entry
        assert entry["mac"] == mac_of(pod, entry["interface"]), entry
    assert status[0]["default"] is True
    assert not any(e.get("default") for e in status[1:])

    # one AddedInterface event per interface
    events = await wait_events(api, ident, "AddedInterface", 4)
    assert sorted(e["message"] for e in events) == sorted(
        [
            f"Add eth0 [{eth0[0]}] from cbr0",
            f"Add net1 [{net1[0]}] from default/{plugin}-a",
            f"Add net2 [{net2[0]}] from default/{plugin}-b",
            f"Add data0 [{STATIC_IP}] from default/static-net",
        ]
    )

    await del_ok(node, "cid-multi", pod, ident)
    assert_nothing_attached(node, pod, "cid-multi")


async def test_two_macvlan_nads_and_a_static_element(node: Node, api: LocalApi, netns_factory: NetnsFactory) -> None:
    pod = netns_factory.create()
    await attach_two_nads_and_static(node, api, pod, "macvlan", ("192.168.81.0/24", "192.168.82.0/24"))


@functools.cache
def ipvlan_unsupported() -> str | None:
    """Why this kernel cannot make an ipvlan link (None when it can); probed once, in a throwaway netns."""
    with netns() as ns:
        add_veth(ns, "probe0", "probe1")
        made = ns.ip("link", "add", "ipv0", "link", "probe0", "type", "ipvlan", "mode", "l2", check=False)
        if made.returncode != 0:
            why = made.stderr.strip() or f"exit {made.returncode}"
            return f"this kernel cannot create ipvlan links (ip link add ... type ipvlan: {why})"
    return None


async def test_two_ipvlan_nads_and_a_static_element(node: Node, api: LocalApi, netns_factory: NetnsFactory) -> None:
    reason = ipvlan_unsupported()
    if reason is not None:
        pytest.skip(reason)
    pod = netns_factory.create()
    await attach_two_nads_and_static(node, api, pod, "ipvlan", ("192.168.83.0/24", "192.168.84.0/24"))


# -- NADs that appear late or go away -------------------------------------------------------------


async def test_nad_created_after_the_watch_started_is_attached_and_del_survives_its_deletion(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    await started(node)
    pod = netns_factory.create()
    # created after the NAD cache listed, the ADD right behind it: cache hit or live GET, either attaches
    api.create(nad("late", macvlan("late", "192.168.85.0/24", node)))
    ident = create_pod(api, "late-pod", "late")
    await add_ok(node, "cid-late", pod, ident)
    (address,) = pod.addresses("net1")
    assert address.startswith("192.168.85.")
    assert secondary_reservations(node) == {"late": [address.split("/")[0]]}

    # the NAD goes away; DEL works from the scratch file and does not complain about the NAD
    api.delete("network-attachment-definitions", "late", namespace="default")
    gets_before = api.requests.count("GET", path_contains="network-attachment-definitions/late")
    await del_ok(node, "cid-late", pod, ident)
    assert api.requests.count("GET", path_contains="network-attachment-definitions/late") == gets_before
    assert_nothing_attached(node, pod, "cid-late")
    await asyncio.sleep(0.5)  # events are posted in the background: give a wrong one time to land
    assert pod_events(api, ident, "NoNetworkFound") == []


async def test_nad_missing_from_a_stalled_cache_is_fetched_live(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    await started(node)
    pod = netns_factory.create()
    # the NAD watch breaks and cannot come back (list/watch path failing); pods keep being watched
    api.faults.path_prefix = NAD_PATH
    api.faults.fail_next = 1_000_000
    api.drop_watches()
    api.create(nad("stalled", macvlan("stalled", "192.168.86.0/24", node)))
    ident = create_pod(api, "stalled-pod", "stalled")
    live_path = "network-attachment-definitions/stalled"
    assert api.requests.count("GET", path_contains=live_path) == 0

    try:
        await add_ok(node, "cid-stalled", pod, ident)
    finally:
        api.faults.reset()
    assert api.requests.count("GET", path_contains=live_path) >= 1, "the NAD was not fetched live"
    (address,) = pod.addresses("net1")
    assert address.startswith("192.168.86.")

    await del_ok(node, "cid-stalled", pod, ident)
    assert_nothing_attached(node, pod, "cid-stalled")


# -- default-route --------------------------------------------------------------------------------


async def test_default_route_moves_to_the_requested_network(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    api.create(nad("macvlan-a", macvlan("macvlan-a", "192.168.81.0/24", node)))
    ident = create_pod(api, "routed", json.dumps([{"name": "macvlan-a", "default-route": ["192.168.81.1"]}]))
    await started(node)
    pod = netns_factory.create()

    await add_ok(node, "cid-routed", pod, ident)
    assert pod.link_exists("eth0") and pod.link_exists("net1")
    assert default_routes(pod) == [("net1", "192.168.81.1")]
    # the libcni result cache says the same (DEL/CHECK and the Go image read it)
    assert cached_default_routes(node, "cbr0", "cid-routed", "eth0") == []
    assert cached_default_routes(node, "macvlan-a", "cid-routed", "net1") == [("0.0.0.0/0", "192.168.81.1")]

    await del_ok(node, "cid-routed", pod, ident)
    assert_nothing_attached(node, pod, "cid-routed")


async def test_ecmp_default_route_is_refused_and_nothing_attached(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    api.create(nad("macvlan-a", macvlan("macvlan-a", "192.168.81.0/24", node)))
    api.create(nad("macvlan-b", macvlan("macvlan-b", "192.168.82.0/24", node)))
    networks = [
        {"name": "macvlan-a", "default-route": ["192.168.81.1"]},
        {"name": "macvlan-b", "default-route": ["192.168.82.1"]},
    ]
    ident = create_pod(api, "ecmp", json.dumps(networks))
    await started(node)
    pod = netns_factory.create()

    add = await node.shim("ADD", "cid-ecmp", pod.path, node.multus_conf(), pod=ident)
    err = shim_error(add)
    assert err["msg"].startswith("[default/ecmp"), err
    assert "multus does not support ECMP for default-route" in err["msg"], err
    assert_nothing_attached(node, pod, "cid-ecmp")


# -- namespace isolation --------------------------------------------------------------------------

ISOLATION_TEXT = (
    "namespace isolation enabled, annotation violates permission, pod is in namespace test "
    "but refers to target namespace kube-system"
)


async def test_namespace_isolation_refuses_another_namespace(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    node.write_config(namespaceIsolation=True)
    api.create(nad("x", macvlan("x", "192.168.87.0/24", node), namespace="kube-system"))
    ident = create_pod(api, "isolated", "kube-system/x", namespace="test")
    await started(node)
    pod = netns_factory.create()

    add = await node.shim("ADD", "cid-iso", pod.path, node.multus_conf(), pod=ident)
    err = shim_error(add)
    assert err["msg"].startswith("[test/isolated"), err
    assert ISOLATION_TEXT in err["msg"], err
    assert "kube-system/x" in err["msg"], err
    assert_nothing_attached(node, pod, "cid-iso")


async def test_namespace_isolation_allows_a_global_namespace(
    node: Node, api: LocalApi, netns_factory: NetnsFactory
) -> None:
    node.write_config(namespaceIsolation=True, globalNamespaces="kube-system")
    api.create(nad("x", macvlan("x", "192.168.87.0/24", node), namespace="kube-system"))
    ident = create_pod(api, "isolated", "kube-system/x", namespace="test")
    await started(node)
    pod = netns_factory.create()

    await add_ok(node, "cid-iso", pod, ident)
    (address,) = pod.addresses("net1")
    assert address.startswith("192.168.87.")
    assert [e["name"] for e in network_status(api, ident)] == ["cbr0", "kube-system/x"]

    await del_ok(node, "cid-iso", pod, ident)
    assert_nothing_attached(node, pod, "cid-iso")


# -- refused requests leave nothing behind --------------------------------------------------------

SUBNETS = {"macvlan-a": "192.168.81.0/24", "macvlan-b": "192.168.82.0/24"}


async def refused_add(node: Node, api: LocalApi, pod: Netns, networks: str, nads: tuple[str, ...]) -> dict[str, Any]:
    """Create ``nads`` (``broken``: spec.config not JSON) and the pod, start the daemon, ADD: the CNI error."""
    for name in nads:
        api.create(nad(name, "{not json" if name == "broken" else macvlan(name, SUBNETS[name], node)))
    ident = create_pod(api, "refused", networks)
    await started(node)
    err = shim_error(await node.shim("ADD", "cid-refused", pod.path, node.multus_conf(), pod=ident))
    assert err["msg"].startswith("[default/refused"), err
    return err


@pytest.mark.parametrize(
    ("networks", "nads", "expected", "rolled_back"),
    [
        pytest.param("Net1", (), ["mismatch @ 'Net1'"], (), id="uppercase-name"),
        # naming the item is test_slashes_error_names_the_item's job (a known gap)
        pytest.param(
            "macvlan-a,a/b/c", ("macvlan-a",), ["Invalid network object (failed at '/')"], (), id="too-many-slashes"
        ),
        pytest.param(
            "macvlan-a,nope",
            ("macvlan-a",),
            [":default/nope]", "cannot find a network-attachment-definition (nope) in namespace (default)"],
            (),
            id="missing-nad",
        ),
        pytest.param(
            "macvlan-a,broken",
            ("macvlan-a", "broken"),
            [":default/broken]", "failed to unmarshal Spec.Config"],
            (),
            id="config-not-json",
        ),
        # these two fail after eth0 (and data0) were attached: the rollback must undo them
        pytest.param(
            "macvlan-a@data0,macvlan-b@data0",
            ("macvlan-a", "macvlan-b"),
            [":default/macvlan-b]", 'interface name to "data0"'],
            ("cbr0", "macvlan-a"),
            id="same-ifname-twice",
        ),
        pytest.param(
            "macvlan-a@eth0",
            ("macvlan-a",),
            [":default/macvlan-a]", 'interface name to "eth0"'],
            ("cbr0",),
            id="ifname-eth0",
        ),
    ],
)
async def test_refused_request_names_pod_and_network_and_leaves_nothing(
    node: Node,
    api: LocalApi,
    netns_factory: NetnsFactory,
    networks: str,
    nads: tuple[str, ...],
    expected: list[str],
    rolled_back: tuple[str, ...],
) -> None:
    pod = netns_factory.create()
    err = await refused_add(node, api, pod, networks, nads)
    for text in expected:
        assert text in err["msg"], (text, err)
    assert_nothing_attached(node, pod, "cid-refused")
    for network in rolled_back:  # host-local did allocate there: the ADD really ran, then was undone
        root = node.tmp / "ipam" if network == "cbr0" else ipam_dir(node)
        assert (root / network / "last_reserved_ip.0").exists(), network
    if "nope" in networks:
        ident = ("default", "refused", "")
        events = await wait_events(api, ident, "NoNetworkFound", 1)
        assert "cannot find a network-attachment-definition (nope)" in events[0]["message"]


async def test_slashes_error_names_the_item(node: Node, api: LocalApi, netns_factory: NetnsFactory) -> None:
    pod = netns_factory.create()
    err = await refused_add(node, api, pod, "macvlan-a,a/b/c", ("macvlan-a",))
    assert err["msg"].startswith("[default/refused:a/b/c] "), err
