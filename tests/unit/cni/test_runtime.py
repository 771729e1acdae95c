"""libcni semantics (ADD/DEL/CHECK/GC/STATUS) driven through the real cni-recorder plugin."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from multusd.cni.cache import ResultCache
from multusd.cni.conf import ConfList, parse_conf_list, parse_plugin_conf
from multusd.cni.errors import CniCode, CniError
from multusd.cni.exec import PluginExecutor
from multusd.cni.runtime import CniRuntime, GcAttachment, RuntimeConf, runtime_config

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
CID = "c0ffee"
PORT_MAPPINGS = [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]
BANDWIDTH = {"IngressRate": 1000, "IngressBurst": 100}


class Rig:
    """A runtime over tests/plugins with a tmp cache and one record file for every plugin."""

    def __init__(self, tmp_path: Path) -> None:
        self.record = tmp_path / "record"
        self.cache = ResultCache(str(tmp_path / "cache"))
        self.executor = PluginExecutor([str(PLUGINS)], timeout_seconds=10, base_env={"PATH": os.environ["PATH"]})
        self.runtime = CniRuntime(self.executor, self.cache)

    def plugin(self, tag: str, **extra: Any) -> dict[str, Any]:
        return {"type": "cni-recorder", "tag": tag, "recordFile": str(self.record), **extra}

    def conf_list(self, *plugins: dict[str, Any], version: str = "1.0.0", **extra: Any) -> ConfList:
        return parse_conf_list({"cniVersion": version, "name": "net1", "plugins": list(plugins), **extra})

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def calls(self) -> list[tuple[str, str]]:
        return [(r["command"], r["stdin"].get("tag", "")) for r in self.records()]

    def reset(self) -> None:
        self.record.unlink(missing_ok=True)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def corrupt_entry(cache: ResultCache, network: str) -> None:
    os.makedirs(cache.results_dir, exist_ok=True)
    with open(cache.path(network, CID, "net1"), "w") as f:
        f.write("{half a file")


def entry_exists(cache: ResultCache, network: str) -> bool:
    return os.path.exists(cache.path(network, CID, "net1"))


def rt(**kw: Any) -> RuntimeConf:
    values: dict[str, Any] = {
        "container_id": CID,
        "netns": "/var/run/netns/pod",
        "ifname": "net1",
        "args": (("IgnoreUnknown", "true"), ("K8S_POD_NAME", "web-0")),
    }
    values.update(kw)
    return RuntimeConf(**values)


# -- ADD -----------------------------------------------------------------------------------------


async def test_add_list_chains_prev_results_and_caches_the_last(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a", ip="10.1.0.5/24"), rig.plugin("b", keep={"x": 1}), rig.plugin("c"))
    result = await rig.runtime.add_list(conf_list, rt())
    assert [str(ip.address) for ip in result.ips] == ["10.1.0.5/24"]
    a, b, c = rig.records()
    for rec in (a, b, c):
        assert rec["stdin"]["name"] == "net1" and rec["stdin"]["cniVersion"] == "1.0.0"
        assert rec["args"] == "IgnoreUnknown=true;K8S_POD_NAME=web-0"
    assert "prevResult" not in a["stdin"]
    assert b["stdin"]["prevResult"]["ips"] == [{"address": "10.1.0.5/24", "interface": 0}]
    assert b["stdin"]["keep"] == {"x": 1}  # plugin-specific keys pass through
    assert c["stdin"]["prevResult"] == b["stdin"]["prevResult"]

    cached = read_json(rig.cache.path("net1", CID, "net1"))
    assert cached["kind"] == "cniCacheV1"
    assert base64.b64decode(cached["config"]) == conf_list.data
    assert cached["result"] == result.to_json()
    assert cached["cniArgs"] == [["IgnoreUnknown", "true"], ["K8S_POD_NAME", "web-0"]]
    assert cached["netns"] == "/var/run/netns/pod"


async def test_runtime_config_only_for_declared_capabilities(rig: Rig) -> None:
    conf_list = rig.conf_list(
        rig.plugin("ports", capabilities={"portMappings": True, "bandwidth": False}),
        rig.plugin("bw", capabilities={"bandwidth": True}, runtimeConfig={"stale": True}),
        rig.plugin("none"),
    )
    caps = {"portMappings": PORT_MAPPINGS, "bandwidth": BANDWIDTH, "mac": "02:00:00:00:00:01"}
    await rig.runtime.add_list(conf_list, rt(capability_args=caps))
    ports, bw, none = rig.records()
    assert ports["stdin"]["runtimeConfig"] == {"portMappings": PORT_MAPPINGS}  # values untouched
    assert bw["stdin"]["runtimeConfig"] == {"bandwidth": BANDWIDTH}  # replaces the conf's own
    assert "runtimeConfig" not in none["stdin"]
    cached = read_json(rig.cache.path("net1", CID, "net1"))
    assert cached["capabilityArgs"] == caps


def test_capability_arg_keys_match_case_insensitively_when_not_exact() -> None:
    conf = parse_plugin_conf({"type": "portmap", "capabilities": {"portMappings": True, "ips": True}})
    assert runtime_config(conf, {"PortMappings": PORT_MAPPINGS, "IPs": ["10.0.0.1/24"]}) == {
        "portMappings": PORT_MAPPINGS,
        "ips": ["10.0.0.1/24"],
    }
    assert runtime_config(conf, {"PortMappings": [], "portMappings": PORT_MAPPINGS}) == {"portMappings": PORT_MAPPINGS}


async def test_add_error_is_prefixed_and_keeps_the_plugin_code(rig: Rig) -> None:
    err = {"code": 11, "msg": "no leases", "details": "pool empty"}
    conf_list = rig.conf_list(rig.plugin("a"), rig.plugin("b", name="second", error=err), rig.plugin("c"))
    with pytest.raises(CniError) as exc:
        await rig.runtime.add_list(conf_list, rt())
    assert exc.value.code == 11
    assert exc.value.msg == 'plugin type="cni-recorder" name="second" failed (add): no leases'
    assert exc.value.details == "pool empty"
    assert rig.calls() == [("ADD", "a"), ("ADD", "b")]
    assert rig.cache.load("net1", CID, "net1") is None


async def test_missing_plugin_in_add(rig: Rig) -> None:
    conf_list = parse_conf_list({"cniVersion": "1.0.0", "name": "net1", "plugins": [{"type": "nope"}]})
    with pytest.raises(CniError) as exc:
        await rig.runtime.add_list(conf_list, rt())
    assert exc.value.msg == f'plugin type="nope" failed (add): failed to find plugin "nope" in path [{PLUGINS}]'


@pytest.mark.parametrize(
    ("runtime_conf", "name", "code", "msg"),
    [
        (rt(container_id=""), "net1", CniCode.UNKNOWN_CONTAINER, "missing containerID"),
        (rt(container_id="a b"), "net1", CniCode.INVALID_ENVIRONMENT_VARIABLES, "invalid characters in containerID"),
        (rt(ifname="x" * 16), "net1", CniCode.INVALID_ENVIRONMENT_VARIABLES, "interface name is too long"),
        (rt(), "bad name", CniCode.INVALID_NETWORK_CONFIG, "invalid characters found in network name"),
    ],
)
async def test_add_validates_before_running_anything(
    rig: Rig, runtime_conf: RuntimeConf, name: str, code: int, msg: str
) -> None:
    conf_list = parse_conf_list({"cniVersion": "1.0.0", "name": name, "plugins": [rig.plugin("a")]})
    with pytest.raises(CniError) as exc:
        await rig.runtime.add_list(conf_list, runtime_conf)
    assert exc.value.code == code
    assert exc.value.msg == f'plugin type="cni-recorder" failed (add): {msg}'
    assert rig.records() == []


async def test_cache_write_failure_is_reported(tmp_path: Path, rig: Rig) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    runtime = CniRuntime(rig.executor, ResultCache(str(blocker)))  # results dir cannot be created
    with pytest.raises(CniError) as exc:
        await runtime.add_list(rig.conf_list(rig.plugin("a")), rt())
    assert exc.value.code == CniCode.IO_FAILURE
    assert exc.value.msg.startswith('failed to set network "net1" cached result: ')


# -- DEL -----------------------------------------------------------------------------------------


async def test_del_list_runs_in_reverse_with_cached_prev_result_then_uncaches(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a", ip="10.1.0.5/24"), rig.plugin("b"), rig.plugin("c"))
    added = await rig.runtime.add_list(conf_list, rt())
    rig.reset()
    await rig.runtime.del_list(conf_list, rt())
    assert rig.calls() == [("DEL", "c"), ("DEL", "b"), ("DEL", "a")]
    for rec in rig.records():
        assert rec["stdin"]["prevResult"] == added.to_json()
    assert rig.cache.load("net1", CID, "net1") is None


async def test_del_prev_result_is_converted_to_the_config_version(rig: Rig) -> None:
    await rig.runtime.add_list(rig.conf_list(rig.plugin("a", ip="10.1.0.5/24")), rt())
    rig.reset()
    await rig.runtime.del_list(rig.conf_list(rig.plugin("a"), version="0.4.0"), rt())
    (rec,) = rig.records()
    prev = rec["stdin"]["prevResult"]
    assert prev["cniVersion"] == "0.4.0"
    assert prev["ips"] == [{"version": "4", "interface": 0, "address": "10.1.0.5/24"}]


async def test_del_below_040_sends_no_prev_result(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a", ip="10.1.0.5/24"), version="0.3.1")
    await rig.runtime.add_list(conf_list, rt())
    rig.reset()
    await rig.runtime.del_list(conf_list, rt())
    assert "prevResult" not in rig.records()[0]["stdin"]
    assert rig.cache.load("net1", CID, "net1") is None


async def test_del_failure_keeps_the_cache_and_stops(rig: Rig) -> None:
    err = {"code": 5, "msg": "cannot delete"}
    conf_list = rig.conf_list(rig.plugin("a"), rig.plugin("b", error=err, errorOn=["DEL"]), rig.plugin("c"))
    await rig.runtime.add_list(conf_list, rt())
    rig.reset()
    with pytest.raises(CniError) as exc:
        await rig.runtime.del_list(conf_list, rt())
    assert (exc.value.code, exc.value.msg) == (5, 'plugin type="cni-recorder" failed (delete): cannot delete')
    assert rig.calls() == [("DEL", "c"), ("DEL", "b")]
    assert rig.cache.load("net1", CID, "net1") is not None


async def test_del_list_with_corrupt_cache_deletes_it_and_continues(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a"), rig.plugin("b"))
    corrupt_entry(rig.cache, "net1")
    await rig.runtime.del_list(conf_list, rt())
    assert rig.calls() == [("DEL", "b"), ("DEL", "a")]
    assert all("prevResult" not in r["stdin"] for r in rig.records())
    assert not entry_exists(rig.cache, "net1")


async def test_del_conf_with_corrupt_cache_fails_as_libcni(rig: Rig) -> None:
    conf = parse_plugin_conf({"cniVersion": "1.0.0", "name": "net1", **rig.plugin("a")})
    corrupt_entry(rig.cache, "net1")
    with pytest.raises(CniError) as exc:
        await rig.runtime.del_conf(conf, rt())
    assert exc.value.msg.startswith('failed to get network "net1" cached result: corrupt CNI result cache ')
    assert rig.records() == []
    assert entry_exists(rig.cache, "net1")


async def test_del_without_cache_entry_is_fine(rig: Rig) -> None:
    await rig.runtime.del_list(rig.conf_list(rig.plugin("a")), rt(netns=""))
    assert rig.calls() == [("DEL", "a")]
    assert "prevResult" not in rig.records()[0]["stdin"]


# -- CHECK ---------------------------------------------------------------------------------------


async def test_check_list_sends_the_cached_result(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a", ip="10.1.0.5/24"), rig.plugin("b"))
    added = await rig.runtime.add_list(conf_list, rt())
    rig.reset()
    await rig.runtime.check_list(conf_list, rt())
    assert rig.calls() == [("CHECK", "a"), ("CHECK", "b")]
    assert all(r["stdin"]["prevResult"] == added.to_json() for r in rig.records())


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
async def test_check_below_040_is_refused(rig: Rig, version: str) -> None:
    with pytest.raises(CniError) as exc:
        await rig.runtime.check_list(rig.conf_list(rig.plugin("a"), version=version), rt())
    assert exc.value.msg == f'configuration version "{version}" does not support the CHECK command'
    assert exc.value.code == CniCode.INCOMPATIBLE_CNI_VERSION
    assert rig.records() == []


async def test_disable_check_skips_plugins(rig: Rig) -> None:
    await rig.runtime.check_list(rig.conf_list(rig.plugin("a"), disableCheck=True), rt())
    assert rig.records() == []


async def test_check_error_is_returned_unwrapped(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a", error={"code": 7, "msg": "drift"}, errorOn=["CHECK"]))
    await rig.runtime.add_list(conf_list, rt())
    with pytest.raises(CniError) as exc:
        await rig.runtime.check_list(conf_list, rt())
    assert (exc.value.code, exc.value.msg) == (7, "drift")


# -- single confs --------------------------------------------------------------------------------


async def test_single_conf_add_check_del(rig: Rig) -> None:
    conf = parse_plugin_conf({"cniVersion": "0.4.0", "name": "mv", **rig.plugin("a", ip="10.2.0.9/24")})
    result = await rig.runtime.add_conf(conf, rt())
    assert result.cni_version == "0.4.0"
    cached = rig.cache.load("mv", CID, "net1")
    assert cached is not None and cached.config == conf.data
    got = rig.runtime.get_cached_result("mv", "1.0.0", rt())
    assert got is not None and got.cni_version == "1.0.0" and str(got.ips[0].address) == "10.2.0.9/24"
    await rig.runtime.check_conf(conf, rt())
    await rig.runtime.del_conf(conf, rt())
    assert rig.calls() == [("ADD", "a"), ("CHECK", "a"), ("DEL", "a")]
    assert rig.records()[2]["stdin"]["prevResult"]["ips"][0]["address"] == "10.2.0.9/24"
    assert rig.cache.load("mv", CID, "net1") is None


# -- GC ------------------------------------------------------------------------------------------


async def test_gc_deletes_stale_attachments_then_gcs_each_plugin(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a"), rig.plugin("b"), version="1.1.0")
    await rig.runtime.add_list(conf_list, rt(container_id="keep", ifname="eth0"))
    await rig.runtime.add_list(conf_list, rt(container_id="stale", ifname="eth0", netns="/run/netns/s"))
    other = parse_conf_list({"cniVersion": "1.1.0", "name": "other", "plugins": [rig.plugin("o")]})
    await rig.runtime.add_list(other, rt(container_id="stale", ifname="net2"))
    rig.reset()

    await rig.runtime.gc_list(conf_list, [GcAttachment("keep", "eth0")])
    assert rig.calls() == [("DEL", "b"), ("DEL", "a"), ("GC", "a"), ("GC", "b")]
    dels = rig.records()[:2]
    assert all((r["containerID"], r["ifname"], r["netns"]) == ("stale", "eth0", "/run/netns/s") for r in dels)
    assert dels[0]["args"] == "IgnoreUnknown=true;K8S_POD_NAME=web-0"  # from the cache entry
    for gc in rig.records()[2:]:
        assert gc["containerID"] == "" and gc["ifname"] == ""
        assert gc["stdin"]["cni.dev/valid-attachments"] == [{"containerID": "keep", "ifname": "eth0"}]
        assert gc["stdin"]["cni.dev/attachments"] == [{"containerID": "keep", "ifname": "eth0"}]
        assert gc["stdin"]["name"] == "net1" and gc["stdin"]["cniVersion"] == "1.1.0"
    left = [(e.network_name, e.container_id) for e in rig.runtime.cached_attachments()]
    assert left == [("net1", "keep"), ("other", "stale")]


async def test_gc_below_110_only_deletes_stale(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a"), version="1.0.0")
    await rig.runtime.add_list(conf_list, rt(container_id="stale"))
    rig.reset()
    await rig.runtime.gc_list(conf_list, [])
    assert rig.calls() == [("DEL", "a")]


async def test_disable_gc_does_nothing(rig: Rig) -> None:
    conf_list = rig.conf_list(rig.plugin("a"), version="1.1.0", disableGC=True)
    await rig.runtime.add_list(conf_list, rt(container_id="stale"))
    rig.reset()
    await rig.runtime.gc_list(conf_list, [])
    assert rig.records() == []
    assert len(rig.runtime.cached_attachments("net1")) == 1


async def test_gc_errors_are_collected(rig: Rig) -> None:
    err = {"code": 5, "msg": "gc broke"}
    conf_list = rig.conf_list(rig.plugin("a", error=err, errorOn=["GC"]), rig.plugin("b"), version="1.1.0")
    with pytest.raises(CniError) as exc:
        await rig.runtime.gc_list(conf_list, [])
    assert exc.value.code == 5
    assert exc.value.msg == "failed to GC plugin cni-recorder: gc broke"
    assert rig.calls() == [("GC", "a"), ("GC", "b")]  # every plugin attempted


# -- STATUS --------------------------------------------------------------------------------------


async def test_status_first_error_stops_and_keeps_code_50(rig: Rig, tmp_path: Path) -> None:
    status_file = tmp_path / "status"
    status_file.write_text(json.dumps({"code": 50, "msg": "status failed"}))
    conf_list = rig.conf_list(rig.plugin("a", statusFile=str(status_file)), rig.plugin("b"), version="1.1.0")
    with pytest.raises(CniError) as exc:
        await rig.runtime.status_list(conf_list)
    assert (exc.value.code, exc.value.msg) == (50, "status failed")
    assert rig.calls() == [("STATUS", "a")]
    status_file.write_text("")
    rig.reset()
    await rig.runtime.status_list(conf_list)
    assert rig.calls() == [("STATUS", "a"), ("STATUS", "b")]
    assert rig.records()[0]["stdin"]["name"] == "net1"


async def test_status_below_110_is_a_no_op(rig: Rig) -> None:
    await rig.runtime.status_list(rig.conf_list(rig.plugin("a"), version="1.0.0"))
    assert rig.records() == []


# -- cache dir precedence ------------------------------------------------------------------------


async def test_runtime_conf_cache_dir_is_used_without_a_runtime_cache(rig: Rig, tmp_path: Path) -> None:
    runtime = CniRuntime(rig.executor)
    await runtime.add_list(rig.conf_list(rig.plugin("a")), rt(cache_dir=str(tmp_path / "rtcache")))
    assert (tmp_path / "rtcache" / "results" / f"net1-{CID}-net1").exists()


async def test_version_info(rig: Rig) -> None:
    info = await rig.runtime.version_info("cni-recorder")
    assert "1.1.0" in info.supported_versions
