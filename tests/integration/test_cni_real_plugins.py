"""The CNI engine driving the real Debian plugins (and the flannel stand-in) in real namespaces.

Each test gets a node namespace (host stand-in, where plugins run) and pod namespaces; everything
is deleted at teardown. The Debian plugins speak CNI ≤ 1.0.0. Their ``portmap`` CHECK fails on a
missing IPv6 chain and ``bandwidth`` CHECK crashes without bandwidth config (DESIGN §4), so CHECK
is exercised on bridge + host-local and macvlan, and lists holding those two set ``disableCheck``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from multusd.cni.conf import parse_conf_list, parse_plugin_conf
from multusd.cni.errors import CniError
from multusd.cni.runtime import CniRuntime, RuntimeConf
from multusd.cni.types import has_check
from tests.integration.conftest import DEBIAN_PLUGINS, TEST_PLUGINS, CniDirs, Node
from tests.netns import Netns

pytestmark = pytest.mark.root

MakeRuntime = Callable[[Sequence[Path]], CniRuntime]
K8S_ARGS = (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-0"))
PORT_MAPPINGS = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]


def rt(pod: Netns, ifname: str = "eth0", container_id: str = "ctr-0123", **kw: Any) -> RuntimeConf:
    return RuntimeConf(container_id=container_id, netns=pod.path, ifname=ifname, args=K8S_ARGS, **kw)


def reservations(ipam_dir: Path, network: str) -> list[str]:
    """host-local's reservation files (one per leased IP) for ``network``."""
    net_dir = ipam_dir / network
    if not net_dir.is_dir():
        return []
    return sorted(p.name for p in net_dir.iterdir() if not p.name.startswith(("last_reserved_ip", "lock")))


def cache_file(dirs: CniDirs, network: str, container_id: str, ifname: str) -> Path:
    return dirs.cache_dir / "results" / f"{network}-{container_id}-{ifname}"


def bridge_plugin(dirs: CniDirs, subnet: str = "10.77.0.0/24") -> dict[str, Any]:
    return {
        "type": "bridge",
        "bridge": "mdtbr0",
        "isGateway": True,
        "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": str(dirs.ipam_dir)},
    }


# -- (a) bridge + host-local + portmap -----------------------------------------------------------


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
async def test_bridge_portmap_list_add_del(
    version: str, node: Node, pod_netns: Callable[[], Netns], cni_dirs: CniDirs, make_runtime: MakeRuntime
) -> None:
    runtime = make_runtime([DEBIAN_PLUGINS])
    pod = pod_netns()
    conf_list = parse_conf_list(
        {
            "cniVersion": version,
            "name": "mdt-br",
            "disableCheck": True,
            "plugins": [
                bridge_plugin(cni_dirs),
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }
    )
    runtime_conf = rt(pod, capability_args={"portMappings": PORT_MAPPINGS})

    result = await runtime.add_list(conf_list, runtime_conf)
    assert result.cni_version == version
    (ip,) = [ip for ip in result.ips if ip.address.version == 4]
    assert ip.address.ip in ipaddress.ip_network("10.77.0.0/24")
    assert pod.addresses("eth0") == [str(ip.address)]
    assert node.netns.link_exists("mdtbr0")
    assert reservations(cni_dirs.ipam_dir, "mdt-br") == [str(ip.address.ip)]
    cached = json.loads(cache_file(cni_dirs, "mdt-br", "ctr-0123", "eth0").read_text())
    assert cached["result"] == result.to_json()
    assert cached["capabilityArgs"] == {"portMappings": PORT_MAPPINGS}
    nat = node.netns.exec("iptables", "-t", "nat", "-S").stdout
    assert "--dport 8080" in nat  # portmap got its runtimeConfig and ran in the node namespace

    if has_check(version):
        await runtime.check_list(conf_list, runtime_conf)  # disableCheck: runs nothing

    await runtime.del_list(conf_list, runtime_conf)
    assert not pod.link_exists("eth0")
    assert reservations(cni_dirs.ipam_dir, "mdt-br") == []
    assert not cache_file(cni_dirs, "mdt-br", "ctr-0123", "eth0").exists()
    assert "--dport 8080" not in node.netns.exec("iptables", "-t", "nat", "-S").stdout


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
async def test_bridge_host_local_add_check_del(
    version: str, node: Node, pod_netns: Callable[[], Netns], cni_dirs: CniDirs, make_runtime: MakeRuntime
) -> None:
    runtime = make_runtime([DEBIAN_PLUGINS])
    pods = [pod_netns(), pod_netns()]
    conf_list = parse_conf_list({"cniVersion": version, "name": "mdt-br", "plugins": [bridge_plugin(cni_dirs)]})
    confs = [rt(pod, container_id=f"ctr-{i}") for i, pod in enumerate(pods)]

    results = [await runtime.add_list(conf_list, c) for c in confs]
    addresses = [str(r.ips[0].address) for r in results]
    assert len(set(addresses)) == 2
    for pod, address, c in zip(pods, addresses, confs, strict=True):
        assert pod.addresses("eth0") == [address]
        await runtime.check_list(conf_list, c)

    # CHECK notices drift: the address removed behind the plugin's back.
    pods[0].ip("addr", "flush", "dev", "eth0")
    with pytest.raises(CniError):
        await runtime.check_list(conf_list, confs[0])

    for c in confs:
        await runtime.del_list(conf_list, c)
    assert all(not pod.link_exists("eth0") for pod in pods)
    assert reservations(cni_dirs.ipam_dir, "mdt-br") == []
    assert not (cni_dirs.cache_dir / "results").exists() or not any((cni_dirs.cache_dir / "results").iterdir())
    # a second DEL (containerd sends two, the second with no netns) succeeds
    await runtime.del_list(conf_list, dataclasses.replace(confs[0], netns=""))


# -- (b) macvlan ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
async def test_macvlan_conf_add_check_del(
    version: str, node: Node, pod_netns: Callable[[], Netns], cni_dirs: CniDirs, make_runtime: MakeRuntime
) -> None:
    runtime = make_runtime([DEBIAN_PLUGINS])
    pod = pod_netns()
    conf = parse_plugin_conf(
        {
            "cniVersion": version,
            "name": "mdt-macvlan",
            "type": "macvlan",
            "master": node.master,
            "mode": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": str(cni_dirs.ipam_dir)},
        }
    )
    runtime_conf = rt(pod, ifname="net1")

    result = await runtime.add_conf(conf, runtime_conf)
    address = str(result.ips[0].address)
    assert address.startswith("10.78.0.")
    assert pod.addresses("net1") == [address]
    link = pod.ip_json("-d", "link", "show", "dev", "net1")[0]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert cache_file(cni_dirs, "mdt-macvlan", "ctr-0123", "net1").exists()

    if has_check(version):
        await runtime.check_conf(conf, runtime_conf)

    await runtime.del_conf(conf, runtime_conf)
    assert not pod.link_exists("net1")
    assert reservations(cni_dirs.ipam_dir, "mdt-macvlan") == []
    assert not cache_file(cni_dirs, "mdt-macvlan", "ctr-0123", "net1").exists()
    assert node.netns.link_exists(node.master)  # the master is untouched


# -- (c) the K3s list: flannel + portmap + bandwidth ---------------------------------------------


@pytest.fixture
def subnet_env(tmp_path: Path) -> Path:
    path = tmp_path / "subnet.env"
    path.write_text(
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    return path


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
async def test_k3s_flannel_list_add_del(
    version: str,
    node: Node,
    pod_netns: Callable[[], Netns],
    cni_dirs: CniDirs,
    make_runtime: MakeRuntime,
    subnet_env: Path,
) -> None:
    runtime = make_runtime([TEST_PLUGINS, DEBIAN_PLUGINS])
    pod = pod_netns()
    conf_list = parse_conf_list(
        {
            "name": "cbr0",
            "cniVersion": version,
            "plugins": [
                {
                    "type": "flannel",
                    "subnetFile": str(subnet_env),
                    "dataDir": str(cni_dirs.flannel_dir),
                    "ipam": {"dataDir": str(cni_dirs.ipam_dir)},
                    "delegate": {"hairpinMode": True, "forceAddress": True, "isDefaultGateway": True},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            ],
        }
    )
    runtime_conf = rt(pod, capability_args={"portMappings": PORT_MAPPINGS})

    result = await runtime.add_list(conf_list, runtime_conf)
    (address,) = pod.addresses("eth0")
    assert ipaddress.ip_interface(address) in [ip.address for ip in result.ips]
    assert ipaddress.ip_interface(address).ip in ipaddress.ip_network("10.42.5.0/24")
    mtu = pod.ip_json("link", "show", "dev", "eth0")[0]["mtu"]
    assert mtu == 1450
    routes = pod.ip_json("route", "show")
    assert any(r["dst"] == "default" and r.get("gateway") == "10.42.5.1" for r in routes)
    assert node.netns.link_exists("cni0")
    assert os.path.exists(cni_dirs.flannel_dir / "ctr-0123")
    assert cache_file(cni_dirs, "cbr0", "ctr-0123", "eth0").exists()

    await runtime.del_list(conf_list, runtime_conf)
    assert not pod.link_exists("eth0")
    assert reservations(cni_dirs.ipam_dir, "cbr0") == []
    assert not os.path.exists(cni_dirs.flannel_dir / "ctr-0123")
    assert not cache_file(cni_dirs, "cbr0", "ctr-0123", "eth0").exists()
