"""Netconf parsing, loading from disk, injection and libcni's validators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multusd.cni.conf import (
    ConfList,
    ConfNotFoundError,
    PluginConf,
    conf_list_from_conf,
    inject,
    load_conf_by_name,
    load_conf_dir,
    load_conf_file,
    parse_conf_list,
    parse_plugin_conf,
    validate_container_id,
    validate_ifname,
    validate_network_name,
)
from multusd.cni.errors import CniCode, CniError

K3S_FLANNEL_CONFLIST: dict[str, Any] = {
    "name": "cbr0",
    "cniVersion": "1.0.0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "forceAddress": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    ],
}


def write(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# -- single confs ------------------------------------------------------------------------------


def test_plugin_conf_keeps_raw_and_exact_bytes() -> None:
    data = b'{"cniVersion":"0.4.0","name":"mv","type":"macvlan","master":"eth0","capabilities":{"ips":true}}'
    conf = parse_plugin_conf(data)
    assert (conf.name, conf.type, conf.cni_version) == ("mv", "macvlan", "0.4.0")
    assert conf.capabilities == {"ips": True}
    assert conf.raw["master"] == "eth0"
    assert conf.data == data


def test_plugin_conf_reads_struct_fields_case_insensitively_as_go() -> None:
    conf = parse_plugin_conf({"Type": "bridge", "CNIVersion": "1.0.0", "Name": "x"})
    assert (conf.type, conf.cni_version, conf.name) == ("bridge", "1.0.0", "x")


def test_plugin_conf_without_name_is_allowed_but_type_is_required() -> None:
    assert parse_plugin_conf({"type": "portmap"}).name == ""
    with pytest.raises(CniError) as exc:
        parse_plugin_conf({"name": "x"})
    assert exc.value.code == CniCode.INVALID_NETWORK_CONFIG
    assert exc.value.msg == "error parsing configuration: missing 'type'"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", CniCode.DECODING_FAILURE),
        (b"[1, 2]", CniCode.DECODING_FAILURE),
        (b'{"type": 5}', CniCode.DECODING_FAILURE),
        (b'{"type": "x", "capabilities": {"portMappings": "yes"}}', CniCode.DECODING_FAILURE),
        (b'{"type": "x", "capabilities": []}', CniCode.DECODING_FAILURE),
    ],
    ids=["not-json", "not-object", "type-not-string", "capability-not-bool", "capabilities-not-object"],
)
def test_bad_plugin_confs_are_cni_errors(data: bytes, code: int) -> None:
    with pytest.raises(CniError) as exc:
        parse_plugin_conf(data)
    assert exc.value.code == code


def test_inject_preserves_plugin_specific_keys_and_does_not_touch_the_original() -> None:
    conf = parse_plugin_conf({"type": "calico", "kubernetes": {"kubeconfig": "/etc/k"}, "name": "a"})
    new = inject(conf, {"cni.dev/valid-attachments": []}, name="k8s-pod-network", cniVersion="1.0.0")
    assert new.name == "k8s-pod-network"
    assert new.cni_version == "1.0.0"
    assert new.raw["kubernetes"] == {"kubeconfig": "/etc/k"}
    assert new.raw["cni.dev/valid-attachments"] == []
    assert json.loads(new.data) == new.raw
    assert conf.name == "a" and "cniVersion" not in conf.raw


def test_inject_refuses_none_and_empty_keys() -> None:
    conf = parse_plugin_conf({"type": "x"})
    with pytest.raises(CniError, match="value must not be nil"):
        inject(conf, prevResult=None)
    with pytest.raises(CniError, match="keys cannot be empty"):
        inject(conf, {"": 1})


def test_conf_list_from_conf_wraps_with_name_and_version() -> None:
    conf = parse_plugin_conf({"cniVersion": "1.1.0", "name": "weave1", "type": "weave-net", "x": 1})
    wrapped = conf_list_from_conf(conf)
    assert (wrapped.name, wrapped.cni_version) == ("weave1", "1.1.0")
    assert [p.raw for p in wrapped.plugins] == [conf.raw]


# -- lists ---------------------------------------------------------------------------------------


def test_k3s_conflist_parses() -> None:
    conf_list = parse_conf_list(json.dumps(K3S_FLANNEL_CONFLIST).encode())
    assert isinstance(conf_list, ConfList)
    assert (conf_list.name, conf_list.cni_version) == ("cbr0", "1.0.0")
    assert [p.type for p in conf_list.plugins] == ["flannel", "portmap", "bandwidth"]
    assert conf_list.plugins[0].raw["delegate"]["hairpinMode"] is True
    assert not conf_list.disable_check and not conf_list.disable_gc


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, "error parsing configuration list: no name"),
        ({"name": 3, "plugins": [{"type": "x"}]}, "error parsing configuration list: invalid name type number"),
        ({"name": "n", "plugins": []}, "error parsing configuration list: no plugins in list"),
        ({"name": "n"}, "error parsing configuration list: no plugins in list"),
        (
            {"name": "n", "loadOnlyInlinedPlugins": True},
            "error parsing configuration list: `loadOnlyInlinedPlugins` is true, and no 'plugins' key",
        ),
        ({"name": "n", "plugins": {}}, "error parsing configuration list: invalid 'plugins' type object"),
        (
            {"name": "n", "plugins": [{"name": "p"}]},
            "failed to parse plugin config 0: error parsing configuration: missing 'type'",
        ),
        ({"name": "n", "disableCheck": "maybe", "plugins": [{"type": "x"}]}, "invalid value 'maybe' for disableCheck"),
        (
            {"name": "n", "cniVersions": ["1.0.0", "x.y"], "plugins": [{"type": "x"}]},
            "invalid cniVersions entry x.y at index 1",
        ),
    ],
    ids=[
        "no-name",
        "name-type",
        "empty-plugins",
        "no-plugins",
        "inlined-only",
        "plugins-type",
        "plugin-no-type",
        "bad-bool",
        "bad-versions",
    ],
)
def test_bad_lists_are_rejected_with_libcni_texts(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(CniError) as exc:
        parse_conf_list(obj)
    assert message in exc.value.msg
    assert exc.value.code in (CniCode.INVALID_NETWORK_CONFIG, CniCode.DECODING_FAILURE)


@pytest.mark.parametrize(
    ("cni_version", "cni_versions", "expected"),
    [
        ("", ["0.4.0", "1.0.0"], "1.0.0"),
        ("0.3.1", ["1.0.0", "2.0.0"], "1.0.0"),
        ("1.1.0", ["0.4.0"], "1.1.0"),
        ("", ["1.1.0", "9.9.9"], "1.1.0"),
        ("", ["1.10.0"], ""),  # everything above what we implement: nothing chosen
        ("0.4.0", [], "0.4.0"),
    ],
)
def test_cni_versions_picks_highest_supported(cni_version: str, cni_versions: list[str], expected: str) -> None:
    obj: dict[str, Any] = {"name": "n", "cniVersions": cni_versions, "plugins": [{"type": "x"}]}
    if cni_version:
        obj["cniVersion"] = cni_version
    conf_list = parse_conf_list(obj)
    assert conf_list.cni_version == expected
    assert conf_list.cni_versions == tuple(cni_versions)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("TRUE", True), ("false", False), (False, False)])
def test_list_flags_accept_bools_and_strings(value: object, expected: bool) -> None:
    conf_list = parse_conf_list({"name": "n", "disableCheck": value, "disableGC": value, "plugins": [{"type": "x"}]})
    assert conf_list.disable_check is expected and conf_list.disable_gc is expected


def test_expanded_raw_holds_every_plugin() -> None:
    conf_list = parse_conf_list(K3S_FLANNEL_CONFLIST)
    expanded = conf_list.expanded_raw()
    assert expanded["plugins"] == K3S_FLANNEL_CONFLIST["plugins"]
    assert expanded["name"] == "cbr0"


# -- files ---------------------------------------------------------------------------------------


def test_load_conf_file_by_extension(tmp_path: Path) -> None:
    single = write(tmp_path / "10-mv.conf", {"cniVersion": "0.3.1", "name": "mv", "type": "macvlan"})
    js = write(tmp_path / "20-br.json", {"name": "br", "type": "bridge"})
    listed = write(tmp_path / "30-k3s.conflist", K3S_FLANNEL_CONFLIST)
    assert isinstance(load_conf_file(str(single)), PluginConf)
    assert isinstance(load_conf_file(str(js)), PluginConf)
    loaded = load_conf_file(str(listed))
    assert isinstance(loaded, ConfList) and len(loaded.plugins) == 3


def test_subdirectory_plugins_are_appended_sorted(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "a"}]})
    write(tmp_path / "net" / "20-c.conf", {"type": "c"})
    write(tmp_path / "net" / "10-b.conf", {"type": "b"})
    write(tmp_path / "net" / "30-ignored.json", {"type": "ignored"})
    loaded = load_conf_file(str(tmp_path / "10-net.conflist"))
    assert isinstance(loaded, ConfList)
    assert [p.type for p in loaded.plugins] == ["a", "b", "c"]
    # raw/data stay the file's (libcni caches these); expanded_raw has all plugins
    assert [p["type"] for p in loaded.raw["plugins"]] == ["a"]
    assert [p["type"] for p in loaded.expanded_raw()["plugins"]] == ["a", "b", "c"]


def test_list_with_only_subdirectory_plugins(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"name": "net", "cniVersion": "1.0.0"})
    write(tmp_path / "net" / "a.conf", {"type": "a"})
    loaded = load_conf_file(str(tmp_path / "10-net.conflist"))
    assert isinstance(loaded, ConfList) and [p.type for p in loaded.plugins] == ["a"]


def test_load_only_inlined_plugins_skips_subdirectory(tmp_path: Path) -> None:
    write(
        tmp_path / "10-net.conflist",
        {"name": "net", "loadOnlyInlinedPlugins": True, "plugins": [{"type": "a"}]},
    )
    write(tmp_path / "net" / "b.conf", {"type": "b"})
    loaded = load_conf_file(str(tmp_path / "10-net.conflist"))
    assert isinstance(loaded, ConfList) and [p.type for p in loaded.plugins] == ["a"]


def test_list_without_any_plugins_anywhere_fails_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "10-net.conflist", {"name": "net"})
    with pytest.raises(CniError) as exc:
        load_conf_file(str(path))
    assert exc.value.msg == f"{path}: no plugin configs found"


def test_bad_subdirectory_plugin_fails_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "10-net.conflist", {"name": "net", "plugins": [{"type": "a"}]})
    bad = write(tmp_path / "net" / "b.conf", "{oops")
    with pytest.raises(CniError) as exc:
        load_conf_file(str(path))
    assert str(bad) in exc.value.msg
    assert exc.value.code == CniCode.DECODING_FAILURE


def test_unreadable_and_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CniError) as exc:
        load_conf_file(str(tmp_path / "missing.conf"))
    assert exc.value.code == CniCode.IO_FAILURE and "missing.conf" in exc.value.msg
    bad = write(tmp_path / "bad.conflist", "[]")
    with pytest.raises(CniError) as exc:
        load_conf_file(str(bad))
    assert exc.value.msg.startswith(f"{bad}: error parsing configuration list")
    other = write(tmp_path / "x.yaml", "{}")
    with pytest.raises(CniError, match="unsupported configuration file extension"):
        load_conf_file(str(other))


def test_load_conf_dir_sorted_filtered_and_missing_dir_empty(tmp_path: Path) -> None:
    write(tmp_path / "b.conflist", {})
    write(tmp_path / "a.conf", {})
    write(tmp_path / "c.json", {})
    write(tmp_path / "d.txt", {})
    (tmp_path / "e.conf").mkdir()
    assert load_conf_dir(str(tmp_path)) == [str(tmp_path / n) for n in ("a.conf", "b.conflist", "c.json")]
    assert load_conf_dir(str(tmp_path), [".conflist"]) == [str(tmp_path / "b.conflist")]
    assert load_conf_dir(str(tmp_path / "nope")) == []


def test_load_by_name_skips_unparsable_unrelated_files(tmp_path: Path) -> None:
    """Upstream Q16: one broken file earlier in the dir broke every lookup by name."""
    write(tmp_path / "00-broken.conf", "{this is not json")
    write(tmp_path / "10-other.conf", {"name": "other", "type": "bridge"})
    write(tmp_path / "20-k3s.conflist", K3S_FLANNEL_CONFLIST)
    found = load_conf_by_name(str(tmp_path), "cbr0")
    assert isinstance(found, ConfList) and found.name == "cbr0"
    other = load_conf_by_name(str(tmp_path), "other")
    assert isinstance(other, PluginConf) and other.type == "bridge"
    first = load_conf_by_name(str(tmp_path), "")
    assert first.name == "other"


def test_load_by_name_not_found_mentions_skipped_files(tmp_path: Path) -> None:
    write(tmp_path / "00-broken.conf", "{this is not json")
    with pytest.raises(ConfNotFoundError) as exc:
        load_conf_by_name(str(tmp_path), "cbr0")
    assert exc.value.msg == f'no net configuration with name "cbr0" in {tmp_path}'
    assert "00-broken.conf" in exc.value.details
    assert isinstance(exc.value, CniError)


# -- validators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code", "msg"),
    [
        ("", CniCode.UNKNOWN_CONTAINER, "missing containerID"),
        ("-abc", CniCode.INVALID_ENVIRONMENT_VARIABLES, "invalid characters in containerID"),
        ("abc/def", CniCode.INVALID_ENVIRONMENT_VARIABLES, "invalid characters in containerID"),
        ("abc\n", CniCode.INVALID_ENVIRONMENT_VARIABLES, "invalid characters in containerID"),
    ],
)
def test_container_id_validation(value: str, code: int, msg: str) -> None:
    with pytest.raises(CniError) as exc:
        validate_container_id(value)
    assert (exc.value.code, exc.value.msg) == (code, msg)


def test_valid_names_pass() -> None:
    validate_container_id("0123456789abcdef_x.y-z")
    validate_network_name("macvlan-conf.1_a")
    validate_ifname("net1")
    validate_ifname("a" * 15)


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("", "missing network name:"),
        ("a b", "invalid characters found in network name"),
        ("_x", "invalid characters found in network name"),
    ],
)
def test_network_name_validation(value: str, msg: str) -> None:
    with pytest.raises(CniError) as exc:
        validate_network_name(value)
    assert (exc.value.code, exc.value.msg) == (CniCode.INVALID_NETWORK_CONFIG, msg)


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("", "interface name is empty"),
        ("a" * 16, "interface name is too long"),
        ("é" * 8, "interface name is too long"),  # 16 bytes
        (".", "interface name is . or .."),
        ("..", "interface name is . or .."),
        ("a/b", "interface name contains / or : or whitespace characters"),
        ("a:b", "interface name contains / or : or whitespace characters"),
        ("a b", "interface name contains / or : or whitespace characters"),
        ("a\tb", "interface name contains / or : or whitespace characters"),
        ("a\u00a0b", "interface name contains / or : or whitespace characters"),
    ],
)
def test_ifname_validation(value: str, msg: str) -> None:
    with pytest.raises(CniError) as exc:
        validate_ifname(value)
    assert (exc.value.code, exc.value.msg) == (CniCode.INVALID_ENVIRONMENT_VARIABLES, msg)
