"""The libcni-format result cache: exact format, atomic writes, corrupt entries, attachments."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from multusd.cni.cache import CACHE_KIND_V1, CacheCorruptError, CacheEntry, ResultCache
from multusd.cni.errors import CniError

CID = "2d1c0a1c8e0b4f1a9d3e"
LIST_BYTES = b'{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}'
RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-1"}],
    "ips": [{"address": "10.42.5.7/24", "gateway": "10.42.5.1", "interface": 0}],
}

#: What Go's libcni writes (struct field order, no spaces), e.g. for a flannel pod on K3s.
GO_WRITTEN = (
    '{"kind":"cniCacheV1","containerId":"' + CID + '","config":"' + base64.b64encode(LIST_BYTES).decode() + '",'
    '"ifName":"eth0","networkName":"cbr0","netns":"/var/run/netns/cni-1",'
    '"cniArgs":[["IgnoreUnknown","true"],["K8S_POD_NAMESPACE","default"],["K8S_POD_NAME","web-0"]],'
    '"capabilityArgs":{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]},'
    '"result":' + json.dumps(RESULT, separators=(",", ":")) + "}"
)


def entry(**overrides: object) -> CacheEntry:
    values: dict[str, object] = {
        "network_name": "cbr0",
        "container_id": CID,
        "ifname": "eth0",
        "config": LIST_BYTES,
        "netns": "/var/run/netns/cni-1",
        "cni_args": (("IgnoreUnknown", "true"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-0")),
        "capability_args": {"portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]},
        "result": RESULT,
    }
    values.update(overrides)
    return CacheEntry(**values)  # type: ignore[arg-type]


def test_save_writes_libcni_format_with_modes(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    path = cache.save(entry())
    assert path == str(tmp_path / "results" / f"cbr0-{CID}-eth0")
    assert Path(path).read_text() == GO_WRITTEN
    assert stat.S_IMODE(os.stat(tmp_path / "results").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path / "results") == [f"cbr0-{CID}-eth0"]  # no temp file left


def test_empty_optionals_are_left_out(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    path = cache.save(entry(netns="", cni_args=(), capability_args={}, result=None))
    assert json.loads(Path(path).read_text()) == {
        "kind": CACHE_KIND_V1,
        "containerId": CID,
        "config": base64.b64encode(LIST_BYTES).decode(),
        "ifName": "eth0",
        "networkName": "cbr0",
    }


def test_reads_go_written_file_in_any_key_order(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    obj = json.loads(GO_WRITTEN)
    reordered = dict(reversed(list(obj.items())))
    (results / f"cbr0-{CID}-eth0").write_text(json.dumps(reordered, indent=2))
    loaded = ResultCache(str(tmp_path)).load("cbr0", CID, "eth0")
    assert loaded == entry()


def test_roundtrip(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.save(entry())
    assert cache.load("cbr0", CID, "eth0") == entry()


def test_overwrite_is_atomic_replace(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.save(entry())
    inode = os.stat(cache.path("cbr0", CID, "eth0")).st_ino
    cache.save(entry(netns="/var/run/netns/other"))
    loaded = cache.load("cbr0", CID, "eth0")
    assert loaded is not None and loaded.netns == "/var/run/netns/other"
    assert os.stat(cache.path("cbr0", CID, "eth0")).st_ino != inode  # a new file was renamed in


def test_missing_entry_is_none_and_delete_reports(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    assert cache.load("cbr0", CID, "eth0") is None
    assert cache.delete("cbr0", CID, "eth0") is False
    cache.save(entry())
    assert cache.delete("cbr0", CID, "eth0") is True
    assert cache.load("cbr0", CID, "eth0") is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{truncated", "invalid JSON"),
        ('{"kind":"somethingElse"}', "wrong kind"),
        ('{"kind":"cniCacheV1","config":"***"}', "not valid base64"),
        ('{"kind":"cniCacheV1","cniArgs":[["a"]]}', "cniArgs"),
        ('{"kind":"cniCacheV1","result":[1]}', "result is not an object"),
        ("[]", "not a JSON object"),
    ],
)
def test_corrupt_entries_raise_a_distinct_error_with_reason(tmp_path: Path, content: str, reason: str) -> None:
    cache = ResultCache(str(tmp_path))
    os.makedirs(cache.results_dir)
    Path(cache.path("cbr0", CID, "eth0")).write_text(content)
    with pytest.raises(CacheCorruptError) as exc:
        cache.load("cbr0", CID, "eth0")
    assert reason in exc.value.reason
    assert exc.value.path == cache.path("cbr0", CID, "eth0")
    assert isinstance(exc.value, CniError)


def test_legacy_bare_result_is_read(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    os.makedirs(cache.results_dir)
    Path(cache.path("cbr0", CID, "eth0")).write_text(json.dumps(RESULT))
    loaded = cache.load("cbr0", CID, "eth0")
    assert loaded is not None and loaded.legacy and loaded.result == RESULT


def test_path_requires_all_parts(tmp_path: Path) -> None:
    with pytest.raises(CniError, match="cache file path requires"):
        ResultCache(str(tmp_path)).path("cbr0", "", "eth0")


def test_attachments_filters_and_skips_bad_files(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    assert cache.attachments() == []  # no results dir yet
    cache.save(entry())
    cache.save(entry(network_name="macvlan-conf-1", ifname="net1"))
    cache.save(entry(container_id="other", ifname="eth0"))
    Path(cache.results_dir, "garbage").write_text("{")
    Path(cache.results_dir, "legacy-x-eth0").write_text(json.dumps(RESULT))
    Path(cache.results_dir, "noif").write_text(
        json.dumps({"kind": CACHE_KIND_V1, "containerId": "c", "networkName": "n"})
    )
    every = cache.attachments()
    assert [(e.network_name, e.container_id, e.ifname) for e in every] == [
        ("cbr0", CID, "eth0"),
        ("cbr0", "other", "eth0"),
        ("macvlan-conf-1", CID, "net1"),
    ]
    assert [e.ifname for e in cache.attachments("macvlan-conf-1")] == ["net1"]
    assert [e.network_name for e in cache.attachments(container_id=CID)] == ["cbr0", "macvlan-conf-1"]
