"""Fixtures for the real-containerd suite (root only, ``@pytest.mark.e2e``).

One test gets a whole K3s-shaped node:

- ``api``: the in-process :class:`LocalApi` (pods and NADs live here);
- ``node``: a "node" network namespace with a veth ``ens3``/``ens3p`` (macvlan master), the
  daemon rig from ``tests/daemon_rig.py`` (wrapper bin dir that ``nsenter``s plugins into the
  node namespace, K3s's ``10-flannel.conflist`` with the flannel stand-in) plus ``multus-shim``
  in that bin dir, multusd running and ready, and ``00-multus.conf`` in the conf dir — written
  by the daemon's autoconf when it is wired, else by us from ``node.multus_conf()``;
- ``containerd``: a private containerd whose CRI plugin uses that bin dir and conf dir, the pause
  image imported, ``NetworkReady`` reported;
- ``cluster``: the CRI client plus bookkeeping, so every sandbox a test starts is stopped and
  removed at teardown even when the test failed half-way.

containerd starts (and imports the image) in a fraction of a second and the daemon in well under
one, so both are per test: each test sees a fresh node, and a failure cannot leak sandboxes or
state into the next. Only the pause image (umoci) is built once per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from multusd.kube.localapi import LocalApi
from tests.cri.client import RuntimeClient
from tests.daemon_rig import SHIM, Node, make_node
from tests.e2e.cluster import AUTOCONF_WIRED, Cluster
from tests.e2e.containerd_rig import (
    Containerd,
    ContainerdUnavailableError,
    build_pause_image,
    missing_tools,
    mounts_under,
)
from tests.netns import NetnsFactory, add_veth, own_namespaces

MULTUS_CONF = "00-multus.conf"
NETWORK_READY_TIMEOUT = 20.0
AUTOCONF_TIMEOUT = 15.0
CLEANUP_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def no_leftover_namespaces() -> Iterator[None]:
    """Every namespace this session made during a test is gone once its fixtures are torn down."""
    before = own_namespaces()
    yield
    leftover = own_namespaces() - before
    assert not leftover, f"network namespaces left behind: {sorted(leftover)}"


@pytest.fixture(scope="session")
def pause_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox pause image tar, built once per session (skip, naming what is missing)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs containerd and creates network namespaces")
    missing = missing_tools()
    if missing:
        pytest.skip(f"containerd e2e needs {', '.join(missing)} (make deps installs them)")
    return build_pause_image(tmp_path_factory.mktemp("pause"))


@pytest.fixture
async def api() -> AsyncIterator[LocalApi]:
    async with LocalApi() as server:
        yield server


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


def install_shim(bin_dir: Path) -> None:
    """``multus-shim`` in containerd's CNI bin dir, run by the host's python3 like on a real node."""
    wrapper = bin_dir / "multus-shim"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/python3 -IS {SHIM} "$@"\n')
    wrapper.chmod(0o755)
    passthru = SHIM.parent / "passthru"
    if passthru.exists():
        (bin_dir / "passthru").write_text(f'#!/bin/sh\nexec /usr/bin/python3 -IS {passthru} "$@"\n')
        (bin_dir / "passthru").chmod(0o755)


async def wait_for_multus_conf(node: Node, timeout: float = AUTOCONF_TIMEOUT) -> dict[str, Any]:
    """00-multus.conf as the daemon's autoconf wrote it (bounded wait)."""
    path = node.conf_dir / MULTUS_CONF
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                conf: dict[str, Any] = json.loads(path.read_text())
                return conf
            await asyncio.sleep(0.1)


@pytest.fixture
async def node(tmp_path: Path, netns_factory: NetnsFactory, api: LocalApi, pause_image: Path) -> AsyncIterator[Node]:
    """multusd running for a K3s-shaped node; 00-multus.conf in place for containerd."""
    host = netns_factory.create()
    add_veth(host, "ens3", "ens3p")
    rig = make_node(tmp_path, host.path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    install_shim(rig.bin_dir)
    if not AUTOCONF_WIRED:
        (rig.conf_dir / MULTUS_CONF).write_text(json.dumps(rig.multus_conf()))
    rig.start()
    try:
        await rig.wait_ready()
        if AUTOCONF_WIRED:
            conf = await wait_for_multus_conf(rig)
            # the daemon chose K3s's flannel conflist as the primary and points the shim at itself
            assert conf["type"] == "multus-shim", conf
            assert conf["clusterNetwork"] == str(rig.cluster_conflist), conf
            assert conf["daemonSocketPath"] == str(rig.socket_path), conf
        yield rig
    finally:
        code = rig.stop()
        if code not in (None, 0):
            print(rig.log())


@pytest.fixture
async def containerd(
    node: Node, pause_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Containerd]:
    """A private containerd using the node's CNI dirs; stopped, its mounts and shims gone, at teardown.

    The base dir comes from ``tmp_path_factory`` (short path: unix socket paths are limited to 108
    bytes, and containerd adds ``.ttrpc``). Blocking steps run in a thread so the in-process API
    keeps answering the daemon meanwhile.
    """
    ctd = Containerd(base=tmp_path_factory.mktemp("ctd"), bin_dir=node.bin_dir, conf_dir=node.conf_dir)
    try:
        try:
            await asyncio.to_thread(ctd.start)
        except ContainerdUnavailableError as exc:
            pytest.skip(f"containerd cannot run here: {exc}")
        await asyncio.to_thread(ctd.import_image, pause_image)
        yield ctd
    finally:
        await asyncio.to_thread(ctd.stop)
        print(f"containerd log tail:\n{ctd.log(30)}")
        left = mounts_under(ctd.base)
        assert not left, f"mounts left under {ctd.base}: {left}"
        assert not ctd.killed, f"had to kill leftover containerd shims/containers by PID: {ctd.killed}"


@pytest.fixture
async def cluster(api: LocalApi, node: Node, containerd: Containerd) -> AsyncIterator[Cluster]:
    """The CRI client on our containerd, once its CNI config (00-multus.conf) is loaded."""
    async with RuntimeClient(str(containerd.socket)) as cri:
        rig = Cluster(api, node, containerd, cri)
        deadline = time.monotonic() + NETWORK_READY_TIMEOUT
        while not (await cri.status()).get("NetworkReady"):
            assert time.monotonic() < deadline, f"containerd never reported NetworkReady:\n{containerd.log()}"
            await asyncio.sleep(0.1)
        try:
            yield rig
        finally:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                errors = await rig.cleanup()
            assert not errors, f"could not remove sandboxes: {errors}"
