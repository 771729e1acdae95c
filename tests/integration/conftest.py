"""Fixtures for tests that run real CNI plugins in real network namespaces (root only).

- ``netns_factory``: makes ``mdt-<pid>-…`` namespaces, deletes them all at teardown.
- ``node``: a host stand-in namespace: ``lo`` up and a veth pair ``ens3``/``ens3p`` (both up) to
  serve as a macvlan master. Plugins run *inside* it through ``SubprocessRunner(prefix=
  node.nsenter_prefix())``, so bridges, veth host ends and iptables rules never touch the real host.
- ``pod_netns``: a factory of pod namespaces.
- ``cni_dirs``: tmp cache, conf, host-local ``dataDir`` and flannel ``dataDir``, so nothing goes to
  ``/var/lib/cni``.
- ``make_runtime``: a :class:`CniRuntime` over given bin dirs, plugins run in the node namespace.

An autouse guard checks after each test that no namespace made by this session is left over.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from multusd.cni.cache import ResultCache
from multusd.cni.exec import PluginExecutor, SubprocessRunner
from multusd.cni.runtime import CniRuntime
from multusd.kube.localapi import LocalApi
from tests import daemon_rig
from tests.netns import Netns, NetnsFactory, add_veth, own_namespaces

TEST_PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
PLUGIN_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Node:
    """The host stand-in: its namespace and the name of the macvlan master inside it."""

    netns: Netns
    master: str = "ens3"

    @property
    def path(self) -> str:
        return self.netns.path


@dataclass(frozen=True)
class CniDirs:
    cache_dir: Path
    conf_dir: Path
    ipam_dir: Path
    flannel_dir: Path


@pytest.fixture(autouse=True)
def no_leftover_namespaces() -> Iterator[None]:
    """Every namespace this session made during a test is gone once its fixtures are torn down."""
    if os.geteuid() != 0:
        yield
        return
    before = own_namespaces()
    yield
    leftover = own_namespaces() - before
    assert not leftover, f"network namespaces left behind: {sorted(leftover)}"


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def node(netns_factory: NetnsFactory) -> Node:
    ns = netns_factory.create()
    add_veth(ns, "ens3", "ens3p")
    return Node(ns)


@pytest.fixture
def pod_netns(netns_factory: NetnsFactory) -> Callable[[], Netns]:
    return netns_factory.create


@pytest.fixture
def cni_dirs(tmp_path: Path) -> CniDirs:
    dirs = CniDirs(
        cache_dir=tmp_path / "cache",
        conf_dir=tmp_path / "net.d",
        ipam_dir=tmp_path / "ipam",
        flannel_dir=tmp_path / "flannel",
    )
    dirs.conf_dir.mkdir()
    return dirs


@pytest.fixture
def make_runtime(node: Node, cni_dirs: CniDirs) -> Callable[[Sequence[Path]], CniRuntime]:
    def make(bin_dirs: Sequence[Path] = (DEBIAN_PLUGINS,)) -> CniRuntime:
        executor = PluginExecutor(
            [str(d) for d in bin_dirs],
            SubprocessRunner(prefix=node.netns.nsenter_prefix()),
            timeout_seconds=PLUGIN_TIMEOUT_SECONDS,
        )
        return CniRuntime(executor, ResultCache(str(cni_dirs.cache_dir)))

    return make


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    """The in-process Kubernetes API stand-in the daemon under test talks to."""
    async with LocalApi() as server:
        yield server


@pytest.fixture
async def multus_node(tmp_path: Path, netns_factory: NetnsFactory, api: LocalApi) -> AsyncIterator[daemon_rig.Node]:
    """A K3s-like node for a real multusd process (not started): node netns with the veth
    ``ens3``/``ens3p`` as macvlan master, wrapper bin dir, flannel conflist; stopped at teardown."""
    host = netns_factory.create()
    add_veth(host, "ens3", "ens3p")
    rig = daemon_rig.make_node(tmp_path, host.path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield rig
    finally:
        code = await rig.terminate()
        if code not in (None, 0):
            print(rig.log())
