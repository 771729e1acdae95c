"""The auxiliary CNI chain: built from the files beside the cluster network, run for real."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.auxchain import auxiliary_chain
from multusd.attach.delegates import MultusConf
from multusd.cni.cache import ResultCache
from multusd.cni.conf import ConfList
from multusd.cni.exec import PluginExecutor
from multusd.cni.runtime import CniRuntime, RuntimeConf

ROOT = Path(__file__).resolve().parents[3]
SHIM_DIR = ROOT / "shim"  # holds passthru
PLUGINS = ROOT / "tests" / "plugins"  # holds cni-recorder

FLANNEL_CONFLIST = {
    "name": "cbr0",
    "cniVersion": "1.0.0",
    "plugins": [{"type": "flannel", "delegate": {"hairpinMode": True, "forceAddress": True}}],
}
TUNING = {"type": "tuning", "name": "sysctl", "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"}}
BANDWIDTH = {"type": "bandwidth", "name": "shaper", "capabilities": {"bandwidth": True}}


class NodeConfDir:
    """A conf dir holding the cluster network's conflist and an auxiliary chain subdirectory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster_network = root / "10-flannel.conflist"
        self.cluster_network.write_text(json.dumps(FLANNEL_CONFLIST))

    def add_plugin(self, chain: str, filename: str, conf: dict[str, Any]) -> None:
        (self.root / chain).mkdir(exist_ok=True)
        (self.root / chain / filename).write_text(json.dumps(conf))

    def mconf(self, chain: str = "aux-chain", cluster_network: str | None = None, version: str = "1.0.0") -> MultusConf:
        return MultusConf(
            cni_version=version,
            name="multus-cni-network",
            cluster_network=str(self.cluster_network) if cluster_network is None else cluster_network,
            auxiliary_cni_chain_name=chain,
        )


@pytest.fixture
def node(tmp_path: Path) -> NodeConfDir:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    return NodeConfDir(conf_dir)


def plugins_of(conf: Any) -> list[dict[str, Any]]:
    assert isinstance(conf, ConfList)
    return [p.raw for p in conf.plugins]


def test_no_chain_name_means_no_chain(node: NodeConfDir) -> None:
    node.add_plugin("aux-chain", "10-tuning.conf", TUNING)
    assert auxiliary_chain(node.mconf(chain="")) is None


def test_chain_is_passthru_then_the_subdirectory_plugins_in_file_order(node: NodeConfDir) -> None:
    node.add_plugin("aux-chain", "20-bandwidth.conf", BANDWIDTH)
    node.add_plugin("aux-chain", "10-tuning.conf", TUNING)
    node.add_plugin("aux-chain", "30-ignored.conflist", BANDWIDTH)  # only *.conf count
    node.add_plugin("aux-chain", "40-ignored.json", TUNING)

    delegate = auxiliary_chain(node.mconf(version="0.4.0"))

    assert delegate is not None
    assert (delegate.name, delegate.master, delegate.network_name) == ("aux-chain", False, "aux-chain")
    assert isinstance(delegate.conf, ConfList)
    assert delegate.conf.cni_version == "0.4.0"
    assert plugins_of(delegate.conf) == [{"type": "passthru", "name": "passthru-cni"}, TUNING, BANDWIDTH]
    assert delegate.plugin_type == "passthru"


def test_the_scratch_record_holds_every_plugin_so_del_runs_the_same_chain(node: NodeConfDir) -> None:
    node.add_plugin("aux-chain", "10-tuning.conf", TUNING)
    delegate = auxiliary_chain(node.mconf())
    assert delegate is not None
    assert json.loads(delegate.conf_bytes()) == {
        "cniVersion": "1.0.0",
        "name": "aux-chain",
        "plugins": [{"type": "passthru", "name": "passthru-cni"}, TUNING],
    }


def test_no_subdirectory_plugins_means_no_chain(node: NodeConfDir, caplog: pytest.LogCaptureFixture) -> None:
    assert auxiliary_chain(node.mconf()) is None  # no directory at all
    (node.root / "aux-chain").mkdir()
    node.add_plugin("aux-chain", "10-tuning.conflist", TUNING)
    assert auxiliary_chain(node.mconf()) is None  # a directory without *.conf
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_cluster_network_name_instead_of_a_path_skips_the_chain_with_a_warning(
    node: NodeConfDir, caplog: pytest.LogCaptureFixture
) -> None:
    node.add_plugin("aux-chain", "10-tuning.conf", TUNING)
    with caplog.at_level(logging.WARNING, logger="multusd.attach.auxchain"):
        assert auxiliary_chain(node.mconf(cluster_network="cbr0")) is None
    assert [r.getMessage() for r in caplog.records] == [
        "auxiliary CNI chain 'aux-chain' skipped: auxiliary chain used but ClusterNetwork must be a path, "
        "and it is not a path: cbr0"
    ]


@pytest.mark.parametrize("chain", ["../net.d", "aux/chain", ".hidden"])
def test_a_chain_name_that_is_not_a_network_name_is_skipped(
    chain: str, node: NodeConfDir, caplog: pytest.LogCaptureFixture
) -> None:
    node.add_plugin(".hidden", "10-tuning.conf", TUNING)
    assert auxiliary_chain(node.mconf(chain=chain)) is None
    assert "invalid characters found in network name" in caplog.text


def test_a_broken_plugin_file_skips_the_chain_with_a_warning_naming_it(
    node: NodeConfDir, caplog: pytest.LogCaptureFixture
) -> None:
    node.add_plugin("aux-chain", "10-tuning.conf", TUNING)
    (node.root / "aux-chain" / "20-broken.conf").write_text("{not json")
    assert auxiliary_chain(node.mconf()) is None
    assert str(node.root / "aux-chain" / "20-broken.conf") in caplog.text


# --- end to end: passthru's empty result reaches the next plugin as prevResult ---------------------


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"], ids=lambda v: f"[{v}]")
async def test_chain_runs_passthru_then_gives_its_empty_result_as_prev_result(
    version: str, node: NodeConfDir, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    node.add_plugin("aux-chain", "10-recorder.conf", {"type": "cni-recorder", "recordFile": str(record)})
    delegate = auxiliary_chain(node.mconf(version=version))
    assert delegate is not None and isinstance(delegate.conf, ConfList)
    executor = PluginExecutor([str(SHIM_DIR), str(PLUGINS)], timeout_seconds=10, base_env={"PATH": os.environ["PATH"]})
    runtime = CniRuntime(executor, ResultCache(str(tmp_path / "cache")))
    rt = RuntimeConf(container_id="c0ffee", netns="/var/run/netns/pod", ifname="net2")

    result = await runtime.add_list(delegate.conf, rt)
    await runtime.del_list(delegate.conf, rt)

    records = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["command"] for r in records] == ["ADD", "DEL"]
    add_stdin = records[0]["stdin"]
    assert (add_stdin["name"], add_stdin["cniVersion"]) == ("aux-chain", version)
    # libcni re-marshals a result through its typed struct: the 0.x one always writes "dns".
    empty_result = {"cniVersion": version, "dns": {}} if version.startswith("0.") else {"cniVersion": version}
    assert add_stdin["prevResult"] == empty_result
    assert result.to_json(version) == empty_result
