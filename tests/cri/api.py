"""The subset of the CRI ``runtime.v1`` API the e2e suite uses, built with protobuf's descriptor API.

Written from the public specification ``k8s.io/cri-api/pkg/apis/runtime/v1/api.proto``: same
package, message names, field names and field numbers, so the bytes on the wire are exactly what the
kubelet sends. Fields we never set or read are left out; protobuf skips unknown fields when parsing,
so a response carrying more than we describe decodes fine.

Why the descriptor API rather than a ``.proto`` compiled with grpcio-tools: nothing to generate,
no compiler at test time (grpcio-tools is a large native wheel), and the definitions are a
plain table that reads like the ``.proto`` it mirrors.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "runtime.v1"
SERVICE = f"{PACKAGE}.RuntimeService"

_F = descriptor_pb2.FieldDescriptorProto
STRING, BOOL, UINT32, INT32, INT64, ENUM, MESSAGE = (
    _F.TYPE_STRING,
    _F.TYPE_BOOL,
    _F.TYPE_UINT32,
    _F.TYPE_INT32,
    _F.TYPE_INT64,
    _F.TYPE_ENUM,
    _F.TYPE_MESSAGE,
)
OPTIONAL, REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (field name, number, type, repeated?, type name for enums/messages) — as in api.proto.
Field = tuple[str, int, int, bool, str]

ENUMS: dict[str, list[tuple[str, int]]] = {
    "NamespaceMode": [("POD", 0), ("CONTAINER", 1), ("NODE", 2), ("TARGET", 3)],
    "PodSandboxState": [("SANDBOX_READY", 0), ("SANDBOX_NOTREADY", 1)],
}

MESSAGES: dict[str, list[Field]] = {
    "VersionRequest": [("version", 1, STRING, False, "")],
    "VersionResponse": [
        ("version", 1, STRING, False, ""),
        ("runtime_name", 2, STRING, False, ""),
        ("runtime_version", 3, STRING, False, ""),
        ("runtime_api_version", 4, STRING, False, ""),
    ],
    "NamespaceOption": [
        ("network", 1, ENUM, False, "NamespaceMode"),
        ("pid", 2, ENUM, False, "NamespaceMode"),
        ("ipc", 3, ENUM, False, "NamespaceMode"),
    ],
    "LinuxSandboxSecurityContext": [("namespace_options", 1, MESSAGE, False, "NamespaceOption")],
    "LinuxPodSandboxConfig": [
        ("cgroup_parent", 1, STRING, False, ""),
        ("security_context", 2, MESSAGE, False, "LinuxSandboxSecurityContext"),
    ],
    "PodSandboxMetadata": [
        ("name", 1, STRING, False, ""),
        ("uid", 2, STRING, False, ""),
        ("namespace", 3, STRING, False, ""),
        ("attempt", 4, UINT32, False, ""),
    ],
    "PodSandboxConfig": [
        ("metadata", 1, MESSAGE, False, "PodSandboxMetadata"),
        ("hostname", 2, STRING, False, ""),
        ("log_directory", 3, STRING, False, ""),
        ("linux", 8, MESSAGE, False, "LinuxPodSandboxConfig"),
    ],
    "RunPodSandboxRequest": [
        ("config", 1, MESSAGE, False, "PodSandboxConfig"),
        ("runtime_handler", 2, STRING, False, ""),
    ],
    "RunPodSandboxResponse": [("pod_sandbox_id", 1, STRING, False, "")],
    "StopPodSandboxRequest": [("pod_sandbox_id", 1, STRING, False, "")],
    "StopPodSandboxResponse": [],
    "RemovePodSandboxRequest": [("pod_sandbox_id", 1, STRING, False, "")],
    "RemovePodSandboxResponse": [],
    "PodSandboxStatusRequest": [
        ("pod_sandbox_id", 1, STRING, False, ""),
        ("verbose", 2, BOOL, False, ""),
    ],
    "PodIP": [("ip", 1, STRING, False, "")],
    "PodSandboxNetworkStatus": [
        ("ip", 1, STRING, False, ""),
        ("additional_ips", 2, MESSAGE, True, "PodIP"),
    ],
    "PodSandboxStatus": [
        ("id", 1, STRING, False, ""),
        ("metadata", 2, MESSAGE, False, "PodSandboxMetadata"),
        ("state", 3, ENUM, False, "PodSandboxState"),
        ("created_at", 4, INT64, False, ""),
        ("network", 5, MESSAGE, False, "PodSandboxNetworkStatus"),
    ],
    # map<string, string> info = 2 is, on the wire, a repeated entry message {key = 1; value = 2}.
    "PodSandboxStatusResponse": [
        ("status", 1, MESSAGE, False, "PodSandboxStatus"),
        ("info", 2, MESSAGE, True, "PodSandboxStatusResponse.InfoEntry"),
    ],
    "PodSandboxStateValue": [("state", 1, ENUM, False, "PodSandboxState")],
    "PodSandboxFilter": [
        ("id", 1, STRING, False, ""),
        ("state", 2, MESSAGE, False, "PodSandboxStateValue"),
    ],
    "ListPodSandboxRequest": [("filter", 1, MESSAGE, False, "PodSandboxFilter")],
    "PodSandbox": [
        ("id", 1, STRING, False, ""),
        ("metadata", 2, MESSAGE, False, "PodSandboxMetadata"),
        ("state", 3, ENUM, False, "PodSandboxState"),
        ("created_at", 4, INT64, False, ""),
    ],
    "ListPodSandboxResponse": [("items", 1, MESSAGE, True, "PodSandbox")],
    "StatusRequest": [("verbose", 1, BOOL, False, "")],
    "RuntimeCondition": [
        ("type", 1, STRING, False, ""),
        ("status", 2, BOOL, False, ""),
        ("reason", 3, STRING, False, ""),
        ("message", 4, STRING, False, ""),
    ],
    "RuntimeStatus": [("conditions", 1, MESSAGE, True, "RuntimeCondition")],
    "StatusResponse": [("status", 1, MESSAGE, False, "RuntimeStatus")],
}

# Map entry messages nested in their owner (protobuf requires map entries to be nested).
MAP_ENTRIES: dict[str, str] = {"PodSandboxStatusResponse": "InfoEntry"}

# rpc name → (request, response), all in RuntimeService.
METHODS: dict[str, tuple[str, str]] = {
    "Version": ("VersionRequest", "VersionResponse"),
    "RunPodSandbox": ("RunPodSandboxRequest", "RunPodSandboxResponse"),
    "StopPodSandbox": ("StopPodSandboxRequest", "StopPodSandboxResponse"),
    "RemovePodSandbox": ("RemovePodSandboxRequest", "RemovePodSandboxResponse"),
    "PodSandboxStatus": ("PodSandboxStatusRequest", "PodSandboxStatusResponse"),
    "ListPodSandbox": ("ListPodSandboxRequest", "ListPodSandboxResponse"),
    "Status": ("StatusRequest", "StatusResponse"),
}


def _field(message: descriptor_pb2.DescriptorProto, spec: Field) -> None:
    name, number, kind, repeated, type_name = spec
    field = message.field.add(name=name, number=number, type=kind, label=REPEATED if repeated else OPTIONAL)
    if type_name:
        field.type_name = f".{PACKAGE}.{type_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of our subset (a private file name: it never meets the real one)."""
    file = descriptor_pb2.FileDescriptorProto(name="multusd_tests/cri_runtime_v1.proto", package=PACKAGE)
    file.syntax = "proto3"
    for enum_name, values in ENUMS.items():
        enum = file.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for message_name, fields in MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for spec in fields:
            _field(message, spec)
        if message_name in MAP_ENTRIES:
            entry = message.nested_type.add(name=MAP_ENTRIES[message_name])
            entry.options.map_entry = True
            _field(entry, ("key", 1, STRING, False, ""))
            _field(entry, ("value", 2, STRING, False, ""))
    return file


def _classes() -> dict[str, type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in MESSAGES}


#: message name → generated message class (e.g. ``MESSAGE_TYPES["RunPodSandboxRequest"]``).
MESSAGE_TYPES: dict[str, type[Any]] = _classes()
