"""CniError: the spec's error object, libcni's pluginErr rules, and the house context format."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from multusd.cni.errors import CniCode, CniError


def test_codes_are_the_specs() -> None:
    assert {c.name: int(c) for c in CniCode} == {
        "UNKNOWN": 0,
        "INCOMPATIBLE_CNI_VERSION": 1,
        "UNSUPPORTED_FIELD": 2,
        "UNKNOWN_CONTAINER": 3,
        "INVALID_ENVIRONMENT_VARIABLES": 4,
        "IO_FAILURE": 5,
        "DECODING_FAILURE": 6,
        "INVALID_NETWORK_CONFIG": 7,
        "INVALID_NETNS": 8,
        "TRY_AGAIN_LATER": 11,
        "PLUGIN_NOT_AVAILABLE": 50,
        "LIMITED_CONNECTIVITY": 51,
        "INTERNAL": 999,
    }


def test_to_json_leaves_out_empty_details() -> None:
    assert CniError(CniCode.TRY_AGAIN_LATER, "busy").to_json() == {"code": 11, "msg": "busy"}
    assert CniError(7, "bad", "why").to_json() == {"code": 7, "msg": "bad", "details": "why"}
    assert json.loads(CniError(7, "bad", "why").to_bytes()) == {"code": 7, "msg": "bad", "details": "why"}


def test_code_is_a_plain_int_and_plugin_codes_survive() -> None:
    err = CniError(CniCode.INVALID_NETNS, "gone")
    assert type(err.code) is int
    assert err.code == 8
    assert CniError(142, "plugin specific").to_json()["code"] == 142


def test_str_is_libcnis_error_text() -> None:
    assert str(CniError(1, "msg")) == "msg"
    assert str(CniError(1, "msg", "details")) == "msg; details"


def test_value_semantics() -> None:
    a, b = CniError(7, "m", "d"), CniError(7, "m", "d")
    assert a == b
    assert hash(a) == hash(b)
    assert a != CniError(6, "m", "d")
    assert a != CniError(7, "m")
    assert a != ValueError("m")


def test_copy_and_pickle_keep_every_field() -> None:
    err = CniError(CniCode.TRY_AGAIN_LATER, "busy", "retry")
    assert copy.copy(err) == err
    assert pickle.loads(pickle.dumps(err)) == err


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"code": 7, "msg": "bad"}, CniError(7, "bad")),
        ({"code": 7, "msg": "bad", "details": "d"}, CniError(7, "bad", "d")),
        ({"code": 7, "msg": "bad", "details": 3}, CniError(7, "bad")),
        ({"code": 7}, None),
        ({"msg": "no code"}, None),
        ({"code": "7", "msg": "bad"}, None),
        ({"code": True, "msg": "bad"}, None),
        ({"code": 7, "msg": None}, None),
        ([7, "bad"], None),
        (None, None),
    ],
)
def test_from_json(obj: object, expected: CniError | None) -> None:
    assert CniError.from_json(obj) == expected


def test_from_plugin_takes_a_json_error_on_stdout_as_is() -> None:
    stdout = b'{\n    "code": 11,\n    "msg": "try again",\n    "details": "lock held"\n}'
    err = CniError.from_plugin(stdout, b"some log line\n", 1)
    assert err == CniError(CniCode.TRY_AGAIN_LATER, "try again", "lock held")


def test_from_plugin_keeps_a_plugin_specific_code() -> None:
    assert CniError.from_plugin(b'{"code": 117, "msg": "vendor"}', b"", 1).code == 117


def test_from_plugin_empty_stdout_gives_stderr() -> None:
    err = CniError.from_plugin(b"", b"failed to open /run/flannel/subnet.env\n", 1)
    assert err.code == CniCode.INTERNAL
    assert "failed to open /run/flannel/subnet.env" in err.msg


def test_from_plugin_blank_stdout_counts_as_empty() -> None:
    err = CniError.from_plugin(b" \n", b"boom", 2)
    assert "boom" in err.msg


def test_from_plugin_nothing_at_all_still_says_what_happened() -> None:
    err = CniError.from_plugin(b"", b"", 137)
    assert err.code == CniCode.INTERNAL
    assert "no error message" in err.msg
    assert "137" in err.msg


@pytest.mark.parametrize("stdout", [b"panic: runtime error", b'{"cniVersion": "1.0.0"}', b"[1, 2]"])
def test_from_plugin_quotes_unparsable_stdout(stdout: bytes) -> None:
    err = CniError.from_plugin(stdout, b"stack trace", 2)
    assert err.code == CniCode.INTERNAL
    assert repr(stdout.decode()) in err.msg
    assert "2" in err.msg
    assert err.details == "stack trace"


def test_from_plugin_survives_invalid_utf8() -> None:
    err = CniError.from_plugin(b"\xff\xfe garbage", b"\xff", 1)
    assert err.code == CniCode.INTERNAL
    assert "garbage" in err.msg


def test_with_context_is_the_house_format_and_keeps_code_and_details() -> None:
    err = CniError(CniCode.TRY_AGAIN_LATER, 'plugin type="macvlan" failed (add): busy', "lock")
    ctx = err.with_context("default", "web-0", "macvlan-conf")
    assert ctx.msg == '[default/web-0:macvlan-conf] plugin type="macvlan" failed (add): busy'
    assert ctx.code == CniCode.TRY_AGAIN_LATER
    assert ctx.details == "lock"
    assert err.msg.startswith("plugin")  # the original is not changed
    assert ctx is not err


def test_with_prefix() -> None:
    err = CniError(5, "disk full").with_prefix("saving cache: ")
    assert err == CniError(5, "saving cache: disk full")


def test_is_an_exception() -> None:
    with pytest.raises(CniError, match=r"^nope$"):
        raise CniError(1, "nope")
