"""The node as a kubelet drives it: pods in the API, sandboxes through CRI, and what to check after.

Imported by the fixtures (``conftest.py``) and the tests; holds no fixtures itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from multusd.kube.localapi import LocalApi
from tests.cri.client import PodIdentity, RuntimeClient
from tests.daemon_rig import ROOT, Node, pod_manifest
from tests.e2e.containerd_rig import Containerd, pid_alive, processes_with_arg, remove_netns


def daemon_source() -> str:
    return (ROOT / "multusd" / "daemon.py").read_text()


#: The daemon writes 00-multus.conf itself once autoconf is wired into it.
AUTOCONF_WIRED = "ConfigManager" in daemon_source()
#: NAD support (the ``networks`` annotation) once the daemon hands ``pod_delegates`` to the flows.
NAD_SUPPORT = "pod_delegates" in daemon_source()


@dataclass
class Sandbox:
    """One pod sandbox as the tests see it."""

    id: str
    pod: PodIdentity
    netns: str
    pid: int
    ip: str


@dataclass
class Cluster:
    """The node as a kubelet would drive it: pods in the API, sandboxes through CRI."""

    api: LocalApi
    node: Node
    containerd: Containerd
    cri: RuntimeClient
    started: dict[str, Sandbox] = field(default_factory=dict)

    def create_pod(self, name: str, annotations: Mapping[str, str] | None = None) -> PodIdentity:
        """Create the pod in the API first, as the scheduler would, with the uid CRI will carry."""
        obj = self.api.create(pod_manifest(name, annotations=annotations))
        meta = obj["metadata"]
        return PodIdentity(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    async def run_sandbox(self, pod: PodIdentity, timeout: float = 90.0) -> Sandbox:
        """RunPodSandbox, then read back its netns, init PID and IP from PodSandboxStatus."""
        log_dir = self.node.tmp / "pods" / f"{pod.namespace}_{pod.name}_{pod.uid}"
        sandbox_id = await self.cri.run_pod_sandbox(pod, str(log_dir), timeout=timeout)
        view = await self.cri.inspect_pod_sandbox(sandbox_id)
        sandbox = Sandbox(sandbox_id, pod, view.netns, view.pid, view.ip)
        self.started[sandbox_id] = sandbox
        assert view.ready, f"sandbox {sandbox_id} of {pod.namespace}/{pod.name} is not ready"
        return sandbox

    async def stop_and_remove(self, sandbox_id: str) -> None:
        """What the kubelet does when a pod is deleted: StopPodSandbox, then RemovePodSandbox."""
        await self.cri.stop_pod_sandbox(sandbox_id)
        await self.cri.remove_pod_sandbox(sandbox_id)
        self.started.pop(sandbox_id, None)

    async def cleanup(self) -> list[str]:
        """Stop and remove every sandbox containerd still lists (ours or from a failed RunPodSandbox).

        A sandbox containerd could not tear down (daemon dead, say) keeps its netns mount; those
        of sandboxes we started are unmounted and removed here, the processes are killed by PID
        when containerd stops.
        """
        errors = []
        for item in await self.cri.list_pod_sandbox():
            try:
                await self.stop_and_remove(item.id)
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{item.id}: {exc.details()}")
        for sandbox in self.started.values():
            if sandbox.netns and os.path.exists(sandbox.netns):
                remove_netns(sandbox.netns)
                errors.append(f"{sandbox.id}: netns {sandbox.netns} was left behind")
        return errors


def host_local_reservations(node: Node, network: str = "cbr0") -> list[str]:
    """host-local's reservation files (IPs in use) for a network under the node's ipam dir."""
    net_dir = node.tmp / "ipam" / network
    if not net_dir.exists():
        return []
    ips = []
    for entry in net_dir.iterdir():
        with contextlib.suppress(ValueError):  # lock, last_reserved_ip.0
            ips.append(ipaddress.ip_address(entry.name))
    return [str(ip) for ip in sorted(ips)]


def sandbox_processes_gone(sandbox: Sandbox) -> bool:
    """The sandbox's init and its shim (recognised by ``-id <sandbox id>``) are gone."""
    return not pid_alive(sandbox.pid) and not processes_with_arg(sandbox.id)
