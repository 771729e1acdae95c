"""Scratch files: upstream's format both ways, atomic writes, corrupt files reported."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from multusd.state import CorruptStateError, DelegateRecord, StateError, StateStore

FLANNEL_LIST = {
    "cniVersion": "1.0.0",
    "name": "cbr0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
MACVLAN = {"cniVersion": "0.3.1", "name": "macvlan-conf", "type": "macvlan", "master": "eth1", "ipam": {}}


def go_written_file() -> bytes:
    """A scratch file as upstream's Go daemon writes it (reference §7.1), built by hand."""
    flannel_bytes = json.dumps(FLANNEL_LIST).encode()
    macvlan_bytes = json.dumps(MACVLAN).encode()
    entries = [
        {
            "Conf": {"ipam": {}, "dns": {}},
            "ConfList": {"cniVersion": "1.0.0", "name": "cbr0", "plugins": FLANNEL_LIST["plugins"]},
            "Name": "cbr0",
            "IsFilterV4Gateway": False,
            "IsFilterV6Gateway": False,
            "Bytes": base64.b64encode(flannel_bytes).decode(),
        },
        {
            "Conf": {"cniVersion": "0.3.1", "name": "macvlan-conf", "type": "macvlan", "ipam": {}},
            "ConfList": {},
            "Name": "default/macvlan-conf",
            "ifnameRequest": "data0",
            "macRequest": "c2:11:22:33:44:55",
            "ipRequest": ["10.1.1.5/24"],
            "default-route": ["10.1.1.1"],
            "IsFilterV4Gateway": True,
            "IsFilterV6Gateway": False,
            "Bytes": base64.b64encode(macvlan_bytes).decode(),
        },
    ]
    return json.dumps(entries).encode()


def test_reads_upstream_go_file(tmp_path: Path) -> None:
    (tmp_path / "abc123").write_bytes(go_written_file())
    records = StateStore(tmp_path).load("abc123")
    assert records is not None
    cluster, nad = records
    assert cluster.name == "cbr0" and cluster.is_list and cluster.network_name == "cbr0"
    assert json.loads(cluster.conf_bytes) == FLANNEL_LIST
    assert nad.name == "default/macvlan-conf" and not nad.is_list
    assert nad.ifname_request == "data0"
    assert nad.mac_request == "c2:11:22:33:44:55"
    assert nad.ip_request == ("10.1.1.5/24",)
    assert nad.default_route == ("10.1.1.1",)
    assert nad.filter_v4_gateway and not nad.filter_v6_gateway
    assert cluster.default_route is None


def test_round_trip_keeps_exact_bytes_and_go_shape(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "multus")
    raw = b'{"cniVersion":"0.3.1","name":"macvlan-conf","type":"macvlan","master":"eth1"}'
    record = DelegateRecord.from_conf("default/macvlan-conf", raw, ifname_request="net1")
    path = store.save("cid-1", [record])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    on_disk = json.loads(path.read_bytes())
    assert base64.b64decode(on_disk[0]["Bytes"]) == raw
    assert on_disk[0]["Conf"] == {
        "ipam": {},
        "cniVersion": "0.3.1",
        "name": "macvlan-conf",
        "type": "macvlan",
    }
    assert on_disk[0]["ConfList"] == {}
    assert on_disk[0]["Name"] == "default/macvlan-conf"
    assert on_disk[0]["ifnameRequest"] == "net1"
    assert "macRequest" not in on_disk[0]
    assert store.load("cid-1") == [record]
    assert [p.name for p in path.parent.iterdir()] == ["cid-1"]  # no temp file left behind


def test_missing_file_is_none_and_remove_is_idempotent(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load("nope") is None
    store.remove("nope")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not JSON"),
        (b'[{"Name": "x"', "not JSON"),
        (b'{"Name": "x"}', "not a JSON array"),
        (b'[{"Name": "x"}]', "no Bytes"),
        (b'[{"Name": "x", "Bytes": "!!!"}]', "not base64"),
        (b'[{"Name": "x", "Bytes": "bm90IGpzb24="}]', "Bytes is not JSON"),
    ],
)
def test_corrupt_files_are_reported_with_the_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "cid").write_bytes(content)
    with pytest.raises(CorruptStateError) as info:
        StateStore(tmp_path).load("cid")
    assert reason in info.value.reason
    assert str(tmp_path / "cid") in str(info.value)


def test_container_ids_lists_only_scratch_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    record = DelegateRecord.from_conf("cbr0", json.dumps(FLANNEL_LIST).encode())
    store.save("a1", [record])
    store.save("b2", [record])
    (tmp_path / "results").mkdir()
    (tmp_path / ".b2.tmp-99").write_bytes(b"partial")
    assert sorted(store.container_ids()) == ["a1", "b2"]
    assert store.count() == 2


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".hidden"])
def test_container_id_is_validated_before_touching_disk(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StateError, match="invalid container ID"):
        StateStore(tmp_path).path(bad)
