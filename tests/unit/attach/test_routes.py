"""Default-route decisions and result edits (upstream step 13; vectors V93 to V99; quirks Q10, Q11).

No root and no namespaces: the netlink half is in tests/integration/test_routes_netns.py. The one
netlink call made here is against a path that does not exist, which must fail before anything
is created.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from multusd.attach.routes import (
    GatewayActions,
    NetnsError,
    NetnsNotFoundError,
    add_default_gw,
    apply_gateway_request,
    delete_default_gw,
    delete_default_routes,
    edit_cached_gateways,
    filter_default_routes,
    gateway_actions,
    interface_exists,
    validate_ifname,
    with_default_gw,
    without_default_gw,
)
from multusd.cni.cache import CacheEntry, ResultCache
from multusd.cni.errors import CniCode, CniError
from multusd.cni.types import Result

ROOT = Path(__file__).resolve().parents[3]

V4_DEFAULT = {"dst": "0.0.0.0/0", "gw": "10.1.1.1"}
V6_DEFAULT = {"dst": "::0/0", "gw": "2001:db8::1"}  # upstream's own spelling
V6_DEFAULT_SHORT = {"dst": "::/0", "gw": "2001:db8::1"}  # what most plugins write (Q10)

#: V94: three IPv4 and three IPv6 routes, one default of each family.
SIX_ROUTES: list[dict[str, Any]] = [
    {"dst": "10.1.1.0/24", "gw": "10.1.1.1"},
    V4_DEFAULT,
    {"dst": "10.2.2.0/24", "gw": "10.1.1.1"},
    {"dst": "2001:db8:1::/64", "gw": "2001:db8::1"},
    V6_DEFAULT,
    {"dst": "2001:db8:2::/64", "gw": "2001:db8::1"},
]

TOPLEVEL_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
LEGACY_VERSIONS = [None, "", "0.1.0", "0.2.0"]


def result_0x_1x(version: str, routes: list[dict[str, Any]] | None) -> dict[str, Any]:
    ip: dict[str, Any] = {"address": "10.1.1.5/24", "gateway": "10.1.1.1", "interface": 0}
    if not version.startswith("1."):
        ip["version"] = "4"
    obj: dict[str, Any] = {
        "cniVersion": version,
        "interfaces": [{"name": "net1", "mac": "0a:58:0a:01:01:05", "sandbox": "/run/netns/pod"}],
        "ips": [
            ip,
            {"address": "2001:db8::5/64", "interface": 0, **({} if version.startswith("1.") else {"version": "6"})},
        ],
        "dns": {},
    }
    if routes is not None:
        obj["routes"] = copy.deepcopy(routes)
    return obj


def result_legacy(version: str | None, ip4_routes: list[Any] | None, ip6_routes: list[Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"ip4": {"ip": "10.1.1.5/24", "gateway": "10.1.1.1"}, "ip6": {"ip": "2001:db8::5/64"}}
    if version is not None:
        obj["cniVersion"] = version
    if ip4_routes is not None:
        obj["ip4"]["routes"] = copy.deepcopy(ip4_routes)
    if ip6_routes is not None:
        obj["ip6"]["routes"] = copy.deepcopy(ip6_routes)
    return obj


# --------------------------------------------------------------------------------------------
# gateway_actions: upstream step 13 "per delegate"
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_v4", "filter_v6", "gateways", "expected"),
    [
        # no default-route anywhere in the pod: CheckGatewayConfig never ran, nothing is touched
        (False, False, None, (False, False, ())),
        (False, False, (), (False, False, ())),
        # a delegate with gateways while CheckGatewayConfig did not run (default-network annotation
        # delegate, no networks annotation): its own defaults are replaced
        (False, False, ("10.0.0.1",), (True, True, ("10.0.0.1",))),
        (False, False, ("10.0.0.1", "fd00::1"), (True, True, ("10.0.0.1", "fd00::1"))),
        # CheckGatewayConfig ran: a delegate without default-route loses every default route
        (True, True, None, (True, True, ())),
        # Q11: default-route: [] leaves both flags set, so only deletion happens
        (True, True, (), (True, True, ())),
        # the delegate holding the v4 gateway: v6 stays filtered, v4 is replaced, all listed added
        (False, True, ("10.0.0.1",), (True, True, ("10.0.0.1",))),
        (True, False, ("fd00::1",), (True, True, ("fd00::1",))),
        (False, False, ("10.0.0.1", "fd00::1"), (True, True, ("10.0.0.1", "fd00::1"))),
        # both families filtered yet gateways listed (CheckGatewayConfig never yields this): no add
        (True, True, ("10.0.0.1",), (True, True, ())),
    ],
)
def test_gateway_actions_follow_upstream_rules(
    filter_v4: bool, filter_v6: bool, gateways: tuple[str, ...] | None, expected: tuple[bool, bool, tuple[str, ...]]
) -> None:
    actions = gateway_actions(filter_v4, filter_v6, gateways)
    assert actions == expected
    assert isinstance(actions, GatewayActions)
    delete_v4, delete_v6, add = actions  # unpacks as the plain triple
    assert (delete_v4, delete_v6, add) == (actions.delete_v4, actions.delete_v6, actions.add)


# --------------------------------------------------------------------------------------------
# Raw cached-result JSON: V93 to V99
# --------------------------------------------------------------------------------------------


def test_v93_filter_removes_every_v4_default_and_keeps_the_rest() -> None:
    routes = [V4_DEFAULT, {"dst": "10.1.1.0/24"}, V4_DEFAULT]
    assert filter_default_routes(routes, v4=True, v6=False) == [{"dst": "10.1.1.0/24"}]


def test_filter_keeps_what_it_does_not_understand() -> None:
    odd = [{"dst": "not-a-cidr"}, {"gw": "10.1.1.1"}, "junk", {"dst": 7}, {"dst": "10.0.0.0/8"}]
    assert filter_default_routes([*odd, V4_DEFAULT], v4=True, v6=True) == odd


@pytest.mark.parametrize("v6_spelling", ["::0/0", "::/0", "0::0/0", "0:0:0:0:0:0:0:0/0"], ids=str)
def test_q10_every_spelling_of_the_v6_default_is_removed(v6_spelling: str) -> None:
    routes = [{"dst": v6_spelling, "gw": "2001:db8::1"}, {"dst": "::/64"}, {"dst": "2001:db8::/32"}]
    assert filter_default_routes(routes, v4=False, v6=True) == [{"dst": "::/64"}, {"dst": "2001:db8::/32"}]
    assert filter_default_routes(routes, v4=True, v6=False) == routes


def test_a_zero_length_prefix_with_host_bits_is_a_default_route() -> None:
    # the kernel and Go's ParseCIDR both read 1.2.3.4/0 as 0.0.0.0/0
    assert filter_default_routes([{"dst": "1.2.3.4/0"}], v4=True, v6=False) == []


@pytest.mark.parametrize("version", TOPLEVEL_VERSIONS, ids=lambda v: f"[{v}]")
def test_v94_delete_one_family_keeps_the_other(version: str) -> None:
    cached = result_0x_1x(version, SIX_ROUTES)
    only_v4 = delete_default_gw(cached, v4=True, v6=False)
    assert len(only_v4["routes"]) == 5
    assert V6_DEFAULT in only_v4["routes"] and V4_DEFAULT not in only_v4["routes"]
    only_v6 = delete_default_gw(cached, v4=False, v6=True)
    assert len(only_v6["routes"]) == 5
    assert V4_DEFAULT in only_v6["routes"] and V6_DEFAULT not in only_v6["routes"]
    both = delete_default_gw(cached, v4=True, v6=True)
    assert [r["dst"] for r in both["routes"]] == ["10.1.1.0/24", "10.2.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"]
    # every other key untouched, input untouched
    assert {k: v for k, v in both.items() if k != "routes"} == {k: v for k, v in cached.items() if k != "routes"}
    assert cached == result_0x_1x(version, SIX_ROUTES)


@pytest.mark.parametrize("version", TOPLEVEL_VERSIONS, ids=lambda v: f"[{v}]")
def test_v95_last_route_deleted_drops_the_key_then_add_works(version: str) -> None:
    cached = result_0x_1x(version, [V4_DEFAULT])
    deleted = delete_default_gw(cached, v4=True, v6=False)
    assert "routes" not in deleted
    added = add_default_gw(deleted, ["10.1.1.1"])
    assert added["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


@pytest.mark.parametrize("version", LEGACY_VERSIONS, ids=lambda v: f"[{v!r}]")
def test_v96_legacy_add_goes_to_ip4_routes_and_keeps_the_v6_default(version: str | None) -> None:
    cached = result_legacy(version, None, [V6_DEFAULT])
    added = add_default_gw(cached, ["10.1.1.1"])
    assert added["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]
    assert added["ip6"]["routes"] == [V6_DEFAULT]
    assert "routes" not in added


@pytest.mark.parametrize("version", LEGACY_VERSIONS, ids=lambda v: f"[{v!r}]")
def test_legacy_delete_edits_ip4_and_ip6_routes(version: str | None) -> None:
    cached = result_legacy(version, [V4_DEFAULT, {"dst": "10.9.0.0/16"}], [V6_DEFAULT_SHORT])
    only_v4 = delete_default_gw(cached, v4=True, v6=False)
    assert only_v4["ip4"]["routes"] == [{"dst": "10.9.0.0/16"}]
    assert only_v4["ip6"]["routes"] == [V6_DEFAULT_SHORT]
    both = delete_default_gw(cached, v4=True, v6=True)
    assert "routes" not in both["ip6"]  # emptied list removed, as for top-level routes
    assert both["ip4"]["routes"] == [{"dst": "10.9.0.0/16"}]


def test_legacy_add_without_an_address_of_that_family_is_left_out() -> None:
    cached = {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.1.5/24"}}
    added = add_default_gw(cached, ["2001:db8::1", "10.1.1.1"])
    assert "ip6" not in added
    assert added["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


@pytest.mark.parametrize("version", TOPLEVEL_VERSIONS, ids=lambda v: f"[{v}]")
def test_v97_add_to_a_result_without_routes(version: str) -> None:
    added = add_default_gw(result_0x_1x(version, None), ["10.1.1.1"])
    assert added["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


def test_v98_bare_1_1_0_results() -> None:
    deleted = delete_default_gw({"cniVersion": "1.1.0", "routes": [V4_DEFAULT]}, v4=True, v6=False)
    assert deleted == {"cniVersion": "1.1.0"}
    added = add_default_gw({"cniVersion": "1.1.0"}, ["10.1.1.1"])
    assert len(added["routes"]) == 1


def test_added_v6_routes_use_the_canonical_spelling_and_parse_back() -> None:
    added = add_default_gw({"cniVersion": "1.0.0"}, ["10.1.1.1", "2001:DB8:0::1"])
    assert added["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}, {"dst": "::/0", "gw": "2001:db8::1"}]
    assert Result.from_json(added).to_json()["routes"] == added["routes"]
    # and our own later delete finds it (upstream's literal "::0/0" compare would not, Q10)
    assert "routes" not in delete_default_gw(added, v4=True, v6=True)


def test_an_ipv4_mapped_gateway_is_an_ipv4_route() -> None:
    added = add_default_gw({"cniVersion": "1.0.0"}, ["::ffff:10.1.1.1"])
    assert added["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


def test_edits_do_not_touch_their_input() -> None:
    cached = result_0x_1x("1.0.0", SIX_ROUTES)
    before = copy.deepcopy(cached)
    delete_default_gw(cached, v4=True, v6=True)["interfaces"][0]["name"] = "changed"
    add_default_gw(cached, ["10.1.1.1"])["routes"].clear()
    assert cached == before


@pytest.mark.parametrize("version", ["0.9.0", "0.5.0", "abc", "1.0.0-rc1"], ids=str)
def test_v99_unsupported_versions_are_refused(version: str) -> None:
    with pytest.raises(CniError, match=f"^not supported version: {re.escape(version)}$"):
        add_default_gw({"cniVersion": version}, ["10.1.1.1"])
    with pytest.raises(CniError, match=f"^not supported version: {re.escape(version)}$"):
        delete_default_gw({"cniVersion": version}, v4=True, v6=False)


def test_v99_a_non_string_version_is_refused() -> None:
    with pytest.raises(CniError, match=r"^not supported version: 1$"):
        add_default_gw({"cniVersion": 1}, ["10.1.1.1"])


def test_future_1x_versions_use_top_level_routes() -> None:
    assert add_default_gw({"cniVersion": "1.2.0"}, ["10.1.1.1"])["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


def test_a_bad_gateway_is_a_config_error_naming_it() -> None:
    with pytest.raises(CniError, match=r"error setting default gateway: invalid gateway address '10\.1\.1'") as info:
        add_default_gw({"cniVersion": "1.0.0"}, ["10.1.1"])
    assert info.value.code == CniCode.INVALID_NETWORK_CONFIG


def test_a_result_that_is_not_an_object_is_a_decoding_error() -> None:
    with pytest.raises(CniError) as info:
        delete_default_gw([], v4=True, v6=True)  # type: ignore[arg-type]
    assert info.value.code == CniCode.DECODING_FAILURE


# --------------------------------------------------------------------------------------------
# The Result model gives the same answer as the raw edit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", TOPLEVEL_VERSIONS, ids=lambda v: f"[{v}]")
@pytest.mark.parametrize(("v4", "v6"), [(True, False), (False, True), (True, True)], ids=["v4", "v6", "both"])
def test_model_delete_matches_raw_delete(version: str, v4: bool, v6: bool) -> None:
    cached = result_0x_1x(version, SIX_ROUTES)
    via_raw = Result.from_json(delete_default_gw(cached, v4=v4, v6=v6))
    via_model = without_default_gw(Result.from_json(cached), v4=v4, v6=v6)
    assert via_model == via_raw
    assert len(via_model.routes) == (4 if v4 and v6 else 5)


@pytest.mark.parametrize("version", [*TOPLEVEL_VERSIONS, "0.2.0"], ids=lambda v: f"[{v}]")
def test_model_add_matches_raw_add(version: str) -> None:
    cached = result_legacy(version, None, None) if version == "0.2.0" else result_0x_1x(version, None)
    gateways = ["10.1.1.1", "2001:db8::1"]
    via_raw = Result.from_json(add_default_gw(cached, gateways))
    via_model = with_default_gw(Result.from_json(cached), gateways)
    assert via_model == via_raw
    assert [str(r.dst) for r in via_model.routes] == ["0.0.0.0/0", "::/0"]


def test_model_add_in_0_2_0_is_written_under_ip4() -> None:
    result = with_default_gw(Result.from_json(result_legacy("0.2.0", None, None)), ["10.1.1.1"])
    assert result.to_json()["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]


def test_model_delete_recognises_upstream_v6_spelling() -> None:
    result = Result.from_json(result_0x_1x("1.0.0", [V6_DEFAULT, V6_DEFAULT_SHORT, {"dst": "2001:db8:1::/64"}]))
    assert [str(r.dst) for r in without_default_gw(result, v4=False, v6=True).routes] == ["2001:db8:1::/64"]


def test_model_add_refuses_a_bad_gateway() -> None:
    with pytest.raises(CniError, match="invalid gateway address"):
        with_default_gw(Result("1.0.0"), ["nope"])


# --------------------------------------------------------------------------------------------
# The libcni cache entry
# --------------------------------------------------------------------------------------------


def test_edit_cached_gateways_rewrites_the_entry(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    entry = CacheEntry(
        "macvlan1", "ctr1", "net1", config=b"{}", netns="/run/netns/x", result=result_0x_1x("1.0.0", SIX_ROUTES)
    )
    cache.save(entry)
    edit_cached_gateways(cache, "macvlan1", "ctr1", "net1", delete_v4=True, delete_v6=True, add=["10.1.1.254"])
    reloaded = cache.load("macvlan1", "ctr1", "net1")
    assert reloaded is not None and reloaded.result is not None
    dsts = [(r["dst"], r.get("gw")) for r in reloaded.result["routes"]]
    assert ("0.0.0.0/0", "10.1.1.254") in dsts
    assert all(dst not in ("::0/0", "0.0.0.0/0") or gw == "10.1.1.254" for dst, gw in dsts)
    assert (reloaded.netns, reloaded.config) == ("/run/netns/x", b"{}")


def test_edit_cached_gateways_without_anything_to_do_reads_nothing(tmp_path: Path) -> None:
    edit_cached_gateways(ResultCache(str(tmp_path)), "n", "c", "net1", delete_v4=False, delete_v6=False, add=())


def test_edit_cached_gateways_on_a_missing_entry_says_which(tmp_path: Path) -> None:
    with pytest.raises(CniError, match=r"^error deleting default gateway in cache: no cached result for n/c/net1$"):
        edit_cached_gateways(ResultCache(str(tmp_path)), "n", "c", "net1", delete_v4=True, delete_v6=False, add=())
    with pytest.raises(CniError, match=r"^error setting default gateway in cache: no cached result"):
        edit_cached_gateways(
            ResultCache(str(tmp_path)), "n", "c", "net1", delete_v4=False, delete_v6=False, add=["1.1.1.1"]
        )


def test_edit_cached_gateways_reports_an_unsupported_version_with_the_cache_prefix(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.save(CacheEntry("n", "c", "net1", result={"cniVersion": "0.9.0"}))
    with pytest.raises(CniError, match=r"^error setting default gateway in cache: not supported version: 0\.9\.0$"):
        edit_cached_gateways(cache, "n", "c", "net1", delete_v4=False, delete_v6=False, add=["1.1.1.1"])


# --------------------------------------------------------------------------------------------
# Namespace errors (no namespace is made: the path does not exist)
# --------------------------------------------------------------------------------------------


async def test_a_missing_netns_is_code_8_and_nothing_is_created(tmp_path: Path) -> None:
    path = str(tmp_path / "gone-netns")
    with pytest.raises(NetnsNotFoundError) as info:
        await interface_exists(path, "eth0")
    err = info.value
    assert err.code == CniCode.INVALID_NETNS and err.path == path
    assert err.msg == f'no net namespace {path} found: failed to Statfs "{path}": no such file or directory'
    for call in (
        delete_default_routes(path, "net1"),
        apply_gateway_request(path, "net1", delete_v4=True, delete_v6=False, gateways=["10.0.0.1"]),
    ):
        with pytest.raises(
            CniError, match=f"^error deleting default gateway on net1: no net namespace {re.escape(path)} found"
        ):
            await call
    with pytest.raises(CniError, match=r"^validateIfName: no net namespace .* found: failed to Statfs") as info2:
        await validate_ifname(path, "net1")
    assert info2.value.code == CniCode.INVALID_NETNS
    assert not os.path.lexists(path)


async def test_nothing_to_apply_does_not_enter_the_namespace(tmp_path: Path) -> None:
    await apply_gateway_request(str(tmp_path / "gone"), "net1", delete_v4=False, delete_v6=False, gateways=())


def test_netns_errors_survive_copy_and_pickle() -> None:
    err = NetnsNotFoundError("/run/netns/x", "why")
    for clone in (copy.copy(err), pickle.loads(pickle.dumps(err))):
        assert type(clone) is NetnsNotFoundError and clone == err and clone.path == "/run/netns/x"
    assert isinstance(err, NetnsError) and isinstance(err, CniError)


def test_importing_routes_loads_neither_pyroute2_nor_http_stacks() -> None:
    code = (
        "import sys, json, multusd.attach.routes; "
        "print(json.dumps([m for m in ('pyroute2', 'aiohttp', 'kubernetes_asyncio') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
