"""network-status: upstream's exact JSON for the K3s/flannel case and the multi-interface rules."""

from __future__ import annotations

from multusd.attach.status import added_interface_message, annotation_value, network_statuses
from multusd.cni.types import Result

# A bridge result as flannel returns it (reference §6, worked K3s example).
FLANNEL_RESULT = Result.from_json(
    {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "aa:aa:aa:aa:aa:01"},
            {"name": "veth1234", "mac": "aa:aa:aa:aa:aa:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/var/run/netns/cni-1"},
        ],
        "ips": [{"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 2}],
        "routes": [{"dst": "10.42.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.42.0.1"}],
    }
)

# Written by hand from upstream's format: 4-space indent, field order, dns always present.
EXPECTED_ANNOTATION = """[{
    "name": "cbr0",
    "interface": "eth0",
    "ips": [
        "10.42.0.9"
    ],
    "mac": "aa:bb:cc:dd:ee:ff",
    "default": true,
    "dns": {},
    "gateway": [
        "10.42.0.1"
    ]
},{
    "name": "default/macvlan-conf",
    "interface": "net1",
    "ips": [
        "192.168.1.200"
    ],
    "mac": "c2:11:22:33:44:55",
    "dns": {}
}]"""


def test_flannel_and_macvlan_statuses_match_upstream_bytes() -> None:
    macvlan = Result.from_json(
        {
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "net1", "mac": "c2:11:22:33:44:55", "sandbox": "/var/run/netns/cni-1"}],
            "ips": [{"version": "4", "address": "192.168.1.200/24", "interface": 0}],
        }
    )
    statuses = network_statuses("cbr0", FLANNEL_RESULT, True) + network_statuses("default/macvlan-conf", macvlan, False)
    assert annotation_value(statuses) == EXPECTED_ANNOTATION


def test_event_message_is_go_slice_format() -> None:
    assert added_interface_message("eth0", FLANNEL_RESULT, "cbr0") == "Add eth0 [10.42.0.9/24] from cbr0"
    empty = Result("1.0.0")
    assert added_interface_message("net1", empty, "") == "Add net1 []"


def test_no_interfaces_means_no_status() -> None:
    ipam_only = Result.from_json({"cniVersion": "1.0.0", "ips": [{"address": "10.1.1.1/24"}]})
    assert network_statuses("x", ipam_only, False) == []
    legacy = Result.from_json({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.1.1/24"}})
    assert network_statuses("x", legacy, True) == []


def test_default_route_without_gateway_is_omitted_not_nil() -> None:
    res = Result.from_json(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/x"}],
            "ips": [{"address": "10.1.1.2/24", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}],
        }
    )
    [status] = network_statuses("n", res, False)
    assert status.gateway == ("fd00::1",)
    assert "<nil>" not in annotation_value([status])


def test_multi_interface_ips_by_index_and_unindexed_to_last() -> None:
    res = Result.from_json(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "a", "sandbox": "/x"}, {"name": "host"}, {"name": "b", "sandbox": "/x"}],
            "ips": [
                {"address": "10.0.0.2/24", "interface": 0},
                {"address": "10.0.1.2/24", "gateway": "10.0.1.1", "interface": 2},
                {"address": "10.0.2.2/24"},
            ],
        }
    )
    a, b = network_statuses("n", res, True)
    assert (a.interface, a.ips, a.default) == ("a", ("10.0.0.2",), False)
    assert (b.interface, b.ips, b.default) == ("b", ("10.0.1.2", "10.0.2.2"), True)


def test_go_escaping_of_html_characters() -> None:
    res = Result.from_json({"cniVersion": "1.0.0", "interfaces": [{"name": "x", "sandbox": "/x"}]})
    text = annotation_value(network_statuses("a<b>&c", res, False))
    assert '"name": "a\\u003cb\\u003e\\u0026c"' in text
