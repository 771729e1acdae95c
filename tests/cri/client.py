"""A small async CRI RuntimeService client: the calls the kubelet makes to start and stop a pod.

grpc.aio on containerd's unix socket, so the calls never block the event loop that also serves
the in-process Kubernetes API the daemon talks to (a blocking call there would deadlock the ADD).
Every call has a deadline; a runtime error surfaces as :class:`grpc.aio.AioRpcError` whose
``details()`` is the text containerd returned (for a failed CNI ADD, the plugin's message).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from tests.cri.api import MESSAGE_TYPES, METHODS, SERVICE

DEFAULT_TIMEOUT = 60.0
NAMESPACE_MODE_POD = 0
SANDBOX_READY = 0


def message(name: str, **fields: Any) -> Any:
    """A CRI message by name; nested messages may be given as dicts."""
    cls = MESSAGE_TYPES[name]
    msg = cls()
    _fill(msg, fields)
    return msg


def _fill(msg: Any, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        if isinstance(value, Mapping):
            _fill(getattr(msg, key), value)
        elif isinstance(value, Message):
            getattr(msg, key).CopyFrom(value)
        else:
            setattr(msg, key, value)


@dataclass(frozen=True)
class PodIdentity:
    """What the kubelet puts in ``PodSandboxConfig.metadata`` (and containerd turns into CNI_ARGS)."""

    name: str
    namespace: str
    uid: str
    attempt: int = 0


@dataclass(frozen=True)
class SandboxView:
    """What the tests need to know about a running sandbox."""

    ip: str
    netns: str
    pid: int
    ready: bool


class RuntimeClient:
    """``runtime.v1.RuntimeService`` over a unix socket; use as ``async with RuntimeClient(sock)``."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> RuntimeClient:
        self._channel = grpc.aio.insecure_channel(f"unix://{self.socket_path}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One unary RPC with a deadline (``timeout`` or the client default)."""
        assert self._channel is not None, "use the client as an async context manager"
        request_type, response_type = METHODS[method]
        assert type(request).DESCRIPTOR.name == request_type, f"{method} takes {request_type}"
        rpc = self._channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=MESSAGE_TYPES[response_type].FromString,
        )
        return await rpc(request, timeout=timeout or self.timeout)

    async def version(self) -> Any:
        return await self.call("Version", message("VersionRequest", version="v1"), timeout=10)

    async def status(self) -> dict[str, bool]:
        """Runtime conditions as ``{type: status}`` (``RuntimeReady``, ``NetworkReady``)."""
        resp = await self.call("Status", message("StatusRequest"), timeout=10)
        return {c.type: c.status for c in resp.status.conditions}

    async def run_pod_sandbox(self, pod: PodIdentity, log_directory: str, timeout: float | None = None) -> str:
        """``RunPodSandbox`` as the kubelet sends it for a pod on the pod network; the sandbox id."""
        config = message(
            "PodSandboxConfig",
            metadata={"name": pod.name, "namespace": pod.namespace, "uid": pod.uid, "attempt": pod.attempt},
            hostname=pod.name,
            log_directory=log_directory,
            linux={"security_context": {"namespace_options": {"network": NAMESPACE_MODE_POD}}},
        )
        resp = await self.call("RunPodSandbox", message("RunPodSandboxRequest", config=config), timeout)
        sandbox_id: str = resp.pod_sandbox_id
        return sandbox_id

    async def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> Any:
        """The ``PodSandboxStatusResponse`` (``.status.network.ip``, ``.info`` when verbose)."""
        return await self.call(
            "PodSandboxStatus", message("PodSandboxStatusRequest", pod_sandbox_id=sandbox_id, verbose=verbose)
        )

    async def inspect_pod_sandbox(self, sandbox_id: str) -> SandboxView:
        """IP, netns path, init PID and readiness of a sandbox (``crictl inspectp``'s view).

        The netns path and PID come from the verbose status' ``info`` JSON — containerd's
        format (``runtimeSpec``, ``pid``), not part of the CRI spec, but what crictl shows too.
        """
        resp = await self.pod_sandbox_status(sandbox_id, verbose=True)
        info = json.loads(dict(resp.info).get("info", "{}"))
        namespaces = info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", [])
        netns = next((ns.get("path", "") for ns in namespaces if ns.get("type") == "network"), "")
        return SandboxView(
            ip=resp.status.network.ip,
            netns=netns,
            pid=int(info.get("pid", 0)),
            ready=resp.status.state == SANDBOX_READY,
        )

    async def stop_pod_sandbox(self, sandbox_id: str, timeout: float | None = None) -> None:
        await self.call("StopPodSandbox", message("StopPodSandboxRequest", pod_sandbox_id=sandbox_id), timeout)

    async def remove_pod_sandbox(self, sandbox_id: str, timeout: float | None = None) -> None:
        await self.call("RemovePodSandbox", message("RemovePodSandboxRequest", pod_sandbox_id=sandbox_id), timeout)

    async def list_pod_sandbox(self) -> list[Any]:
        resp = await self.call("ListPodSandbox", message("ListPodSandboxRequest"), timeout=10)
        return list(resp.items)
