"""The shim (stdlib, on the host) and the daemon's CNI library must print results identically.

The shim cannot import multusd, so it carries its own small converter; this test holds the two
to the same output for every version, on results shaped like real plugins' (flannel/bridge,
macvlan, dual-stack, legacy IPAM-only, the empty result).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from multusd.cni.types import Result, empty_result

SHIM = Path(__file__).resolve().parents[2] / "shim" / "multus-shim"
VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

RESULTS: dict[str, dict[str, Any]] = {
    "flannel": {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "aa:aa:aa:aa:aa:01"},
            {"name": "veth1", "mac": "aa:aa:aa:aa:aa:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1450, "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [{"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 2}],
        "routes": [{"dst": "10.42.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.42.0.1", "mtu": 1400}],
    },
    "dual-stack": {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "net1", "mac": "c2:11:22:33:44:55", "sandbox": "/x"}],
        "ips": [
            {"address": "192.168.1.5/24", "interface": 0},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 0},
        ],
        "routes": [{"dst": "::/0", "gw": "fd00::1"}, {"dst": "192.168.0.0/16", "gw": "192.168.1.1"}],
        "dns": {"nameservers": ["10.43.0.10"], "search": ["svc.cluster.local"]},
    },
    "pod-not-found": {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "0.0.0.0/0", "gateway": "0.0.0.0"}],
    },
}


def load_shim() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("multus_shim_under_test", str(SHIM))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shim() -> ModuleType:
    return load_shim()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(RESULTS))
def test_shim_prints_what_the_library_prints(shim: ModuleType, name: str, version: str) -> None:
    value, _ = shim.convert_result(RESULTS[name], version)
    assert value == Result.from_json(RESULTS[name]).to_json(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_result_is_the_same_everywhere(shim: ModuleType, version: str) -> None:
    value, _ = shim.convert_result({"cniVersion": "1.1.0"}, version)
    assert value == empty_result(version)
