"""The socket boundary: request JSON, CNI env and CNI_ARGS parsed once, upstream's error texts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from multusd.attach.request import parse_cni_args, parse_request
from multusd.cni.errors import CniCode, CniError

STDIN = {"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim", "clusterNetwork": "/x"}
ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1"


def body(env: dict[str, str], config: Any = STDIN, **extra: Any) -> bytes:
    obj = {"env": env, "config": base64.b64encode(json.dumps(config).encode()).decode(), **extra}
    return json.dumps(obj).encode()


def env(**changes: str | None) -> dict[str, str]:
    base = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "abc",
        "CNI_NETNS": "/var/run/netns/cni-1",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": ARGS,
        "CNI_PATH": "/opt/cni/bin",
        "PATH": "/usr/bin",
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return base


def test_add_request_is_fully_typed() -> None:
    req = parse_request(body(env()))
    assert (req.command, req.container_id, req.netns, req.ifname) == (
        "ADD",
        "abc",
        "/var/run/netns/cni-1",
        "eth0",
    )
    assert (req.pod_namespace, req.pod_name, req.pod_uid, req.infra_container_id) == (
        "default",
        "web-0",
        "u-1",
        "abc",
    )
    assert req.config == STDIN
    assert req.cni_version == "1.0.0"
    assert req.args[0] == ("IgnoreUnknown", "1")


def test_overlay_replaces_top_level_keys_and_strips_readiness_in_auto_mode() -> None:
    overlay = {"cniVersion": "0.4.0", "binDir": "/foo", "readinessindicatorfile": "/run/x"}
    config = {**STDIN, "readinessindicatorfile": "/run/y", "logLevel": "debug"}
    req = parse_request(body(env(), config), overlay, ignore_readiness=True)
    assert req.config["cniVersion"] == "0.4.0"
    assert req.config["binDir"] == "/foo"
    assert req.config["clusterNetwork"] == "/x"
    assert req.config["logLevel"] == "debug"
    assert "readinessindicatorfile" not in req.config
    kept = parse_request(body(env(), config), overlay, ignore_readiness=False)
    assert kept.config["readinessindicatorfile"] == "/run/x"


def test_missing_ifname_defaults_to_eth0_and_empty_netns_is_accepted() -> None:
    req = parse_request(body(env(CNI_IFNAME=None, CNI_NETNS="", CNI_COMMAND="DEL")))
    assert req.ifname == "eth0"
    assert req.netns == ""


def test_del_may_leave_out_the_netns() -> None:
    assert parse_request(body(env(CNI_NETNS=None, CNI_COMMAND="DEL"))).netns == ""


def test_gc_and_status_need_only_the_config() -> None:
    req = parse_request(body({"CNI_COMMAND": "STATUS"}))
    assert req.command == "STATUS"
    assert req.pod_name == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"CNI_COMMAND": None}, "could not extract the CNI command args: unexpected or missing CNI_COMMAND"),
        ({"CNI_COMMAND": "FROB"}, "unknown cmd type: FROB"),
        ({"CNI_CONTAINERID": None}, "could not extract the CNI command args: missing CNI_CONTAINERID"),
        ({"CNI_NETNS": None}, "could not extract the CNI command args: missing CNI_NETNS"),
        ({"CNI_ARGS": None}, "could not extract the CNI command args: missing CNI_ARGS"),
        ({"CNI_ARGS": ""}, "could not extract the kubernetes runtime args: invalid CNI_ARG ''"),
        ({"CNI_ARGS": "K8S_POD_NAME=a;"}, "invalid CNI_ARG ''"),
        ({"CNI_ARGS": "K8S_POD_NAME=a=b"}, "invalid CNI_ARG 'K8S_POD_NAME=a=b'"),
        (
            {"CNI_ARGS": "K8S_POD_NAME=a"},
            "could not extract the kubernetes runtime args: missing K8S_POD_NAMESPACE",
        ),
        (
            {"CNI_ARGS": "K8S_POD_NAMESPACE=a"},
            "could not extract the kubernetes runtime args: missing K8S_POD_NAME",
        ),
    ],
)
def test_env_errors_use_upstream_texts_and_code_4(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(CniError) as info:
        parse_request(body(env(**changes)))
    assert info.value.code == CniCode.INVALID_ENVIRONMENT_VARIABLES
    assert message in info.value.msg


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"env": {"CNI_COMMAND": 5}}).encode(),
        json.dumps({"env": {"CNI_COMMAND": "ADD"}, "config": "***"}).encode(),
        json.dumps({"env": env(), "config": base64.b64encode(b"[1]").decode()}).encode(),
        json.dumps({"env": env(), "config": base64.b64encode(b"{oops").decode()}).encode(),
    ],
)
def test_undecodable_bodies_are_decoding_failures(raw: bytes) -> None:
    with pytest.raises(CniError) as info:
        parse_request(raw)
    assert info.value.code == CniCode.DECODING_FAILURE


def test_delegate_interface_attributes() -> None:
    attrs = {"ips": ["10.1.1.5/24"], "mac": "c2:11:22:33:44:66", "cni-args": {"k": "v"}}
    req = parse_request(body(env(), interfaceAttributes=attrs), delegate=True)
    assert req.interface_attributes is not None
    assert req.interface_attributes.ips == ("10.1.1.5/24",)
    assert req.interface_attributes.cni_args == {"k": "v"}
    with pytest.raises(CniError, match="ips must be strings"):
        parse_request(body(env(), interfaceAttributes={"ips": [1]}), delegate=True)


def test_cni_args_pairs_are_trimmed() -> None:
    assert parse_cni_args(" A = 1 ;B=2") == (("A", "1"), ("B", "2"))
