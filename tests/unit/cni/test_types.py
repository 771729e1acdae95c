"""Versions, the result model, and conversion between every pair of CNI versions.

Expected JSON here is written by hand from the CNI spec and libcni's ``pkg/types/{020,040,100}``
(see reference/upstream-behaviour.md §1.5/§1.6), never produced by the code under test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from ipaddress import (
    IPv4Interface,
    IPv4Network,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multusd.cni.errors import CniCode, CniError
from multusd.cni.types import (
    DNS,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    Interface,
    IPConfig,
    Result,
    Route,
    convert_result,
    empty_result,
    has_check,
    has_gc,
    has_prev_result_on_del,
    has_status,
    parse_version,
    version_family,
    version_ge,
)

ALL_SPEC_VERSIONS = list(SUPPORTED_VERSIONS)
FAMILY = {"0.1.0": "020", "0.2.0": "020", "0.3.0": "040", "0.3.1": "040", "0.4.0": "040"}
FAMILY |= {"1.0.0": "100", "1.1.0": "100"}
FAMILY_RANK = {"020": 0, "040": 1, "100": 2}
PAIRS = [(src, dst) for src in ALL_SPEC_VERSIONS for dst in ALL_SPEC_VERSIONS]
PAIR_IDS = [f"{src}->{dst}" for src, dst in PAIRS]


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------


def test_supported_versions_are_libcnis_all() -> None:
    assert SUPPORTED_VERSIONS == ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert LATEST_VERSION == "1.1.0"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0.1.0", (0, 1, 0)),
        ("0.3.1", (0, 3, 1)),
        ("1.1.0", (1, 1, 0)),
        ("", (0, 1, 0)),  # libcni ParseVersion: no version declared == 0.1.0
        ("1", (1, 0, 0)),
        ("1.2", (1, 2, 0)),
        ("10.20.30", (10, 20, 30)),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("junk", ["1.2.3.4", "a.b.c", "1.x", "1..0", " 1.0.0", "-1.0.0", "+1.0.0", "v1.0.0", "."])
def test_parse_version_refuses_junk(junk: str) -> None:
    with pytest.raises(CniError) as info:
        parse_version(junk)
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION


def test_parse_version_messages_quote_like_go() -> None:
    with pytest.raises(CniError, match=r'^invalid version "1.2.3.4": too many parts$'):
        parse_version("1.2.3.4")
    with pytest.raises(CniError, match=r'minor version part "x"'):
        parse_version("1.x.0")


def test_version_ge_is_numeric_not_lexical() -> None:
    assert version_ge("0.10.0", "0.4.0")
    assert version_ge("1.0.0", "0.4.0")
    assert version_ge("0.4.0", "0.4.0")
    assert not version_ge("0.3.1", "0.4.0")
    assert not version_ge("", "0.2.0")


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS, ids=[f"[{v}]" for v in ALL_SPEC_VERSIONS])
def test_feature_predicates(version: str) -> None:
    at_least_040 = version in ("0.4.0", "1.0.0", "1.1.0")
    assert has_check(version) is at_least_040
    assert has_prev_result_on_del(version) is at_least_040
    assert has_gc(version) is (version == "1.1.0")
    assert has_status(version) is (version == "1.1.0")


def test_predicates_read_empty_version_as_010() -> None:
    assert not has_check("")
    assert not has_gc("")


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS, ids=[f"[{v}]" for v in ALL_SPEC_VERSIONS])
def test_version_family(version: str) -> None:
    assert version_family(version) == FAMILY[version]


@pytest.mark.parametrize("version", ["0.9.0", "1.0", "2.0.0", "1.0.0-rc1"])
def test_version_family_knows_only_registered_spellings(version: str) -> None:
    with pytest.raises(CniError) as info:
        version_family(version)
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION


def test_version_family_of_empty_is_legacy() -> None:
    assert version_family("") == "020"


# --------------------------------------------------------------------------------------------
# Representative results, one per family, and what every other family makes of them
# --------------------------------------------------------------------------------------------

DNS_FULL = {
    "nameservers": ["10.43.0.10"],
    "domain": "cluster.local",
    "search": ["default.svc.cluster.local", "svc.cluster.local"],
    "options": ["ndots:5"],
}


def sample_100(v: str) -> dict[str, Any]:
    """Dual stack, two IPv4 addresses, 1.x-only interface fields, routes with every field."""
    return {
        "cniVersion": v,
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:2a:00:01"},
            {"name": "veth1234", "mac": "6e:1c:2a:3b:4c:5d", "mtu": 1450},
            {
                "name": "eth0",
                "mac": "0a:58:0a:2a:00:09",
                "mtu": 1450,
                "sandbox": "/var/run/netns/cni-1",
                "socketPath": "/run/vhost-user.sock",
                "pciID": "0000:00:1f.6",
            },
        ],
        "ips": [
            {"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 2},
            {"address": "10.42.0.10/24", "interface": 2},
            {"address": "fd00:42::9/64", "gateway": "fd00:42::1", "interface": 2},
        ],
        "routes": [
            {
                "dst": "10.42.0.0/16",
                "gw": "10.42.0.1",
                "mtu": 1400,
                "advmss": 1360,
                "priority": 10,
                "table": 0,
                "scope": 253,
            },
            {"dst": "0.0.0.0/0", "gw": "10.42.0.1"},
            {"dst": "::/0", "gw": "fd00:42::1"},
        ],
        "dns": DNS_FULL,
    }


def sample_040(v: str) -> dict[str, Any]:
    """An IPv6 route listed first, an IP without interface or gateway, a route with priority."""
    return {
        "cniVersion": v,
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:2a:00:01"},
            {"name": "eth0", "mac": "0a:58:0a:2a:00:09", "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [
            {"version": "4", "interface": 1, "address": "10.42.0.9/24", "gateway": "10.42.0.1"},
            {"version": "6", "address": "fd00:42::9/64"},
        ],
        "routes": [{"dst": "fd00::/8"}, {"dst": "0.0.0.0/0", "gw": "10.42.0.1", "priority": 5}],
        "dns": {"nameservers": ["10.43.0.10"]},
    }


def sample_020(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "ip4": {
            "ip": "10.1.2.3/24",
            "gateway": "10.1.2.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}, {"dst": "192.168.0.0/16"}],
        },
        "ip6": {"ip": "2001:db8::3/64", "routes": [{"dst": "::/0", "gw": "2001:db8::1"}]},
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com"},
    }


SAMPLES: dict[str, Callable[[str], dict[str, Any]]] = {"100": sample_100, "040": sample_040, "020": sample_020}


def sample(version: str) -> dict[str, Any]:
    return SAMPLES[FAMILY[version]](version)


def sample_100_as_040(v: str) -> dict[str, Any]:
    """Interfaces lose mtu/socketPath/pciID, IPs gain "version"; routes are copied whole (libcni)."""
    return {
        "cniVersion": v,
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:2a:00:01"},
            {"name": "veth1234", "mac": "6e:1c:2a:3b:4c:5d"},
            {"name": "eth0", "mac": "0a:58:0a:2a:00:09", "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [
            {"version": "4", "interface": 2, "address": "10.42.0.9/24", "gateway": "10.42.0.1"},
            {"version": "4", "interface": 2, "address": "10.42.0.10/24"},
            {"version": "6", "interface": 2, "address": "fd00:42::9/64", "gateway": "fd00:42::1"},
        ],
        "routes": sample_100(v)["routes"],
        "dns": DNS_FULL,
    }


def sample_100_as_020(v: str) -> dict[str, Any]:
    """First address of each family; routes split by dst family, dst/gw only; no interfaces."""
    return {
        "cniVersion": v,
        "ip4": {
            "ip": "10.42.0.9/24",
            "gateway": "10.42.0.1",
            "routes": [{"dst": "10.42.0.0/16", "gw": "10.42.0.1"}, {"dst": "0.0.0.0/0", "gw": "10.42.0.1"}],
        },
        "ip6": {"ip": "fd00:42::9/64", "gateway": "fd00:42::1", "routes": [{"dst": "::/0", "gw": "fd00:42::1"}]},
        "dns": DNS_FULL,
    }


def sample_040_as_100(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:2a:00:01"},
            {"name": "eth0", "mac": "0a:58:0a:2a:00:09", "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [{"interface": 1, "address": "10.42.0.9/24", "gateway": "10.42.0.1"}, {"address": "fd00:42::9/64"}],
        "routes": [{"dst": "fd00::/8"}, {"dst": "0.0.0.0/0", "gw": "10.42.0.1", "priority": 5}],
        "dns": {"nameservers": ["10.43.0.10"]},
    }


def sample_040_as_020(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "ip4": {"ip": "10.42.0.9/24", "gateway": "10.42.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.42.0.1"}]},
        "ip6": {"ip": "fd00:42::9/64", "routes": [{"dst": "fd00::/8"}]},
        "dns": {"nameservers": ["10.43.0.10"]},
    }


def sample_020_as_040(v: str) -> dict[str, Any]:
    """ip4/ip6 become ips without an interface index; ip4's routes, then ip6's."""
    return {
        "cniVersion": v,
        "ips": [
            {"version": "4", "address": "10.1.2.3/24", "gateway": "10.1.2.1"},
            {"version": "6", "address": "2001:db8::3/64"},
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.2.1"},
            {"dst": "192.168.0.0/16"},
            {"dst": "::/0", "gw": "2001:db8::1"},
        ],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com"},
    }


def sample_020_as_100(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}, {"address": "2001:db8::3/64"}],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.2.1"},
            {"dst": "192.168.0.0/16"},
            {"dst": "::/0", "gw": "2001:db8::1"},
        ],
        "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com"},
    }


EXPECTED: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("100", "100"): sample_100,
    ("100", "040"): sample_100_as_040,
    ("100", "020"): sample_100_as_020,
    ("040", "100"): sample_040_as_100,
    ("040", "040"): sample_040,
    ("040", "020"): sample_040_as_020,
    ("020", "100"): sample_020_as_100,
    ("020", "040"): sample_020_as_040,
    ("020", "020"): sample_020,
}


def sample_100_back_from_040(v: str) -> dict[str, Any]:
    """What a 1.x result still holds after a trip through 0.4.0: only interface extras are gone."""
    obj = sample_100(v)
    obj["interfaces"] = [
        {"name": "cni0", "mac": "0a:58:0a:2a:00:01"},
        {"name": "veth1234", "mac": "6e:1c:2a:3b:4c:5d"},
        {"name": "eth0", "mac": "0a:58:0a:2a:00:09", "sandbox": "/var/run/netns/cni-1"},
    ]
    return obj


def sample_100_back_from_020(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "ips": [
            {"address": "10.42.0.9/24", "gateway": "10.42.0.1"},
            {"address": "fd00:42::9/64", "gateway": "fd00:42::1"},
        ],
        "routes": [
            {"dst": "10.42.0.0/16", "gw": "10.42.0.1"},
            {"dst": "0.0.0.0/0", "gw": "10.42.0.1"},
            {"dst": "::/0", "gw": "fd00:42::1"},
        ],
        "dns": DNS_FULL,
    }


def sample_040_back_from_020(v: str) -> dict[str, Any]:
    return {
        "cniVersion": v,
        "ips": [
            {"version": "4", "address": "10.42.0.9/24", "gateway": "10.42.0.1"},
            {"version": "6", "address": "fd00:42::9/64"},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.42.0.1"}, {"dst": "fd00::/8"}],
        "dns": {"nameservers": ["10.43.0.10"]},
    }


LOSSY_ROUND_TRIP: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("100", "040"): sample_100_back_from_040,
    ("100", "020"): sample_100_back_from_020,
    ("040", "020"): sample_040_back_from_020,
}


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_conversion_matrix(src: str, dst: str) -> None:
    converted = convert_result(sample(src), dst)
    assert converted == EXPECTED[(FAMILY[src], FAMILY[dst])](dst)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_round_trip_loses_exactly_what_the_target_cannot_hold(src: str, dst: str) -> None:
    back = convert_result(convert_result(sample(src), dst), src)
    lossy = LOSSY_ROUND_TRIP.get((FAMILY[src], FAMILY[dst]))
    if lossy is None:
        assert FAMILY_RANK[FAMILY[src]] <= FAMILY_RANK[FAMILY[dst]]
        assert back == sample(src)
    else:
        assert back == lossy(src)
        assert back != sample(src)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=PAIR_IDS)
def test_result_with_version_agrees_with_to_json(src: str, dst: str) -> None:
    result = Result.from_json(sample(src))
    assert result.cni_version == src
    converted = result.with_version(dst)
    assert converted.cni_version == dst
    assert converted.to_json() == result.to_json(dst)


def test_convert_result_does_not_touch_its_input() -> None:
    obj = sample_100("1.0.0")
    before = copy.deepcopy(obj)
    convert_result(obj, "0.2.0")
    assert obj == before


# --------------------------------------------------------------------------------------------
# The 0.1.0/0.2.0 legacy form
# --------------------------------------------------------------------------------------------


def test_legacy_parse_builds_hub_values() -> None:
    result = Result.from_json(sample_020("0.2.0"))
    assert result == Result(
        cni_version="0.2.0",
        ips=(
            IPConfig(ip_interface("10.1.2.3/24"), ip_address("10.1.2.1")),
            IPConfig(ip_interface("2001:db8::3/64")),
        ),
        routes=(
            Route(ip_network("0.0.0.0/0"), ip_address("10.1.2.1")),
            Route(ip_network("192.168.0.0/16")),
            Route(ip_network("::/0"), ip_address("2001:db8::1")),
        ),
        dns=DNS(nameservers=("8.8.8.8",), domain="example.com"),
    )


def test_legacy_ipv6_only() -> None:
    obj = {"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64", "gateway": "fd00::1"}]}
    assert convert_result(obj, "0.2.0") == {
        "cniVersion": "0.2.0",
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1"},
        "dns": {},
    }


def test_legacy_drops_routes_of_a_family_without_address() -> None:
    obj = {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.0.0.5/8"}],
        "routes": [{"dst": "::/0"}, {"dst": "10.0.0.0/8", "gw": "10.0.0.1"}],
    }
    assert convert_result(obj, "0.1.0") == {
        "cniVersion": "0.1.0",
        "ip4": {"ip": "10.0.0.5/8", "routes": [{"dst": "10.0.0.0/8", "gw": "10.0.0.1"}]},
        "dns": {},
    }


@pytest.mark.parametrize("src", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("dst", ["0.1.0", "0.2.0"])
def test_no_ip_cannot_go_down_to_legacy(src: str, dst: str) -> None:
    obj = {"cniVersion": src, "interfaces": [{"name": "eth0"}], "routes": [{"dst": "0.0.0.0/0"}]}
    with pytest.raises(CniError) as info:
        convert_result(obj, dst)
    assert info.value.msg == "cannot convert: no valid IP addresses"
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION


@pytest.mark.parametrize(("src", "dst"), [("0.1.0", "0.2.0"), ("0.2.0", "0.1.0"), ("0.2.0", "0.2.0")])
def test_empty_legacy_result_stays_legal_inside_legacy(src: str, dst: str) -> None:
    # libcni's 0.1.0 <-> 0.2.0 converters do not require an IP; only a 0.3.0+ result going down does.
    assert convert_result({"cniVersion": src}, dst) == {"cniVersion": dst, "dns": {}}


def test_empty_legacy_result_goes_up() -> None:
    assert convert_result({"cniVersion": "0.2.0"}, "1.0.0") == {"cniVersion": "1.0.0"}
    assert convert_result({"cniVersion": "0.2.0"}, "0.4.0") == {"cniVersion": "0.4.0", "dns": {}}


# --------------------------------------------------------------------------------------------
# Empty results (multusd fixes upstream quirk Q6)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.1.0", {"cniVersion": "0.1.0", "dns": {}}),
        ("0.2.0", {"cniVersion": "0.2.0", "dns": {}}),
        ("0.3.0", {"cniVersion": "0.3.0", "dns": {}}),
        ("0.3.1", {"cniVersion": "0.3.1", "dns": {}}),
        ("0.4.0", {"cniVersion": "0.4.0", "dns": {}}),
        ("1.0.0", {"cniVersion": "1.0.0"}),
        ("1.1.0", {"cniVersion": "1.1.0"}),
    ],
    ids=[f"[{v}]" for v in ALL_SPEC_VERSIONS],
)
def test_empty_result_in_every_version(version: str, expected: dict[str, Any]) -> None:
    assert empty_result(version) == expected
    parsed = Result.from_json(empty_result(version))
    assert parsed == Result(version)
    assert parsed.to_json() == expected


def test_empty_result_of_empty_version_is_010() -> None:
    assert empty_result("") == {"cniVersion": "0.1.0", "dns": {}}


def test_empty_result_refuses_unknown_version() -> None:
    with pytest.raises(CniError) as info:
        empty_result("0.9.0")
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION


# --------------------------------------------------------------------------------------------
# Versions of results: unsupported, missing, defaulted
# --------------------------------------------------------------------------------------------


def test_unsupported_result_version() -> None:
    with pytest.raises(CniError) as info:
        Result.from_json({"cniVersion": "0.9.0", "ips": []})
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION
    assert info.value.msg == 'unsupported CNI result version "0.9.0"'


def test_unsupported_target_version() -> None:
    result = Result.from_json(sample_100("1.0.0"))
    with pytest.raises(CniError) as info:
        result.to_json("0.9.0")
    assert info.value.code == CniCode.INCOMPATIBLE_CNI_VERSION
    assert info.value.msg == "no converter for CNI result version 1.0.0 to 0.9.0"


def test_result_refuses_unknown_version_at_construction() -> None:
    with pytest.raises(CniError):
        Result("0.9.0")


@pytest.mark.parametrize("default", ALL_SPEC_VERSIONS, ids=[f"[{v}]" for v in ALL_SPEC_VERSIONS])
@pytest.mark.parametrize("absent", [None, ""], ids=["missing", "empty"])
def test_result_without_version_takes_default(default: str, absent: str | None) -> None:
    obj = sample(default)
    if absent is None:
        del obj["cniVersion"]
    else:
        obj["cniVersion"] = absent
    result = Result.from_json(obj, default_version=default)
    assert result.cni_version == default
    assert result.to_json() == sample(default)


def test_result_without_version_and_default_is_010() -> None:
    # libcni reads a config without cniVersion as 0.1.0, and fixupResultVersion uses that.
    result = Result.from_json({"ip4": {"ip": "10.0.0.2/24"}})
    assert result.cni_version == "0.1.0"
    assert result.ips == (IPConfig(ip_interface("10.0.0.2/24")),)


def test_result_version_wins_over_default() -> None:
    result = Result.from_json(sample_100("1.1.0"), default_version="0.3.1")
    assert result.cni_version == "1.1.0"


def test_null_result_is_empty_in_default_version() -> None:
    # libcni's fixupResultVersion turns a plugin's "null" output into an empty result.
    assert Result.from_bytes(b"null", default_version="1.0.0") == Result("1.0.0")


def test_convert_result_uses_default_version() -> None:
    obj = {"ips": [{"address": "10.0.0.2/24"}]}
    assert convert_result(obj, "0.2.0", default_version="1.0.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/24"},
        "dns": {},
    }


def test_empty_target_means_010() -> None:
    result = Result.from_json(sample_020("0.2.0"))
    assert result.with_version("").cni_version == "0.1.0"
    assert result.to_json("") == sample_020("0.1.0")


# --------------------------------------------------------------------------------------------
# Parsing: strict about types, tolerant where libcni is
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "result"),
        ("x", "result"),
        ({"cniVersion": 1.0}, "cniVersion"),
        ({"cniVersion": "1.0.0", "ips": {}}, "ips"),
        ({"cniVersion": "1.0.0", "ips": [{}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": None}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/255.0.0.0"}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/33"}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "fe80::1%eth0/64"}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": 167772161}]}, "ips[0].address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "gateway": "x"}]}, "ips[0].gateway"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "gateway": 1}]}, "ips[0].gateway"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": -1}]}, "ips[0].interface"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": "0"}]}, "ips[0].interface"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": True}]}, "ips[0].interface"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": 1.0}]}, "ips[0].interface"),
        ({"cniVersion": "1.0.0", "ips": ["10.0.0.1/8"]}, "ips[0]"),
        ({"cniVersion": "1.0.0", "interfaces": [None]}, "interfaces[0]"),
        ({"cniVersion": "1.0.0", "interfaces": [{"name": 0}]}, "interfaces[0].name"),
        ({"cniVersion": "1.0.0", "interfaces": [{"name": "e", "mtu": "1500"}]}, "interfaces[0].mtu"),
        ({"cniVersion": "1.0.0", "routes": "0.0.0.0/0"}, "routes"),
        ({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}, "routes[0].dst"),
        ({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "table": "main"}]}, "routes[0].table"),
        ({"cniVersion": "1.0.0", "dns": []}, "dns"),
        ({"cniVersion": "1.0.0", "dns": {"nameservers": "8.8.8.8"}}, "dns.nameservers"),
        ({"cniVersion": "1.0.0", "dns": {"search": ["a", 1]}}, "dns.search[1]"),
        ({"cniVersion": "0.4.0", "ips": [{"version": 4, "address": "10.0.0.1/8"}]}, "ips[0].version"),
        ({"cniVersion": "0.2.0", "ip4": "10.0.0.1/8"}, "ip4"),
        ({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}, "ip4.ip"),
        ({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::1/64", "routes": [{"dst": 1}]}}, "ip6.routes[0].dst"),
    ],
)
def test_bad_input_names_the_field(obj: Any, field: str) -> None:
    with pytest.raises(CniError) as info:
        Result.from_json(obj)
    assert info.value.code == CniCode.DECODING_FAILURE
    assert f" {field}: " in info.value.msg


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b'{"cniVersion": NaN}', b"\xff\xfe{}"])
def test_from_bytes_refuses_non_json(data: bytes) -> None:
    with pytest.raises(CniError) as info:
        Result.from_bytes(data)
    assert info.value.code == CniCode.DECODING_FAILURE
    assert info.value.msg.startswith("failed to unmarshal raw result: ")


def test_from_bytes_parses_plugin_stdout() -> None:
    data = json.dumps(sample_100("1.1.0"), indent=4).encode()
    assert Result.from_bytes(data).to_json() == sample_100("1.1.0")


def test_tolerated_like_go() -> None:
    obj = {
        "cniVersion": "1.0.0",
        "unknown": {"kept": False},
        "interfaces": [{"name": "eth0", "mac": None, "extra": 1}],
        "ips": [{"address": "10.0.0.5/8", "gateway": "", "interface": 7}],  # index out of range
        "routes": [{"dst": "10.9.8.7/8", "gw": None, "mtu": None, "table": None}],
        "dns": None,
    }
    result = Result.from_json(obj)
    assert result == Result(
        "1.0.0",
        interfaces=(Interface("eth0"),),
        ips=(IPConfig(ip_interface("10.0.0.5/8"), None, 7),),
        routes=(Route(ip_network("10.0.0.0/8")),),
    )


def test_040_ignores_1x_interface_fields_and_recomputes_ip_version() -> None:
    obj = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mtu": 9000, "socketPath": "/s", "pciID": "p"}],
        "ips": [{"version": "4", "address": "fd00::2/64"}, {"address": "10.0.0.2/8"}],
    }
    assert Result.from_json(obj).to_json() == {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0"}],
        "ips": [{"version": "6", "address": "fd00::2/64"}, {"version": "4", "address": "10.0.0.2/8"}],
        "dns": {},
    }


def test_100_ignores_legacy_keys_and_020_ignores_new_ones() -> None:
    assert Result.from_json({"cniVersion": "1.0.0", "ip4": {"ip": "10.0.0.1/8"}}) == Result("1.0.0")
    assert Result.from_json({"cniVersion": "0.2.0", "ips": [{"address": "10.0.0.1/8"}]}) == Result("0.2.0")


def test_address_keeps_host_bits_and_types_are_stdlib() -> None:
    result = Result.from_json(sample_100("1.0.0"))
    first = result.ips[0]
    assert isinstance(first.address, IPv4Interface)
    assert str(first.address) == "10.42.0.9/24"
    assert isinstance(result.ips[2].address, IPv6Interface)
    assert isinstance(result.routes[0].dst, IPv4Network)
    assert isinstance(result.routes[2].dst, IPv6Network)
    assert result.interfaces[2].socket_path == "/run/vhost-user.sock"
    assert result.interfaces[2].pci_id == "0000:00:1f.6"
    assert result.routes[0].table == 0
    assert result.routes[1].table is None


def test_results_are_hashable_values() -> None:
    a = Result.from_json(sample_100("1.0.0"))
    b = Result.from_json(sample_100("1.0.0"))
    assert a == b
    assert hash(a) == hash(b)
    assert Result("1.0.0").dns == DNS()


# --------------------------------------------------------------------------------------------
# Goldens: a flannel (bridge + host-local) result as the Go shim prints it
# --------------------------------------------------------------------------------------------

FLANNEL = Result(
    cni_version="1.1.0",
    interfaces=(
        Interface("cni0", mac="0a:58:0a:2a:00:01"),
        Interface("veth5c6d7e8f", mac="d2:7e:51:3a:0b:4c"),
        Interface("eth0", mac="0a:58:0a:2a:00:09", sandbox="/var/run/netns/cni-8d5b9a6c"),
    ),
    ips=(IPConfig(ip_interface("10.42.0.9/24"), ip_address("10.42.0.1"), 2),),
    routes=(Route(ip_network("10.42.0.0/16")), Route(ip_network("0.0.0.0/0"), ip_address("10.42.0.1"))),
)

# libcni 1.x marshals through a map: keys sorted at every level; empty dns left out.
FLANNEL_100 = """{
    "cniVersion": "1.0.0",
    "interfaces": [
        {
            "mac": "0a:58:0a:2a:00:01",
            "name": "cni0"
        },
        {
            "mac": "d2:7e:51:3a:0b:4c",
            "name": "veth5c6d7e8f"
        },
        {
            "mac": "0a:58:0a:2a:00:09",
            "name": "eth0",
            "sandbox": "/var/run/netns/cni-8d5b9a6c"
        }
    ],
    "ips": [
        {
            "address": "10.42.0.9/24",
            "gateway": "10.42.0.1",
            "interface": 2
        }
    ],
    "routes": [
        {
            "dst": "10.42.0.0/16"
        },
        {
            "dst": "0.0.0.0/0",
            "gw": "10.42.0.1"
        }
    ]
}"""

# libcni 0.x marshals its structs: field order, "version" computed, dns always present.
FLANNEL_031 = """{
    "cniVersion": "0.3.1",
    "interfaces": [
        {
            "name": "cni0",
            "mac": "0a:58:0a:2a:00:01"
        },
        {
            "name": "veth5c6d7e8f",
            "mac": "d2:7e:51:3a:0b:4c"
        },
        {
            "name": "eth0",
            "mac": "0a:58:0a:2a:00:09",
            "sandbox": "/var/run/netns/cni-8d5b9a6c"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 2,
            "address": "10.42.0.9/24",
            "gateway": "10.42.0.1"
        }
    ],
    "routes": [
        {
            "dst": "10.42.0.0/16"
        },
        {
            "dst": "0.0.0.0/0",
            "gw": "10.42.0.1"
        }
    ],
    "dns": {}
}"""


@pytest.mark.parametrize(("version", "golden"), [("1.0.0", FLANNEL_100), ("0.3.1", FLANNEL_031)])
def test_flannel_golden(version: str, golden: str) -> None:
    obj = FLANNEL.to_json(version)
    assert obj == json.loads(golden)  # key-order independent
    assert json.dumps(obj, indent=4) == golden  # and byte for byte what the Go shim prints
    assert Result.from_json(json.loads(golden)) == FLANNEL.with_version(version)


def test_daemon_response_shape_of_upstream_doc() -> None:
    # reference §1.5: the inner result of {"Result": …}, compact, keys sorted.
    result = Result(
        "1.1.0",
        interfaces=(Interface("eth0", mac="0a:58:0a:2a:00:09", sandbox="/var/run/netns/x"),),
        ips=(IPConfig(ip_interface("10.42.0.9/24"), ip_address("10.42.0.1"), 2),),
        routes=(Route(ip_network("0.0.0.0/0"), ip_address("10.42.0.1")),),
    )
    assert json.dumps(result.to_json(), separators=(",", ":")) == (
        '{"cniVersion":"1.1.0","interfaces":[{"mac":"0a:58:0a:2a:00:09","name":"eth0",'
        '"sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.42.0.9/24","gateway":"10.42.0.1",'
        '"interface":2}],"routes":[{"dst":"0.0.0.0/0","gw":"10.42.0.1"}]}'
    )


def test_1x_keys_sorted_0x_keys_in_struct_order() -> None:
    full_route = {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1, "advmss": 2, "priority": 3}
    full_route |= {"table": 4, "scope": 5}
    obj = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "e", "mac": "m", "mtu": 1, "sandbox": "s", "socketPath": "p", "pciID": "i"}],
        "ips": [{"address": "10.0.0.2/8", "gateway": "10.0.0.1", "interface": 0}],
        "routes": [full_route],
        "dns": DNS_FULL,
    }
    r100 = convert_result(obj, "1.1.0")
    assert list(r100) == ["cniVersion", "dns", "interfaces", "ips", "routes"]
    assert list(r100["interfaces"][0]) == ["mac", "mtu", "name", "pciID", "sandbox", "socketPath"]
    assert list(r100["routes"][0]) == ["advmss", "dst", "gw", "mtu", "priority", "scope", "table"]
    assert list(r100["dns"]) == ["domain", "nameservers", "options", "search"]
    r040 = convert_result(obj, "0.4.0")
    assert list(r040) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    assert list(r040["ips"][0]) == ["version", "interface", "address", "gateway"]
    assert list(r040["routes"][0]) == ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"]
    assert list(r040["dns"]) == ["nameservers", "domain", "search", "options"]
    r020 = convert_result(obj, "0.2.0")
    assert list(r020) == ["cniVersion", "ip4", "dns"]
    assert list(r020["ip4"]) == ["ip", "gateway", "routes"]


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

ipv4_interfaces = st.builds(lambda a, p: IPv4Interface((a, p)), st.ip_addresses(v=4), st.integers(0, 32))
ipv6_interfaces = st.builds(lambda a, p: IPv6Interface((a, p)), st.ip_addresses(v=6), st.integers(0, 128))
networks = st.one_of(ipv4_interfaces, ipv6_interfaces).map(lambda i: i.network)
gateways = st.none() | st.ip_addresses()
small_ints = st.integers(-(2**31), 2**31 - 1)
texts = st.text(max_size=12)

interfaces = st.builds(Interface, name=texts, mac=texts, mtu=small_ints, sandbox=texts, socket_path=texts, pci_id=texts)
ip_configs = st.builds(
    IPConfig,
    address=st.one_of(ipv4_interfaces, ipv6_interfaces),
    gateway=gateways,
    interface=st.none() | st.integers(0, 8),
)
routes = st.builds(
    Route,
    dst=networks,
    gw=gateways,
    mtu=small_ints,
    advmss=small_ints,
    priority=small_ints,
    table=st.none() | small_ints,
    scope=st.none() | small_ints,
)
dns_values = st.builds(
    DNS,
    nameservers=st.lists(texts, max_size=3).map(tuple),
    domain=texts,
    search=st.lists(texts, max_size=3).map(tuple),
    options=st.lists(texts, max_size=3).map(tuple),
)
results = st.builds(
    Result,
    cni_version=st.sampled_from(ALL_SPEC_VERSIONS),
    interfaces=st.lists(interfaces, max_size=3).map(tuple),
    ips=st.lists(ip_configs, max_size=4).map(tuple),
    routes=st.lists(routes, max_size=4).map(tuple),
    dns=dns_values,
)


@given(results)
def test_printing_is_stable_in_every_version(result: Result) -> None:
    for version in ALL_SPEC_VERSIONS:
        try:
            printed = result.to_json(version)
        except CniError as exc:
            assert exc.msg == "cannot convert: no valid IP addresses"
            assert FAMILY[version] == "020"
            assert FAMILY[result.cni_version] != "020"
            assert not result.ips
            continue
        wire = json.loads(json.dumps(printed))
        reparsed = Result.from_json(wire)
        assert reparsed.cni_version == version
        assert reparsed.to_json(version) == printed
        if FAMILY[result.cni_version] == "100" and FAMILY[version] != "020":
            assert reparsed == result.with_version(version)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
result_keys = st.sampled_from(["cniVersion", "interfaces", "ips", "routes", "dns", "ip4", "ip6"])
raw_results = st.dictionaries(result_keys, json_values | st.sampled_from(ALL_SPEC_VERSIONS), max_size=7)


@given(raw_results)
def test_any_json_gives_a_result_or_a_cni_error(obj: dict[str, Any]) -> None:
    try:
        result = Result.from_json(obj, default_version="1.0.0")
    except CniError as exc:
        assert exc.code in (CniCode.DECODING_FAILURE, CniCode.INCOMPATIBLE_CNI_VERSION)
    else:
        assert isinstance(result, Result)
