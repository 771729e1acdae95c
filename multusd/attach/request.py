"""A shim's request, parsed and validated once into a typed :class:`CniRequest`.

This is the one boundary where untrusted input from the socket is checked (reference §1.3, §1.4,
§2.3): the request JSON, the CNI environment the shim forwarded, CNI_ARGS, and the multus config
that came on the shim's stdin (after the daemon-config overlay). Everything past here trusts these
types. Errors are :class:`CniError` with the spec's codes and upstream's texts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multusd.cni.errors import CniCode, CniError

COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS")
_NO_CONTAINER_COMMANDS = ("GC", "STATUS")
_ARGS_PREFIX = "could not extract the CNI command args: "
_K8S_PREFIX = "could not extract the kubernetes runtime args: "


@dataclass(frozen=True)
class InterfaceAttributes:
    """``/delegate`` hot-plug request attributes (reference §12.1)."""

    ips: tuple[str, ...] = ()
    mac: str = ""
    cni_args: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CniRequest:
    """One CNI call as the runtime made it, plus the effective multus config."""

    command: str
    container_id: str
    netns: str
    ifname: str
    cni_args: str  # CNI_ARGS as received
    args: tuple[tuple[str, str], ...]  # CNI_ARGS parsed into pairs
    config: Mapping[str, Any]  # the multus NetConf after the daemon-config overlay
    config_bytes: bytes
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    infra_container_id: str = ""
    interface_attributes: InterfaceAttributes | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def cni_version(self) -> str:
        value = self.config.get("cniVersion")
        return value if isinstance(value, str) else ""

    @property
    def pod_ref(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"

    def describe(self) -> str:
        """Upstream's ``printCmdArgs`` form, used to wrap non-CNI errors (reference §1.4 step 8)."""
        return (
            f'ContainerID:"{self.container_id}" Netns:"{self.netns}" IfName:"{self.ifname}" '
            f'Args:"{self.cni_args}" Path:""'
        )


def overlay_config(stdin: bytes, overlay: Mapping[str, Any], ignore_readiness: bool) -> dict[str, Any]:
    """The daemon-config keys replace the request's, shallowly (reference §2.3)."""
    try:
        conf = json.loads(stdin)
    except ValueError as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"failed to parse the request's CNI config: {exc}") from exc
    if not isinstance(conf, dict):
        raise CniError(CniCode.DECODING_FAILURE, "the request's CNI config is not a JSON object")
    for key, value in overlay.items():
        if ignore_readiness and key == "readinessindicatorfile":
            continue
        conf[key] = value
    if ignore_readiness:
        conf.pop("readinessindicatorfile", None)
    return conf


def parse_cni_args(cni_args: str) -> tuple[tuple[str, str], ...]:
    """``K=V;K=V``: each piece must split into exactly two parts on ``=`` (upstream's rule)."""
    pairs = []
    for piece in cni_args.split(";"):
        parts = piece.split("=")
        if len(parts) != 2:
            raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"{_K8S_PREFIX}invalid CNI_ARG '{piece}'")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return tuple(pairs)


def parse_request(
    body: bytes,
    overlay: Mapping[str, Any] | None = None,
    *,
    ignore_readiness: bool = True,
    delegate: bool = False,
) -> CniRequest:
    """Parse a ``/cni`` (or, with ``delegate``, ``/delegate``) request body."""
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"invalid request JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: not an object")
    env = _env(obj.get("env"))
    config_bytes = _config_bytes(obj.get("config"))

    if "CNI_COMMAND" not in env:
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"{_ARGS_PREFIX}unexpected or missing CNI_COMMAND")
    command = env["CNI_COMMAND"]
    if command not in COMMANDS:
        raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"unknown cmd type: {command}")

    config = overlay_config(config_bytes, overlay or {}, ignore_readiness)
    attributes = _interface_attributes(obj.get("interfaceAttributes")) if delegate else None
    if command in _NO_CONTAINER_COMMANDS:
        return CniRequest(
            command=command,
            container_id=env.get("CNI_CONTAINERID", ""),
            netns=env.get("CNI_NETNS", ""),
            ifname=env.get("CNI_IFNAME", ""),
            cni_args=env.get("CNI_ARGS", ""),
            args=(),
            config=config,
            config_bytes=config_bytes,
            env=env,
        )

    # skel lets a runtime leave CNI_NETNS out on DEL (the netns may be gone); upstream refused that.
    required = ("CNI_CONTAINERID", "CNI_ARGS") if command == "DEL" else ("CNI_CONTAINERID", "CNI_NETNS", "CNI_ARGS")
    for name in required:
        if name not in env:
            raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"{_ARGS_PREFIX}missing {name}")
    args = parse_cni_args(env["CNI_ARGS"])
    k8s = dict(args)
    for name in ("K8S_POD_NAMESPACE", "K8S_POD_NAME"):
        if not k8s.get(name):
            raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"{_K8S_PREFIX}missing {name}")
    return CniRequest(
        command=command,
        container_id=env["CNI_CONTAINERID"],
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME") or "eth0",
        cni_args=env["CNI_ARGS"],
        args=args,
        config=config,
        config_bytes=config_bytes,
        pod_namespace=k8s["K8S_POD_NAMESPACE"],
        pod_name=k8s["K8S_POD_NAME"],
        pod_uid=k8s.get("K8S_POD_UID", ""),
        infra_container_id=k8s.get("K8S_POD_INFRA_CONTAINER_ID", "") or env.get("K8S_POD_INFRA_CONTAINER_ID", ""),
        interface_attributes=attributes,
        env=env,
    )


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: env must map names to strings")
    return {str(k).strip(): v for k, v in value.items()}


def _config_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: config must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CniError(CniCode.DECODING_FAILURE, f"invalid request JSON: config is not base64: {exc}") from exc


def _interface_attributes(value: Any) -> InterfaceAttributes | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: interfaceAttributes must be an object")
    ips = value.get("ips") or []
    mac = value.get("mac") or ""
    cni_args = value.get("cni-args")
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: interfaceAttributes.ips must be strings")
    if not isinstance(mac, str):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: interfaceAttributes.mac must be a string")
    if cni_args is not None and not isinstance(cni_args, dict):
        raise CniError(CniCode.DECODING_FAILURE, "invalid request JSON: interfaceAttributes.cni-args must be an object")
    return InterfaceAttributes(ips=tuple(ips), mac=mac, cni_args=cni_args)
