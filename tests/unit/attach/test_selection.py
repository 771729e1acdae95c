"""The selection annotation grammar: upstream's vectors (reference §9.1 V24 to V40) and Go's rules.

Error texts are compared exactly where upstream's tests (or Go's standard library) fix them.
"""

from __future__ import annotations

import copy
import json
import pickle
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multusd.attach.selection import (
    NetworkSelection,
    SelectionError,
    go_json_syntax_error,
    go_parse_mac,
    is_v4_gateway,
    parse_default_network_annotation,
    parse_networks_annotation,
)
from multusd.cni.errors import CniCode, CniError

JSON_PREFIX = "parsePodNetworkAnnotation: failed to parse pod Network Attachment Selection Annotation JSON format: "
OBJECT_PREFIX = "parsePodNetworkAnnotation: parsePodNetworkObjectName: "
REGEX_TEXT = (
    "Failed to parse: one or more items did not match comma-delimited format (must consist of lower case "
    "alphanumeric characters). Must start and end with an alphanumeric character), mismatch @ '{}'"
)
IFNAME_TEXT = (
    "Failed to parse interface name: must be less than 15 chars and not contain '/' or spaces. interface name '{}'"
)


def sel(name: str, namespace: str = "test", **fields: Any) -> NetworkSelection:
    return NetworkSelection(name=name, namespace=namespace, **fields)


# --------------------------------------------------------------------------------------------
# Comma form


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(
            "root@someIP/root@someOtherIP/root@thirdIP",
            OBJECT_PREFIX + "Invalid network object (failed at '/')",
            id="V24",
        ),
        pytest.param(
            "root@someIP/root@someOtherIP@garbagevalue",
            OBJECT_PREFIX + "Invalid network object (failed at '@')",
            id="V25",
        ),
        pytest.param("root@someIP/root@someOtherIP", OBJECT_PREFIX + REGEX_TEXT.format("root@someIP"), id="V26"),
        pytest.param("default/net1@myIfc Name", OBJECT_PREFIX + IFNAME_TEXT.format("myIfc Name"), id="V27"),
        pytest.param(
            "default/net1@very_long_interface_name",
            OBJECT_PREFIX + IFNAME_TEXT.format("very_long_interface_name"),
            id="V28",
        ),
        pytest.param("Net1", OBJECT_PREFIX + REGEX_TEXT.format("Net1"), id="V36-uppercase"),
        pytest.param("net.1", OBJECT_PREFIX + REGEX_TEXT.format("net.1"), id="V36-dot"),
        pytest.param("-net", OBJECT_PREFIX + REGEX_TEXT.format("-net"), id="leading-dash"),
        pytest.param("Default/net", OBJECT_PREFIX + REGEX_TEXT.format("Default"), id="namespace-regex"),
        pytest.param("a@b/c", OBJECT_PREFIX + REGEX_TEXT.format("a@b"), id="slash-before-at"),
        pytest.param("net1@a/b", OBJECT_PREFIX + REGEX_TEXT.format("net1@a"), id="slash-in-ifname-splits-first"),
        pytest.param("net1@sixteen-chars-xx", OBJECT_PREFIX + IFNAME_TEXT.format("sixteen-chars-xx"), id="ifname-16"),
        pytest.param("net1@üü-ifname-abcd", OBJECT_PREFIX + IFNAME_TEXT.format("üü-ifname-abcd"), id="ifname-bytes"),
    ],
)
def test_comma_form_errors(value: str, error: str) -> None:
    with pytest.raises(SelectionError) as info:
        parse_networks_annotation(value, "test")
    assert info.value.msg == error
    assert info.value.code == CniCode.INVALID_NETWORK_CONFIG


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("net1", [sel("net1")], id="V29"),
        pytest.param("default/net1", [sel("net1", "default")], id="V30"),
        pytest.param("net1@my_interface", [sel("net1", interface="my_interface")], id="V31"),
        pytest.param("default/net1@my_interface", [sel("net1", "default", interface="my_interface")], id="V32"),
        pytest.param("ns1/net-a@eth9", [sel("net-a", "ns1", interface="eth9")], id="V36-full"),
        pytest.param(" a , b ", [sel("a"), sel("b")], id="V36-trim"),
        pytest.param("a,,b", [sel("a"), sel(""), sel("b")], id="V36-empty-item-Q17"),
        pytest.param("a,", [sel("a"), sel("")], id="trailing-comma-Q17"),
        pytest.param("net1@", [sel("net1")], id="V36-empty-ifname"),
        pytest.param(" ns / net @ if0 ", [sel("net", "ns", interface="if0")], id="parts-trimmed"),
        pytest.param("/net1", [sel("net1")], id="empty-namespace-defaults"),
        pytest.param("net1@fifteen-chars-x", [sel("net1", interface="fifteen-chars-x")], id="ifname-15"),
        pytest.param("net1@a:b", [sel("net1", interface="a:b")], id="colon-allowed-at-parse"),
        pytest.param("\u00a0net1\u3000", [sel("net1")], id="go-unicode-space-trimmed"),
        pytest.param("1", [sel("1")], id="digits"),
    ],
)
def test_comma_form_elements(value: str, expected: list[NetworkSelection]) -> None:
    assert parse_networks_annotation(value, "test") == expected


def test_go_trim_keeps_ascii_separators_python_strips() -> None:
    # Go's TrimSpace leaves U+001C…U+001F; str.strip() would remove them and accept the name.
    with pytest.raises(SelectionError, match="mismatch @ '\x1cnet1'"):
        parse_networks_annotation("\x1cnet1", "test")


def test_empty_annotation_means_no_networks() -> None:
    assert parse_networks_annotation("", "test") == []


# --------------------------------------------------------------------------------------------
# JSON form


def test_V03_json_unknown_keys_ignored_and_namespaces() -> None:
    value = (
        '[{"name":"net1"},{"name":"net2","ipRequest":"1.2.3.4","macRequest":"aa:bb:cc:dd:ee:ff"},'
        '{"name":"net3","namespace":"other-ns"}]'
    )
    assert parse_networks_annotation(value, "test") == [sel("net1"), sel("net2"), sel("net3", "other-ns")]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param("[adsfasdfasdfasf]", "invalid character 'a' looking for beginning of value", id="V04"),
        pytest.param(
            '{"name":"x"}',
            "json: cannot unmarshal object into Go value of type []*types.NetworkSelectionElement",
            id="V37-object",
        ),
        pytest.param(
            '"x"',
            "json: cannot unmarshal string into Go value of type []*types.NetworkSelectionElement",
            id="V37-string",
        ),
        pytest.param('["x"]', "json: cannot unmarshal string into Go value of type types.NetworkSelectionElement"),
        pytest.param(
            '[{"name":1}]',
            "json: cannot unmarshal number into Go struct field NetworkSelectionElement.name of type string",
        ),
        pytest.param(
            '[{"name":"n","ips":"10.0.0.1"}]',
            "json: cannot unmarshal string into Go struct field NetworkSelectionElement.ips of type []string",
        ),
        pytest.param(
            '[{"name":"n","ips":[1]}]',
            "json: cannot unmarshal number into Go struct field NetworkSelectionElement.ips of type string",
        ),
        pytest.param(
            '[{"name":"n","portMappings":{}}]',
            "json: cannot unmarshal object into Go struct field NetworkSelectionElement.portMappings "
            "of type []*types.PortMapEntry",
        ),
        pytest.param(
            '[{"name":"n","portMappings":["x"]}]',
            "json: cannot unmarshal string into Go struct field NetworkSelectionElement.portMappings "
            "of type types.PortMapEntry",
        ),
        pytest.param(
            '[{"name":"n","portMappings":[{"hostPort":"80"}]}]',
            "json: cannot unmarshal string into Go struct field PortMapEntry.portMappings.hostPort of type int",
        ),
        pytest.param(
            '[{"name":"n","bandwidth":{"ingressRate":1.5}}]',
            "json: cannot unmarshal number 1.5 into Go struct field BandwidthEntry.bandwidth.ingressRate of type int",
        ),
        pytest.param(
            '[{"name":"n","bandwidth":{"egressRate":1e3}}]',
            "json: cannot unmarshal number 1e3 into Go struct field BandwidthEntry.bandwidth.egressRate of type int",
        ),
        pytest.param(
            '[{"name":"n","bandwidth":{"egressRate":9223372036854775808}}]',
            "json: cannot unmarshal number 9223372036854775808 into Go struct field "
            "BandwidthEntry.bandwidth.egressRate of type int",
        ),
        pytest.param(
            '[{"name":"n","cni-args":[1]}]',
            "json: cannot unmarshal array into Go struct field NetworkSelectionElement.cni-args "
            "of type map[string]interface {}",
        ),
        pytest.param(
            '[{"name":"n","default-route":"10.0.0.1"}]',
            "json: cannot unmarshal string into Go struct field NetworkSelectionElement.default-route of type []net.IP",
        ),
        pytest.param(
            '[{"name":"n","default-route":[true]}]',
            "json: cannot unmarshal bool into Go struct field NetworkSelectionElement.default-route of type net.IP",
        ),
        pytest.param('[{"name":"n","default-route":["10.0.0.300"]}]', "invalid IP address: 10.0.0.300"),
        pytest.param(
            '[{"name":1,"default-route":["x"]}]', "invalid IP address: x", id="ip-error-beats-earlier-type-error"
        ),
        pytest.param(
            '[{"name":1,"mac":2}]',
            "json: cannot unmarshal number into Go struct field NetworkSelectionElement.name of type string",
            id="first-type-error-wins",
        ),
        pytest.param("[null]", "element 0 is null", id="nil-element-upstream-panic"),
        pytest.param('[{"name":"n","portMappings":[null]}]', "element 0: a portMappings entry is null"),
    ],
)
def test_json_form_errors(value: str, error: str) -> None:
    with pytest.raises(SelectionError) as info:
        parse_networks_annotation(value, "test")
    assert info.value.msg == JSON_PREFIX + error


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(
            '[{"name":"n","mac":"zz"}]',
            "parsePodNetworkAnnotation: failed to mac: address zz: invalid MAC address",
            id="V38-mac",
        ),
        pytest.param('[{"name":"n","ips":["10.0.0.300"]}]', 'failed to parse IP address "10.0.0.300"', id="V38-ip"),
        pytest.param(
            '[{"name":"n","ips":["10.0.0.1/33"]}]',
            'failed to parse CIDR "10.0.0.1/33": invalid CIDR address: 10.0.0.1/33',
            id="V38-cidr",
        ),
        pytest.param(
            '[{"name":"n","infiniband-guid":"24:8a:07"}]',
            "parsePodNetworkAnnotation: failed to validate infiniband GUID: address 24:8a:07: invalid MAC address",
        ),
        pytest.param(
            '[{"name":"n","ips":["fe80::1%eth0"]}]', 'failed to parse IP address "fe80::1%eth0"', id="no-zone"
        ),
        pytest.param('[{"name":"n","ips":["01.2.3.4"]}]', 'failed to parse IP address "01.2.3.4"', id="leading-zero"),
        pytest.param('[{"name":"n","ips":[""]}]', 'failed to parse IP address ""', id="empty-ip"),
        pytest.param('[{"name":"n","ips":[null]}]', 'failed to parse IP address ""', id="null-ip-is-empty-string"),
        pytest.param(
            '[{"name":"n","ips":["10.0.0.1/255.255.255.0"]}]',
            'failed to parse CIDR "10.0.0.1/255.255.255.0": invalid CIDR address: 10.0.0.1/255.255.255.0',
        ),
        pytest.param(
            '[{"name":"n","ips":["10.0.0.1/"]}]', 'failed to parse CIDR "10.0.0.1/": invalid CIDR address: 10.0.0.1/'
        ),
        pytest.param(
            '[{"name":"n","ips":["fc00::1/129"]}]',
            'failed to parse CIDR "fc00::1/129": invalid CIDR address: fc00::1/129',
        ),
        pytest.param(
            '[{"name":"n","mac":"c2:11:22:33:44:66"},{"name":"m","ips":["x\\ny"]}]',
            'failed to parse IP address "x\\ny"',
            id="quoted-like-go",
        ),
    ],
)
def test_post_processing_errors(value: str, error: str) -> None:
    with pytest.raises(SelectionError) as info:
        parse_networks_annotation(value, "test")
    assert info.value.msg == error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('[{"name":"n","interfaceRequest":"foo"}]', "foo", id="V39-alias"),
        pytest.param('[{"name":"n","interface":"bar","interfaceRequest":"foo"}]', "bar", id="V39-interface-wins"),
        pytest.param('[{"name":"n","interface":"","interfaceRequest":"foo"}]', "foo", id="empty-interface-uses-alias"),
        pytest.param('[{"name":"n","Interface":"upper"}]', "upper", id="go-case-insensitive-keys"),
        pytest.param('[{"name":"n","interface":"a","interface":"b"}]', "b", id="duplicate-last-wins"),
        pytest.param('[{"name":"n","interface":"a","interface":null}]', "a", id="null-leaves-string"),
    ],
)
def test_interface_request(value: str, expected: str) -> None:
    [element] = parse_networks_annotation(value, "test")
    assert element.interface == expected


def test_V05_and_json_fields_in_go_form() -> None:
    value = json.dumps(
        [
            {"name": "net1"},
            {"name": "net2", "default-route": ["192.168.2.2"]},
            {
                "name": "net3",
                "namespace": "Not_Validated.In-Json",
                "ips": ["10.0.0.1/24", "fc00::1"],
                "mac": "c2-11-22-33-44-66",
                "infiniband-guid": "24:8a:07:03:00:8d:ae:2e",
                "interface": "if-3",
                "deviceID": "0000:03:00.1",
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "extra": 1}, {}],
                "bandwidth": {"ingressRate": 2048, "egressBurst": 10},
                "cni-args": {"a": 1, "b": [True, None, 1.5, {"c": "d"}]},
            },
        ]
    )
    net1, net2, net3 = parse_networks_annotation(value, "test")
    assert net1 == sel("net1")
    assert net2.default_route == ("192.168.2.2",)
    assert net3 == sel(
        "net3",
        "Not_Validated.In-Json",
        interface="if-3",
        ips=("10.0.0.1/24", "fc00::1"),
        mac="c2-11-22-33-44-66",
        infiniband_guid="24:8a:07:03:00:8d:ae:2e",
        device_id="0000:03:00.1",
        port_mappings=({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}, {"hostPort": 0, "containerPort": 0}),
        bandwidth={"ingressRate": 2048, "ingressBurst": 0, "egressRate": 0, "egressBurst": 10},
        cni_args={"a": 1, "b": [True, None, 1.5, {"c": "d"}]},
    )
    assert net3.ref == "Not_Validated.In-Json/net3"


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param("absent", None, id="absent-is-None"),
        pytest.param(None, None, id="null-is-None"),
        pytest.param([], (), id="Q11-empty-is-present"),
        pytest.param(["10.1.1.1", "fc00::1"], ("10.1.1.1", "fc00::1"), id="both-families"),
        pytest.param(["::ffff:10.1.1.1"], ("10.1.1.1",), id="v4-mapped-written-as-v4"),
        pytest.param(["FC00:0:0::1"], ("fc00::1",), id="canonical-v6"),
        pytest.param(["", None], ("", ""), id="nil-ips"),
    ],
)
def test_default_route_keeps_absent_versus_empty(routes: Any, expected: tuple[str, ...] | None) -> None:
    element: dict[str, Any] = {"name": "n"}
    if routes != "absent":
        element["default-route"] = routes
    [selection] = parse_networks_annotation(json.dumps([element]), "test")
    assert selection.default_route == expected


def test_cni_args_null_absent_and_empty_differ() -> None:
    values = [{"name": "a"}, {"name": "b", "cni-args": None}, {"name": "c", "cni-args": {}}]
    a, b, c = parse_networks_annotation(json.dumps(values), "test")
    assert (a.cni_args, b.cni_args, c.cni_args) == (None, None, {})


def test_repeated_struct_keys_merge_as_go_decodes_into_existing_values() -> None:
    value = (
        '[{"name":"n","bandwidth":{"ingressRate":1},"bandwidth":{"egressRate":2},'
        '"cni-args":{"a":1},"cni-args":{"b":2}}]'
    )
    [element] = parse_networks_annotation(value, "test")
    assert element.bandwidth == {"ingressRate": 1, "ingressBurst": 0, "egressRate": 2, "egressBurst": 0}
    assert element.cni_args == {"a": 1, "b": 2}


def test_escaped_lone_surrogate_becomes_replacement_char_as_in_go() -> None:
    [element] = parse_networks_annotation('[{"name":"n\\ud800"}]', "test")
    assert element.name == "n\ufffd"


def test_json_detected_by_any_quote_or_bracket() -> None:
    # a quote anywhere switches to JSON, so an otherwise fine comma list is a JSON error
    with pytest.raises(SelectionError, match=r"JSON format: invalid character 'e' in literal null \(expecting 'u'\)"):
        parse_networks_annotation('net1,"net2"', "test")
    assert parse_networks_annotation("[]", "test") == []
    assert parse_networks_annotation(" [ ] ", "test") == []


# --------------------------------------------------------------------------------------------
# Default-network annotation


def test_V40_more_than_one_default_network() -> None:
    with pytest.raises(SelectionError) as info:
        parse_default_network_annotation("a,b", "kube-system")
    assert info.value.msg == "tryLoadK8sPodDefaultNetwork: more than one default network is specified: a,b"


def test_default_network_namespace_defaults_to_multus_namespace() -> None:
    assert parse_default_network_annotation("net1", "kube-system") == sel("net1", "kube-system")
    assert parse_default_network_annotation("other/net1@eth1", "kube-system") == sel("net1", "other", interface="eth1")
    assert parse_default_network_annotation("", "kube-system") is None
    assert parse_default_network_annotation("[]", "kube-system") is None


def test_default_network_parse_error_is_wrapped() -> None:
    with pytest.raises(SelectionError) as info:
        parse_default_network_annotation("[x]", "kube-system")
    assert info.value.msg == (
        "tryLoadK8sPodDefaultNetwork: failed to parse CRD object: "
        + JSON_PREFIX
        + "invalid character 'x' looking for beginning of value"
    )


# --------------------------------------------------------------------------------------------
# Go helpers


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("c2:11:22:33:44:66", 6),
        ("C2-11-22-33-44-66", 6),
        ("c211.2233.4466", 6),
        ("24:8a:07:03:00:8d:ae:2e", 8),
        ("248a.0703.008d.ae2e", 8),
        (":".join(["00"] * 20), 20),
        ("0000.0000.0000.0000.0000.0000.0000.0000.0000.0000", 20),
        ("zz", None),
        ("c2:11:22:33:44", None),
        ("c2:11:22:33:44:6", None),
        ("c2:11-22:33:44:66", None),
        ("c2:11:22:33:44:66:77", None),
        ("c211.2233:4466", None),
        ("c2:11:22:33:44:6g", None),
        ("c2.11.22.33.44.66", None),
        ("c2:11:22:33:44:66:", None),
    ],
)
def test_go_parse_mac(text: str, length: int | None) -> None:
    parsed = go_parse_mac(text)
    assert (len(parsed) if parsed is not None else None) == length


@pytest.mark.parametrize(
    ("gateway", "v4"), [("10.0.0.1", True), ("::ffff:10.0.0.1", True), ("fc00::1", False), ("", False)]
)
def test_is_v4_gateway_matches_go_to4(gateway: str, v4: bool) -> None:
    assert is_v4_gateway(gateway) is v4


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("[1,]", "invalid character ']' looking for beginning of value"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        ("[1 2]", "invalid character '2' after array element"),
        ("{1:2}", "invalid character '1' looking for beginning of object key string"),
        ('{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        ('["a\tb"]', "invalid character '\\t' in string literal"),
        ('["\\x"]', "invalid character 'x' in string escape code"),
        ('["\\u12g4"]', "invalid character 'g' in \\u hexadecimal character escape"),
        ("[-a]", "invalid character 'a' in numeric literal"),
        ("[1.]", "invalid character ']' after decimal point in numeric literal"),
        ("[1e]", "invalid character ']' in exponent of numeric literal"),
        ("[01]", "invalid character '1' after array element"),
        ("[tru]", "invalid character ']' in literal true (expecting 'e')"),
        ("[nul", "unexpected end of JSON input"),
        ("[fals3]", "invalid character '3' in literal false (expecting 'e')"),
        ("[] x", "invalid character 'x' after top-level value"),
        ("[NaN]", "invalid character 'N' looking for beginning of value"),
        ("['a']", "invalid character '\\'' looking for beginning of value"),
        ("[\\]", "invalid character '\\\\' looking for beginning of value"),
        ("[\u00e9]", "invalid character 'Ã' looking for beginning of value"),
        ("[\u00c2]", "invalid character '\u00c3' looking for beginning of value"),
        ("[\x7f]", "invalid character '\\x7f' looking for beginning of value"),
        ('["abc', "unexpected end of JSON input"),
        ("[", "unexpected end of JSON input"),
        ("[" * 10001 + "]" * 10001, "invalid character '[' exceeded max depth"),
    ],
)
def test_go_json_syntax_errors(data: str, error: str) -> None:
    assert go_json_syntax_error(data.encode()) == error


def test_go_json_names_non_printable_high_bytes_with_u_escapes() -> None:
    assert go_json_syntax_error(b"[\xa0]") == "invalid character '\\u00a0' looking for beginning of value"
    assert go_json_syntax_error(b"[\xad]") == "invalid character '\\u00ad' looking for beginning of value"
    assert go_json_syntax_error(b"[\x85]") == "invalid character '\\u0085' looking for beginning of value"


def test_go_json_accepts_valid_documents() -> None:
    for doc in ("[]", " {} ", '[1, -0.5e+3, "a\\u00e9\\n", true, false, null, {"k": [{}]}]', "0", '"x"'):
        assert go_json_syntax_error(doc.encode()) is None
    assert go_json_syntax_error(("[" * 10000 + "]" * 10000).encode()) is None


def test_deep_nesting_python_cannot_parse_is_a_selection_error() -> None:
    with pytest.raises(SelectionError, match="exceeded max depth"):
        parse_networks_annotation('[{"name":"n","cni-args":{"a":' + "[" * 5000 + "]" * 5000 + "}}]", "test")


def test_selection_error_is_a_cni_error_that_survives_copy_and_pickle() -> None:
    err = SelectionError("bad", "why")
    assert isinstance(err, CniError)
    assert copy.copy(err) == err
    assert pickle.loads(pickle.dumps(err)) == err


# --------------------------------------------------------------------------------------------
# Properties: nothing but SelectionError escapes, whatever the annotation


JSONISH = st.text(alphabet='[]{}",:\\/@ -.0123456789eEtrufalsnabcdxyz\t\n\x00\u00e9\ud800', max_size=60)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ELEMENT_KEYS = st.sampled_from(
    [
        "name",
        "namespace",
        "ips",
        "mac",
        "infiniband-guid",
        "interface",
        "interfaceRequest",
        "portMappings",
        "bandwidth",
        "deviceID",
        "cni-args",
        "default-route",
        "NAME",
        "hostPort",
    ]
)
ELEMENTS = st.lists(st.dictionaries(ELEMENT_KEYS, JSON_VALUES, max_size=5) | JSON_VALUES, max_size=3)


def _parse_both(value: str) -> None:
    for parse in (parse_networks_annotation, parse_default_network_annotation):
        try:
            parse(value, "test")
        except SelectionError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_random_text_only_raises_selection_error(value: str) -> None:
    _parse_both(value)


@settings(max_examples=400, deadline=None)
@given(JSONISH)
def test_random_jsonish_text_only_raises_selection_error(value: str) -> None:
    _parse_both(value)


@settings(max_examples=400, deadline=None)
@given(ELEMENTS)
def test_random_json_documents_only_raise_selection_error(doc: Any) -> None:
    _parse_both(json.dumps(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + string.digits + "-/@,. \t", max_size=40))
def test_random_comma_lists_parse_or_raise_selection_error(value: str) -> None:
    _parse_both(value)


def _python_accepts(text: str) -> bool:
    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(JSONISH.filter(lambda s: "\ud800" not in s) | JSON_VALUES.map(json.dumps))
def test_go_syntax_scanner_agrees_with_a_strict_json_parser(text: str) -> None:
    assert (go_json_syntax_error(text.encode()) is None) == _python_accepts(text)
