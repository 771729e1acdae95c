"""A K3s-like node for daemon tests: multusd as a real process, the real shim, real plugins.

- The "node" is a network namespace: plugins are reached through a *wrapper bin dir* whose entries
  ``exec nsenter --net=<node> -- <real plugin>``, so the daemon process stays in the host
  namespace (where the in-process localapi listens on loopback) while every bridge, veth end and
  iptables rule is created inside the node namespace.
- The cluster network is K3s's exact 10-flannel.conflist shape (flannel stand-in + portmap +
  bandwidth) with the flannel/host-local state redirected into tmp dirs.
- The shim is run as containerd runs it: CNI env + the multus conf on stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "shim" / "multus-shim"
TEST_PLUGINS = ROOT / "tests" / "plugins"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
NODE_NAME = "node-a"
WRAPPED = ("flannel", "bridge", "host-local", "portmap", "bandwidth", "loopback", "macvlan", "ipvlan", "static")
RECORDER_PLUGINS = ("cni-recorder", "cni-slow", "cni-hang", "cni-crash", "cni-garbage")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_wrapper_bin(bin_dir: Path, node_netns_path: str) -> Path:
    """Plugins that enter the node namespace first; recorder-style test plugins run as they are."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in WRAPPED:
        real = TEST_PLUGINS / name if (TEST_PLUGINS / name).exists() else DEBIAN_PLUGINS / name
        if not real.exists():
            continue
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec nsenter --net={node_netns_path} -- {real} "$@"\n')
        wrapper.chmod(0o755)
    for name in RECORDER_PLUGINS:
        (bin_dir / name).symlink_to(TEST_PLUGINS / name)
    return bin_dir


def k3s_flannel_conflist(tmp: Path, cni_version: str = "1.0.0") -> dict[str, Any]:
    """K3s's 10-flannel.conflist (users-and-k3s.md §2.3), state paths moved into ``tmp``."""
    subnet_env = tmp / "subnet.env"
    subnet_env.write_text(
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    return {
        "name": "cbr0",
        "cniVersion": cni_version,
        "plugins": [
            {
                "type": "flannel",
                "delegate": {"hairpinMode": True, "forceAddress": True, "isDefaultGateway": True},
                "subnetFile": str(subnet_env),
                "dataDir": str(tmp / "flannel"),
                "ipam": {"dataDir": str(tmp / "ipam")},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    }


@dataclass
class ShimResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None


@dataclass
class Node:
    """Paths and processes of one test node."""

    tmp: Path
    bin_dir: Path
    conf_dir: Path
    cni_dir: Path
    socket_path: Path
    config_path: Path
    kubeconfig: Path
    metrics_port: int
    daemon_config: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def cluster_conflist(self) -> Path:
        return self.conf_dir / "10-flannel.conflist"

    def multus_conf(self, cni_version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        """What autoconf generates for this node (00-multus.conf), plus ``extra`` keys."""
        return {
            "cniVersion": cni_version,
            "name": "multus-cni-network",
            "type": "multus-shim",
            "capabilities": {"bandwidth": True, "portMappings": True},
            "clusterNetwork": str(self.cluster_conflist),
            "daemonSocketPath": str(self.socket_path),
            **extra,
        }

    def write_config(self, **overrides: Any) -> None:
        cfg = {
            "kubeconfig": str(self.kubeconfig),
            "nodeName": NODE_NAME,
            "socketPath": str(self.socket_path),
            "cniDir": str(self.cni_dir),
            "binDir": str(self.bin_dir),
            "confDir": str(self.conf_dir),
            "cniConfigDir": str(self.conf_dir),
            "multusAutoconfigDir": str(self.conf_dir),
            "metricsAddress": f"127.0.0.1:{self.metrics_port}",
            "readinessTimeout": 10,
            "shutdownTimeout": 5,
            "logLevel": "debug",
            **overrides,
        }
        self.daemon_config = cfg
        self.config_path.write_text(json.dumps(cfg))

    def start(self, env: Mapping[str, str] | None = None) -> None:
        assert self.process is None or self.process.poll() is not None, "daemon already running"
        self.log_path = self.tmp / "daemon.log"
        log = self.log_path.open("ab")
        full_env = {k: v for k, v in os.environ.items() if k != "CNI_PATH"}
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "multusd.cli", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
        log.close()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None and self.process.poll() is None, f"daemon exited:\n{self.log()}"
                try:
                    async with session.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (bounded); SIGKILL if it does not go. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise

    async def terminate(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait without blocking the event loop (the in-process API must keep answering
        while the daemon shuts down: it checks its DaemonSet and drains events)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                while self.process.poll() is None:
                    await asyncio.sleep(0.05)
        except TimeoutError:
            self.process.kill()
            self.process.wait(5)
            raise
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as r,
        ):
            return await r.text()

    async def shim(
        self,
        command: str,
        container_id: str,
        netns: str,
        conf: Mapping[str, Any],
        *,
        pod: tuple[str, str, str] = ("default", "web-0", ""),
        ifname: str = "eth0",
        timeout: float = 90.0,
        env: Mapping[str, str] | None = None,
    ) -> ShimResult:
        """Run the real shim exactly as containerd does (env + stdin), without blocking the loop."""
        namespace, name, uid = pod
        cni_env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(self.bin_dir),
            # containerd's order varies; this is one it uses
            "CNI_ARGS": f"K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={uid};IgnoreUnknown=1;"
            f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}",
            **(env or {}),
        }
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3",
            "-IS",
            str(SHIM),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cni_env,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(json.dumps(conf).encode())
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return ShimResult(proc.returncode, out.decode(), err.decode())


def make_node(tmp: Path, node_netns_path: str, kubeconfig: Path) -> Node:
    conf_dir = tmp / "net.d"
    conf_dir.mkdir()
    node = Node(
        tmp=tmp,
        bin_dir=make_wrapper_bin(tmp / "bin", node_netns_path),
        conf_dir=conf_dir,
        cni_dir=tmp / "multus",
        socket_path=tmp / "run" / "multus" / "multus-cni-network.sock",
        config_path=tmp / "daemon-config.json",
        kubeconfig=kubeconfig,
        metrics_port=free_port(),
    )
    (conf_dir / "10-flannel.conflist").write_text(json.dumps(k3s_flannel_conflist(tmp)))
    node.write_config()
    return node


def pod_manifest(name: str, namespace: str = "default", annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": {"nodeName": NODE_NAME, "containers": [{"name": "c", "image": "busybox"}]},
    }
