"""The real ``shim/multus-shim``, run by the host interpreter against a stub daemon.

Every test execs the shim file itself (shebang ``/usr/bin/python3 -IS``, the Debian interpreter:
a "host python", not the venv) with CNI env and stdin, as containerd does, and checks what the
runtime would see: stdout, exit code, and what reached the daemon socket.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.shim_daemon_stub import Answer, StubDaemon

SHIM = Path(__file__).resolve().parents[2] / "shim" / "multus-shim"
HOST_PYTHON = "/usr/bin/python3"

BASE_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "0f3c9d2e7a1b",
    "CNI_NETNS": "/var/run/netns/cni-1234",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=1234",
}

# What multusd answers for an ADD: a 1.1.0 result, keys sorted (as Go's daemon sends it too).
DAEMON_RESULT: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "dns": {"nameservers": ["10.43.0.10"], "search": ["default.svc.cluster.local"]},
    "interfaces": [
        {"mac": "0a:58:0a:2a:00:09", "mtu": 1450, "name": "eth0", "sandbox": "/var/run/netns/cni-1234"},
        {"mac": "c2:11:22:33:44:55", "name": "net1", "sandbox": "/var/run/netns/cni-1234"},
    ],
    "ips": [
        {"address": "10.42.0.9/24", "gateway": "10.42.0.1", "interface": 0},
        {"address": "fd00:42::9/64", "gateway": "fd00:42::1", "interface": 0},
        {"address": "192.168.1.200/24", "interface": 1},
    ],
    "routes": [
        {"dst": "0.0.0.0/0", "gw": "10.42.0.1"},
        {"dst": "10.42.0.0/16", "gw": "10.42.0.1", "mtu": 1400},
        {"dst": "::/0", "gw": "fd00:42::1"},
    ],
}

# The same result as the runtime must see it, written by hand from the conversion rules
# (upstream-behaviour.md §1.6): 4-space indent, no trailing newline; 0.2.0 routes carry only
# dst and gw (libcni's convertTo02x).
EXPECTED_0_2_0 = """{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "10.42.0.9/24",
        "gateway": "10.42.0.1",
        "routes": [
            {
                "dst": "0.0.0.0/0",
                "gw": "10.42.0.1"
            },
            {
                "dst": "10.42.0.0/16",
                "gw": "10.42.0.1"
            }
        ]
    },
    "ip6": {
        "ip": "fd00:42::9/64",
        "gateway": "fd00:42::1",
        "routes": [
            {
                "dst": "::/0",
                "gw": "fd00:42::1"
            }
        ]
    },
    "dns": {
        "nameservers": [
            "10.43.0.10"
        ],
        "search": [
            "default.svc.cluster.local"
        ]
    }
}"""

EXPECTED_0_3_1 = """{
    "cniVersion": "0.3.1",
    "interfaces": [
        {
            "name": "eth0",
            "mac": "0a:58:0a:2a:00:09",
            "sandbox": "/var/run/netns/cni-1234"
        },
        {
            "name": "net1",
            "mac": "c2:11:22:33:44:55",
            "sandbox": "/var/run/netns/cni-1234"
        }
    ],
    "ips": [
        {
            "version": "4",
            "interface": 0,
            "address": "10.42.0.9/24",
            "gateway": "10.42.0.1"
        },
        {
            "version": "6",
            "interface": 0,
            "address": "fd00:42::9/64",
            "gateway": "fd00:42::1"
        },
        {
            "version": "4",
            "interface": 1,
            "address": "192.168.1.200/24"
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0",
            "gw": "10.42.0.1"
        },
        {
            "dst": "10.42.0.0/16",
            "gw": "10.42.0.1",
            "mtu": 1400
        },
        {
            "dst": "::/0",
            "gw": "fd00:42::1"
        }
    ],
    "dns": {
        "nameservers": [
            "10.43.0.10"
        ],
        "search": [
            "default.svc.cluster.local"
        ]
    }
}"""

EXPECTED_0_4_0 = EXPECTED_0_3_1.replace('"cniVersion": "0.3.1"', '"cniVersion": "0.4.0"', 1)

# 1.x: the daemon's result, only cniVersion changes; keys sorted at every level (libcni's 1.x form).
EXPECTED_1_1_0 = """{
    "cniVersion": "1.1.0",
    "dns": {
        "nameservers": [
            "10.43.0.10"
        ],
        "search": [
            "default.svc.cluster.local"
        ]
    },
    "interfaces": [
        {
            "mac": "0a:58:0a:2a:00:09",
            "mtu": 1450,
            "name": "eth0",
            "sandbox": "/var/run/netns/cni-1234"
        },
        {
            "mac": "c2:11:22:33:44:55",
            "name": "net1",
            "sandbox": "/var/run/netns/cni-1234"
        }
    ],
    "ips": [
        {
            "address": "10.42.0.9/24",
            "gateway": "10.42.0.1",
            "interface": 0
        },
        {
            "address": "fd00:42::9/64",
            "gateway": "fd00:42::1",
            "interface": 0
        },
        {
            "address": "192.168.1.200/24",
            "interface": 1
        }
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0",
            "gw": "10.42.0.1"
        },
        {
            "dst": "10.42.0.0/16",
            "gw": "10.42.0.1",
            "mtu": 1400
        },
        {
            "dst": "::/0",
            "gw": "fd00:42::1"
        }
    ]
}"""

EXPECTED_1_0_0 = EXPECTED_1_1_0.replace('"cniVersion": "1.1.0"', '"cniVersion": "1.0.0"', 1)


# --- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for sockets (AF_UNIX paths are limited to 108 bytes; tmp_path is long)."""
    path = Path(tempfile.mkdtemp(prefix="shim-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(sockdir: Path) -> Iterator[StubDaemon]:
    with StubDaemon(sockdir / "multus-cni-network.sock") as stub:
        yield stub


def make_conf(version: str = "1.1.0", **keys: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "multus-cni-network", "type": "multus-shim", **keys}


class Outcome:
    def __init__(self, proc: subprocess.CompletedProcess[bytes]) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_shim(
    conf: dict[str, Any] | bytes | None,
    *,
    args: tuple[str, ...] = (),
    timeout: float = 30,
    **env: str | None,
) -> Outcome:
    """Exec the shim as a runtime does; env values of None remove a BASE_ENV variable."""
    full_env = dict(BASE_ENV)
    for key, value in env.items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    stdin = conf if isinstance(conf, bytes) else b"" if conf is None else json.dumps(conf).encode()
    proc = subprocess.run([str(SHIM), *args], input=stdin, env=full_env, capture_output=True, timeout=timeout)
    return Outcome(proc)


def sock_conf(daemon: StubDaemon, version: str = "1.1.0", **keys: Any) -> dict[str, Any]:
    return make_conf(version, daemonSocketPath=daemon.path, **keys)


def error_of(outcome: Outcome) -> dict[str, Any]:
    assert outcome.rc == 1, (outcome.stdout, outcome.stderr)
    return outcome.json()


# --- the file itself -------------------------------------------------------------------------------


def test_shim_parses_as_python_36_and_imports_only_c_level_modules() -> None:
    source = SHIM.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 6))
    top_imports = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_imports.update(alias.name for alias in node.names)
        assert not isinstance(node, ast.ImportFrom), "no from-imports (and no __future__)"
    # The measured fast set (python-costs.md §3): no json, socket, base64, os or http.client.
    assert top_imports == {"_json", "_socket", "binascii", "posix", "sys", "time"}
    nested = {alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    assert not any(name.split(".")[0] == "multusd" for name in nested)


def test_shim_is_an_executable_with_the_host_python_shebang() -> None:
    assert SHIM.read_text(encoding="utf-8").splitlines()[0] == "#!/usr/bin/python3 -IS"
    assert SHIM.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("flag", ["-version", "-v", "--version"])
def test_version_flag(flag: str) -> None:
    out = run_shim(None, args=(flag,))
    assert out.rc == 0
    assert out.stdout.startswith("multus-shim: version:")


# --- skel rules ------------------------------------------------------------------------------------


def test_version_is_answered_locally(daemon: StubDaemon) -> None:
    out = run_shim(None, CNI_COMMAND="VERSION")
    assert out.rc == 0
    assert out.stdout == (
        '{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'
    )
    assert daemon.requests == []


def test_no_command_prints_about_on_stderr() -> None:
    out = run_shim(None, CNI_COMMAND=None)
    assert out.rc == 0
    assert out.stdout == ""
    assert "meta-plugin that delegates to other CNI plugins" in out.stderr
    assert "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in out.stderr


@pytest.mark.parametrize(
    ("command", "removed", "missing"),
    [
        (
            "ADD",
            ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH",
        ),
        ("CHECK", ("CNI_NETNS",), "CNI_NETNS"),
        ("DEL", ("CNI_IFNAME", "CNI_PATH"), "CNI_IFNAME,CNI_PATH"),
        ("GC", ("CNI_PATH",), "CNI_PATH"),
        ("STATUS", ("CNI_PATH",), "CNI_PATH"),
    ],
)
def test_missing_env_variables_are_code_4(command: str, removed: tuple[str, ...], missing: str) -> None:
    out = run_shim(make_conf(), CNI_COMMAND=command, **dict.fromkeys(removed))
    assert error_of(out) == {"code": 4, "msg": f"required env variables [{missing}] missing"}


def test_an_empty_value_counts_as_missing() -> None:
    out = run_shim(make_conf(), CNI_IFNAME="")
    assert error_of(out) == {"code": 4, "msg": "required env variables [CNI_IFNAME] missing"}


def test_del_needs_no_netns_and_gc_needs_no_container(daemon: StubDaemon) -> None:
    assert run_shim(sock_conf(daemon), CNI_COMMAND="DEL", CNI_NETNS=None).rc == 0
    gc_env = dict.fromkeys(("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"))
    assert run_shim(sock_conf(daemon), CNI_COMMAND="GC", **gc_env).rc == 0
    assert len(daemon.requests) == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"CNI_CONTAINERID": "-leading-dash"},
            {"code": 4, "msg": "invalid characters in containerID", "details": "-leading-dash"},
        ),
        ({"CNI_CONTAINERID": "abc/def"}, {"code": 4, "msg": "invalid characters in containerID", "details": "abc/def"}),
        (
            {"CNI_IFNAME": "a-very-long-ifname"},
            {
                "code": 4,
                "msg": "interface name is too long",
                "details": "interface name should be less than 16 characters",
            },
        ),
        ({"CNI_IFNAME": ".."}, {"code": 4, "msg": "interface name is . or .."}),
        ({"CNI_IFNAME": "net/1"}, {"code": 4, "msg": "interface name contains / or : or whitespace characters"}),
        ({"CNI_IFNAME": "net 1"}, {"code": 4, "msg": "interface name contains / or : or whitespace characters"}),
    ],
)
def test_invalid_env_values(env: dict[str, str], expected: dict[str, Any]) -> None:
    assert error_of(run_shim(make_conf(), **env)) == expected


def test_unknown_command_is_code_4() -> None:
    assert error_of(run_shim(make_conf(), CNI_COMMAND="FROB")) == {"code": 4, "msg": "unknown CNI_COMMAND: FROB"}


@pytest.mark.parametrize(
    ("stdin", "code", "msg"),
    [
        (b"this is not json", 6, "error unmarshall network config"),
        (b'["a list"]', 6, "error unmarshall network config"),
        (b'{"cniVersion": "1.1.0", "name": 5}', 6, "error unmarshall network config"),
        (b'{"cniVersion": "1.1.0"}', 7, "missing network name"),
        (b'{"cniVersion": "1.1.0", "name": "bad name!"}', 7, "invalid characters found in network name"),
    ],
)
def test_stdin_must_be_json_with_a_valid_name(stdin: bytes, code: int, msg: str) -> None:
    err = error_of(run_shim(stdin))
    assert (err["code"], err["msg"]) == (code, msg)


@pytest.mark.parametrize(
    ("command", "version", "msg"),
    [
        ("CHECK", "0.3.1", "config version does not allow CHECK"),
        ("GC", "1.0.0", "config version does not allow GC"),
        ("STATUS", "0.4.0", "config version does not allow STATUS"),
        ("ADD", "0.5.0", "incompatible CNI versions"),
    ],
)
def test_conf_version_must_allow_the_command(command: str, version: str, msg: str, daemon: StubDaemon) -> None:
    err = error_of(run_shim(sock_conf(daemon, version), CNI_COMMAND=command))
    assert (err["code"], err["msg"]) == (1, msg)
    assert daemon.requests == []


def test_incompatible_version_details_list_the_supported_versions() -> None:
    err = error_of(run_shim(make_conf("2.0.0")))
    assert err["details"] == (
        'config is "2.0.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]'
    )


def test_netns_of_the_shim_itself_is_refused(daemon: StubDaemon) -> None:
    err = error_of(run_shim(sock_conf(daemon), CNI_NETNS="/proc/self/ns/net"))
    assert err == {"code": 8, "msg": "plugin's netns and netns from CNI_NETNS should not be the same"}
    assert daemon.requests == []


# --- ADD: the request and the printed result --------------------------------------------------------


def test_add_request_shape(daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    stdin = json.dumps(sock_conf(daemon), indent=1).encode() + b"\n"  # odd layout: sent as is, not re-encoded
    out = run_shim(stdin, EXTRA_VAR="kept as is = with equals", CNI_ARGS="K8S_POD_NAME=a;K8S_POD_NAMESPACE=b")
    assert out.rc == 0, out.stdout
    (request,) = daemon.requests
    assert (request.method, request.path) == ("POST", "/cni")
    assert request.headers["host"] == "dummy"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["connection"] == "close"
    body = request.json()
    assert set(body) == {"env", "config"}
    assert base64.b64decode(body["config"], validate=True) == stdin
    assert body["config"] == base64.b64encode(stdin).decode()  # standard alphabet, with padding
    expected_env = {
        **BASE_ENV,
        "EXTRA_VAR": "kept as is = with equals",
        "CNI_ARGS": "K8S_POD_NAME=a;K8S_POD_NAMESPACE=b",
    }
    # The whole environment; Python ≥3.7 may add LC_CTYPE=C.UTF-8 itself (PEP 538 locale coercion).
    extra = {k: v for k, v in body["env"].items() if k not in expected_env}
    assert {k: body["env"][k] for k in expected_env} == expected_env
    assert set(extra) <= {"LC_CTYPE"}


def test_add_sends_non_utf8_env_and_stdin_bytes_intact(daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    stdin = json.dumps(sock_conf(daemon)).encode()[:-1] + b', "x": "caf\xc3\xa9"}'
    env = {**BASE_ENV, "WEIRD": "caf\udce9"}  # a raw 0xE9 byte in the environment
    proc = subprocess.run(
        [str(SHIM)], input=stdin, capture_output=True, timeout=30, env={k: os.fsencode(v) for k, v in env.items()}
    )
    assert proc.returncode == 0, proc.stdout
    body = daemon.requests[0].json()
    assert base64.b64decode(body["config"]) == stdin
    assert body["env"]["WEIRD"] in ("caf\udce9", "caf\ufffd")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.2.0", EXPECTED_0_2_0),
        ("0.3.1", EXPECTED_0_3_1),
        ("0.4.0", EXPECTED_0_4_0),
        ("1.0.0", EXPECTED_1_0_0),
        ("1.1.0", EXPECTED_1_1_0),
    ],
)
def test_add_prints_the_result_in_the_stdin_version(version: str, expected: str, daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    out = run_shim(sock_conf(daemon, version))
    assert out.rc == 0, out.stdout
    assert out.stdout == expected


def test_add_0_1_0_is_the_legacy_form_too(daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    out = run_shim(sock_conf(daemon, "0.1.0"))
    assert out.json() == {**json.loads(EXPECTED_0_2_0), "cniVersion": "0.1.0"}


def test_add_without_cni_version_prints_0_1_0(daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    conf = sock_conf(daemon)
    del conf["cniVersion"]
    assert run_shim(conf).json()["cniVersion"] == "0.1.0"


def test_add_result_for_0_4_0_keeps_dns_even_when_empty_and_drops_1x_only_fields(daemon: StubDaemon) -> None:
    daemon.script(
        Answer.result(
            {
                "cniVersion": "1.1.0",
                "interfaces": [{"name": "eth0", "mtu": 1500, "socketPath": "/x", "pciID": "0000:00:01.0"}],
                "ips": [{"address": "10.1.1.5/24"}],
            }
        )
    )
    out = run_shim(sock_conf(daemon, "0.4.0"))
    assert out.stdout == json.dumps(
        {
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0"}],
            "ips": [{"version": "4", "address": "10.1.1.5/24"}],
            "dns": {},
        },
        indent=4,
    )


def test_add_result_1x_drops_empty_dns(daemon: StubDaemon) -> None:
    daemon.script(Answer.result({"cniVersion": "1.1.0", "dns": {}, "ips": [{"address": "10.1.1.5/24"}]}))
    out = run_shim(sock_conf(daemon, "1.0.0"))
    assert out.stdout == (
        '{\n    "cniVersion": "1.0.0",\n    "ips": [\n        {\n            "address": "10.1.1.5/24"\n'
        "        }\n    ]\n}"
    )


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_empty_result_is_valid_in_every_version(version: str, daemon: StubDaemon) -> None:
    daemon.script(Answer.result({"cniVersion": "1.1.0"}))
    out = run_shim(sock_conf(daemon, version))
    assert out.rc == 0
    expected = {"cniVersion": version} if version.startswith("1.") else {"cniVersion": version, "dns": {}}
    assert out.stdout == json.dumps(expected, indent=4)  # libcni prints 0.x results with an empty dns


def test_0_2_0_without_any_ip_cannot_convert(daemon: StubDaemon) -> None:
    daemon.script(Answer.result({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}]}))
    err = error_of(run_shim(sock_conf(daemon, "0.2.0")))
    assert err == {"code": 999, "msg": "CmdAdd (shim): cannot convert: no valid IP addresses"}


def test_200_without_result_is_a_clear_error(daemon: StubDaemon) -> None:
    daemon.script(Answer(200, {"result_missing": True}, "application/json"))
    err = error_of(run_shim(sock_conf(daemon)))
    assert err["code"] == 999
    assert err["msg"].startswith("CmdAdd (shim): the daemon answered 200 without a Result")


def test_chunked_answer_is_decoded(daemon: StubDaemon) -> None:
    daemon.script(Answer(200, {"Result": DAEMON_RESULT}, "application/json", chunked=True))
    assert run_shim(sock_conf(daemon)).stdout == EXPECTED_1_1_0


def test_answer_without_content_length_is_read_to_eof(daemon: StubDaemon) -> None:
    daemon.script(Answer(200, {"Result": DAEMON_RESULT}, "application/json", content_length=False))
    assert run_shim(sock_conf(daemon, "0.3.1")).stdout == EXPECTED_0_3_1


# --- ADD: errors from the daemon -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        Answer.cni_error(7, "[default/web:macvlan-conf] invalid config: master is required", "from NAD"),
        Answer.cni_error(50, "plugin not available"),
        Answer.cni_error(11, "try again later", status=500),
    ],
)
def test_cni_error_from_the_daemon_keeps_its_code(answer: Answer, daemon: StubDaemon) -> None:
    daemon.script(answer)
    out = run_shim(sock_conf(daemon))
    assert error_of(out) == answer.body
    assert out.stdout == json.dumps(answer.body, indent=4)


def test_non_cni_error_body_is_999_with_the_status(daemon: StubDaemon) -> None:
    daemon.script(Answer(400, "could not extract the CNI command args: missing CNI_ARGS\n"))
    err = error_of(run_shim(sock_conf(daemon)))
    assert err == {
        "code": 999,
        "msg": "CmdAdd (shim): CNI request failed with status 400: "
        "'could not extract the CNI command args: missing CNI_ARGS'",
    }


def test_json_body_without_msg_is_not_a_cni_error(daemon: StubDaemon) -> None:
    daemon.script(Answer(500, {"error": "boom"}, "application/json"))
    err = error_of(run_shim(sock_conf(daemon), CNI_COMMAND="CHECK"))
    assert err == {"code": 999, "msg": 'CmdCheck (shim): CNI request failed with status 500: \'{"error": "boom"}\''}


def test_connection_closed_without_answer(daemon: StubDaemon) -> None:
    daemon.script(Answer(hang_up=True))
    err = error_of(run_shim(sock_conf(daemon)))
    assert err["code"] == 999
    assert "closed the connection without an answer" in err["msg"]
    assert len(daemon.requests) == 1  # sent once: never retried, the ADD may have happened


def test_an_answer_that_never_comes_is_bounded_by_daemon_request_timeout(daemon: StubDaemon) -> None:
    daemon.script(Answer(200, "", delay_seconds=3))
    started = time.monotonic()
    err = error_of(run_shim(sock_conf(daemon, daemonRequestTimeout=0.5)))
    assert time.monotonic() - started < 2.5
    assert err["code"] == 999
    assert "within 0.5 s (daemonRequestTimeout)" in err["msg"]


def test_invalid_timeout_setting_is_a_config_error(daemon: StubDaemon) -> None:
    err = error_of(run_shim(sock_conf(daemon, daemonReadyTimeout="soon")))
    assert err["code"] == 7
    assert err["msg"].startswith("CmdAdd (shim): invalid CNI configuration passed to multus-shim: daemonReadyTimeout")


# --- readiness: absent daemon, 503 ------------------------------------------------------------------


def test_daemon_appearing_late_is_waited_for(sockdir: Path) -> None:
    stub = StubDaemon(sockdir / "multus-cni-network.sock")
    stub.script(Answer.result(DAEMON_RESULT))
    timer = stub.start_after(1.0)
    try:
        started = time.monotonic()
        out = run_shim(make_conf(daemonSocketDir=str(sockdir)))
        assert out.rc == 0, out.stdout
        assert out.stdout == EXPECTED_1_1_0
        assert 0.9 < time.monotonic() - started < 5
        assert len(stub.requests) == 1
    finally:
        timer.join()
        stub.stop()


def test_daemon_absent_past_the_ready_timeout_is_code_11(sockdir: Path) -> None:
    path = sockdir / "multus-cni-network.sock"
    started = time.monotonic()
    err = error_of(run_shim(make_conf(daemonSocketPath=str(path), daemonReadyTimeout=1)))
    assert 0.9 < time.monotonic() - started < 3
    assert err["code"] == 11
    assert err["msg"] == (
        f"CmdAdd (shim): the multusd daemon at {path} was not reachable or not ready for 1 s; "
        "is the multusd DaemonSet pod running and ready on this node? (check its logs)"
    )
    assert "No such file or directory" in err["details"]


def test_stale_socket_file_is_retried_like_an_absent_daemon(sockdir: Path) -> None:
    import socket

    path = sockdir / "multus-cni-network.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # bound, never listening: ECONNREFUSED
    stale.close()
    err = error_of(run_shim(make_conf(daemonSocketPath=str(path), daemonReadyTimeout=0.3)))
    assert err["code"] == 11
    assert "Connection refused" in err["details"]


def test_503_is_retried_until_the_daemon_is_ready(daemon: StubDaemon) -> None:
    daemon.script(Answer(503, "multusd is starting"), Answer(503, "multusd is starting"), Answer.result(DAEMON_RESULT))
    out = run_shim(sock_conf(daemon))
    assert out.rc == 0, out.stdout
    assert out.stdout == EXPECTED_1_1_0
    assert [r.path for r in daemon.requests] == ["/cni", "/cni", "/cni"]
    gaps = [b.received_at - a.received_at for a, b in zip(daemon.requests, daemon.requests[1:], strict=False)]
    assert all(0.08 < gap < 1.0 for gap in gaps), gaps


def test_503_past_the_ready_timeout_is_code_11(daemon: StubDaemon) -> None:
    daemon.script(Answer(503, "shutting down"))
    err = error_of(run_shim(sock_conf(daemon, daemonReadyTimeout=0.5)))
    assert err["code"] == 11
    assert "HTTP 503: shutting down" in err["details"]


def test_ready_daemon_costs_one_round_trip(daemon: StubDaemon) -> None:
    daemon.script(Answer.result(DAEMON_RESULT))
    run_shim(sock_conf(daemon))
    assert [r.path for r in daemon.requests] == ["/cni"]  # no /readyz first


# --- socket path resolution -------------------------------------------------------------------------


def test_socket_path_key_wins(sockdir: Path) -> None:
    with StubDaemon(sockdir / "custom.sock") as stub:
        out = run_shim(
            make_conf(daemonSocketPath=str(sockdir / "custom.sock"), daemonSocketDir="/nonexistent"), CNI_COMMAND="DEL"
        )
        assert out.rc == 0 and len(stub.requests) == 1


def test_socket_dir_key_uses_our_socket_name(sockdir: Path) -> None:
    with StubDaemon(sockdir / "multus-cni-network.sock") as stub:
        assert run_shim(make_conf(daemonSocketDir=str(sockdir)), CNI_COMMAND="DEL").rc == 0
        assert run_shim(make_conf(daemonSocketDir=str(sockdir) + "/"), CNI_COMMAND="DEL").rc == 0
        assert len(stub.requests) == 2


def test_socket_dir_falls_back_to_upstream_multus_sock(sockdir: Path) -> None:
    with StubDaemon(sockdir / "multus.sock") as upstream:
        assert run_shim(make_conf(daemonSocketDir=str(sockdir)), CNI_COMMAND="DEL").rc == 0
        assert len(upstream.requests) == 1


def test_our_socket_is_preferred_when_both_exist(sockdir: Path) -> None:
    with StubDaemon(sockdir / "multus.sock") as upstream, StubDaemon(sockdir / "multus-cni-network.sock") as ours:
        assert run_shim(make_conf(daemonSocketDir=str(sockdir)), CNI_COMMAND="DEL").rc == 0
        assert (len(ours.requests), len(upstream.requests)) == (1, 0)


def test_default_socket_path_is_named_in_the_error() -> None:
    if os.path.exists("/run/multus"):
        pytest.skip("a multus daemon socket directory exists on this machine")
    err = error_of(run_shim(make_conf(daemonDelTimeout=0), CNI_COMMAND="DEL"))
    assert err["code"] == 11
    assert "/run/multus/multus-cni-network.sock" in err["msg"]


# --- DEL, CHECK, GC, STATUS -------------------------------------------------------------------------


def test_del_success_is_silent(daemon: StubDaemon) -> None:
    out = run_shim(sock_conf(daemon), CNI_COMMAND="DEL")
    assert (out.rc, out.stdout) == (0, "")
    assert daemon.requests[0].json()["env"]["CNI_COMMAND"] == "DEL"


def test_del_with_a_cni_error_fails_so_the_runtime_retries(daemon: StubDaemon) -> None:
    daemon.script(Answer.cni_error(11, "[default/web:macvlan-conf] delegate DEL failed: timeout"))
    err = error_of(run_shim(sock_conf(daemon), CNI_COMMAND="DEL"))
    assert err == {"code": 11, "msg": "[default/web:macvlan-conf] delegate DEL failed: timeout"}


def test_del_with_daemon_absent_gives_up_after_daemon_del_timeout(sockdir: Path) -> None:
    started = time.monotonic()
    out = run_shim(
        make_conf(daemonSocketDir=str(sockdir), daemonDelTimeout=0.5, daemonReadyTimeout=60), CNI_COMMAND="DEL"
    )
    assert time.monotonic() - started < 2
    err = error_of(out)
    assert err["code"] == 11
    assert err["msg"].startswith("CmdDel (shim): the multusd daemon at ")
    assert "not reachable or not ready for 0.5 s" in err["msg"]


@pytest.mark.parametrize("command", ["CHECK", "GC", "STATUS"])
def test_check_gc_status_success_is_silent(command: str, daemon: StubDaemon) -> None:
    out = run_shim(sock_conf(daemon), CNI_COMMAND=command)
    assert (out.rc, out.stdout) == (0, "")
    assert daemon.requests[0].json()["env"]["CNI_COMMAND"] == command


def test_status_error_keeps_its_code(daemon: StubDaemon) -> None:
    daemon.script(Answer.cni_error(50, "plugin not available", "flannel: subnet.env missing"))
    err = error_of(run_shim(sock_conf(daemon), CNI_COMMAND="STATUS"))
    assert err == {"code": 50, "msg": "plugin not available", "details": "flannel: subnet.env missing"}


# --- logging ----------------------------------------------------------------------------------------


def test_silent_by_default_and_logs_to_log_file_when_asked(daemon: StubDaemon, sockdir: Path) -> None:
    daemon.script(Answer(503, "starting"), Answer.result(DAEMON_RESULT))
    quiet = run_shim(sock_conf(daemon))
    assert quiet.stderr == ""
    log_file = sockdir / "shim.log"
    daemon.script(Answer(503, "starting"), Answer.result(DAEMON_RESULT))
    loud = run_shim(sock_conf(daemon, logFile=str(log_file), logLevel="debug", logToStderr=True))
    assert loud.rc == 0
    text = log_file.read_text()
    assert "[verbose] daemon" in text and "not ready (HTTP 503: starting)" in text
    assert "[debug] daemon" in text
    assert "[verbose]" in loud.stderr


# --- against a real aiohttp server ------------------------------------------------------------------


async def test_against_an_aiohttp_unix_site(sockdir: Path) -> None:
    """aiohttp's HTTP framing (what multusd's server uses), with a result big enough to chunk."""
    seen: list[dict[str, Any]] = []
    big = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": f"net{i}", "mac": f"c2:11:22:33:44:{i:02x}"} for i in range(60)],
        "ips": [{"address": f"10.{i}.0.5/24", "interface": i} for i in range(60)],
    }

    async def cni(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(json.dumps({"Result": big}).encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/cni", cni)
    runner = web.AppRunner(app)
    await runner.setup()
    path = sockdir / "multus-cni-network.sock"
    await web.UnixSite(runner, str(path)).start()
    try:
        env = {**BASE_ENV}
        proc = await asyncio.create_subprocess_exec(
            str(SHIM), env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        stdin = json.dumps(make_conf("0.3.1", daemonSocketDir=str(sockdir))).encode()
        stdout, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
    finally:
        await runner.cleanup()
    assert proc.returncode == 0, stdout
    printed = json.loads(stdout)
    assert len(printed["interfaces"]) == 60
    assert printed["ips"][59] == {"version": "4", "interface": 59, "address": "10.59.0.5/24"}
    assert base64.b64decode(seen[0]["config"]) == stdin


def other_interpreters() -> list[Path]:
    """Old (and new) CPythons installed on this machine, standing in for RHEL 8 / Ubuntu 20.04 hosts."""
    return sorted((Path.home() / ".pyenv" / "versions").glob("3.*/bin/python3"))


@pytest.mark.parametrize(
    "python",
    other_interpreters() or [pytest.param(None, marks=pytest.mark.skip(reason="no pyenv CPythons here"))],
    ids=lambda p: p.parts[-3] if p else "none",
)
def test_runs_on_other_interpreters(python: Path, daemon: StubDaemon) -> None:
    """Library APIs, not only syntax: the happy path and the error paths on every interpreter found."""

    def run(conf: dict[str, Any] | bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
        stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        cmd = [str(python), "-IS", str(SHIM)]
        return subprocess.run(cmd, input=stdin, env={**BASE_ENV, **env}, capture_output=True, timeout=30)

    assert run(b"", CNI_COMMAND="VERSION").stdout.startswith(b'{"cniVersion":"1.1.0"')
    bad = run(b"{not json")
    assert (bad.returncode, json.loads(bad.stdout)["code"]) == (1, 6), bad.stderr
    daemon.script(Answer(503, "starting"), Answer(200, {"Result": DAEMON_RESULT}, chunked=True))
    assert run(sock_conf(daemon, "0.2.0")).stdout.decode() == EXPECTED_0_2_0
    daemon.script(Answer.result(DAEMON_RESULT))
    assert (
        run(sock_conf(daemon, "1.1.0", logFile=str(Path(daemon.path).parent / "log"), logLevel="debug")).stdout.decode()
        == EXPECTED_1_1_0
    )
    daemon.script(Answer(400, "plain text failure\n"))
    failed = run(sock_conf(daemon))
    assert json.loads(failed.stdout)["msg"] == "CmdAdd (shim): CNI request failed with status 400: 'plain text failure'"
    daemon.script(Answer.cni_error(50, "plugin not available"))
    assert json.loads(run(sock_conf(daemon), CNI_COMMAND="DEL").stdout) == {"code": 50, "msg": "plugin not available"}


def test_runs_on_the_host_interpreter() -> None:
    """The tests above exec the shebang; make sure that really is a different, system Python."""
    assert Path(HOST_PYTHON).exists()
    assert sys.executable != HOST_PYTHON
