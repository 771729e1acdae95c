"""The real ``shim/passthru``, exec'd by the host interpreter as a runtime (or multusd) would.

Expected outputs are written by hand from upstream's passthru-cni and libcni's skel
(upstream-behaviour.md §11, §1.6): results and errors are ``json.MarshalIndent`` with 4 spaces and
no trailing newline, VERSION is one ``json.Encoder`` line, error texts are Go's.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

PASSTHRU = Path(__file__).resolve().parents[2] / "shim" / "passthru"
HOST_PYTHON = "/usr/bin/python3"
PASSTHRU_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

BASE_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "0f3c9d2e7a1b",
    "CNI_NETNS": "/var/run/netns/cni-1234",
    "CNI_IFNAME": "net3",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
}

SUPPORTED_DETAILS = 'plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]'


def conf(version: str | None = "1.0.0", **keys: Any) -> dict[str, Any]:
    """A chain member's conf as libcni sends it (name and cniVersion injected from the list)."""
    out: dict[str, Any] = {"type": "passthru", "name": "aux-chain"}
    if version is not None:
        out["cniVersion"] = version
    out.update(keys)
    return out


class Outcome:
    def __init__(self, proc: subprocess.CompletedProcess[bytes]) -> None:
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()

    def error(self) -> dict[str, Any]:
        assert self.rc == 1, (self.stdout, self.stderr)
        assert self.stderr == ""
        obj: dict[str, Any] = json.loads(self.stdout)
        return obj


def run(
    stdin: dict[str, Any] | bytes | None = None,
    *,
    python: str | None = None,
    **env: str | None,
) -> Outcome:
    """Exec passthru with BASE_ENV changed by ``env`` (None removes a variable)."""
    full_env = dict(BASE_ENV)
    for key, value in env.items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    data = stdin if isinstance(stdin, bytes) else b"" if stdin is None else json.dumps(stdin).encode()
    argv = [python, "-IS", str(PASSTHRU)] if python else [str(PASSTHRU)]
    return Outcome(subprocess.run(argv, input=data, env=full_env, capture_output=True, timeout=30))


def success(outcome: Outcome) -> str:
    assert (outcome.rc, outcome.stderr) == (0, ""), outcome.stdout
    return outcome.stdout


# --- the file itself -------------------------------------------------------------------------------


def test_parses_as_python_36_and_imports_only_c_level_modules() -> None:
    tree = ast.parse(PASSTHRU.read_text(encoding="utf-8"), feature_version=(3, 6))
    top_imports = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert top_imports == {"_json", "posix"}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree)), "no from-imports (or __future__)"
    nested = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert nested - top_imports == {"json.decoder"}  # loaded only on Python 3.10's error path


def test_is_an_executable_with_the_host_python_shebang() -> None:
    assert PASSTHRU.read_text(encoding="utf-8").splitlines()[0] == "#!/usr/bin/python3 -IS"
    assert PASSTHRU.stat().st_mode & 0o777 == 0o755


# --- ADD -------------------------------------------------------------------------------------------

# Upstream builds the result in the conf's version and prints it in that version, so no conversion
# runs: always just the version, for 0.x too (no "dns": {} as a converted 0.x result would have).
EXPECTED_ADD = {
    "0.3.0": '{\n    "cniVersion": "0.3.0"\n}',
    "0.3.1": '{\n    "cniVersion": "0.3.1"\n}',
    "0.4.0": '{\n    "cniVersion": "0.4.0"\n}',
    "1.0.0": '{\n    "cniVersion": "1.0.0"\n}',
    "1.1.0": '{\n    "cniVersion": "1.1.0"\n}',
}


@pytest.mark.parametrize("version", PASSTHRU_VERSIONS, ids=lambda v: f"[{v}]")
def test_add_prints_the_empty_result_in_the_conf_version(version: str) -> None:
    assert success(run(conf(version))) == EXPECTED_ADD[version]


def test_add_ignores_everything_else_in_the_conf() -> None:
    stdin = conf(
        "1.1.0",
        capabilities={"portMappings": True},
        runtimeConfig={"portMappings": [{"hostPort": 80}]},
        ipam={"type": "host-local"},
        dns={"nameservers": ["10.43.0.10"]},
        prevResult={"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.2/24"}]},
        args={"cni": {"x": 1}},
        vendorKey=[1, 2.5e300, 123456789012345678901234567890, None, True],
    )
    assert success(run(stdin)) == EXPECTED_ADD["1.1.0"]


def test_keys_match_case_insensitively_as_in_go() -> None:
    assert success(run(b'{"NAME": "aux-chain", "CNIVERSION": "0.4.0"}')) == EXPECTED_ADD["0.4.0"]


@pytest.mark.parametrize(
    "stdin", [conf(None), conf(""), conf("0.1.0"), conf("0.2.0")], ids=["absent", "empty", "0.1.0", "0.2.0"]
)
def test_add_for_a_version_passthru_does_not_support_is_code_1(stdin: dict[str, Any]) -> None:
    """skel reads a missing/empty cniVersion as 0.1.0 and refuses it before ADD runs."""
    version = stdin.get("cniVersion") or "0.1.0"
    assert run(stdin).error() == {
        "code": 1,
        "msg": "incompatible CNI versions",
        "details": f'config is "{version}", {SUPPORTED_DETAILS}',
    }


@pytest.mark.parametrize(
    ("keys", "go_error"),
    [
        ({"type": 5}, "json: cannot unmarshal number into Go struct field NetConf.type of type string"),
        (
            {"capabilities": ["mac"]},
            "json: cannot unmarshal array into Go struct field NetConf.capabilities of type map[string]bool",
        ),
        (
            {"capabilities": {"mac": "yes"}},
            "json: cannot unmarshal string into Go struct field NetConf.capabilities of type bool",
        ),
        ({"ipam": "host-local"}, "json: cannot unmarshal string into Go struct field NetConf.ipam of type types.IPAM"),
        ({"ipam": {"type": True}}, "json: cannot unmarshal bool into Go struct field IPAM.ipam.type of type string"),
        (
            {"dns": {"nameservers": "10.43.0.10"}},
            "json: cannot unmarshal string into Go struct field DNS.dns.nameservers of type []string",
        ),
        (
            {"prevResult": "none"},
            "json: cannot unmarshal string into Go struct field NetConf.prevResult of type map[string]interface {}",
        ),
        (
            {"cni.dev/valid-attachments": [{"containerID": 1}]},
            "json: cannot unmarshal number into Go struct field "
            "GCAttachment.cni.dev/valid-attachments.containerID of type string",
        ),
        # Go reports the first mismatch in input order, duplicates and other spellings included.
        (
            {"TYPE": {}, "dns": 1},
            "json: cannot unmarshal object into Go struct field NetConf.type of type string",
        ),
    ],
)
def test_add_with_a_conf_go_cannot_decode_is_code_999(keys: dict[str, Any], go_error: str) -> None:
    assert run(conf("1.0.0", **keys)).error() == {
        "code": 999,
        "msg": "passthru cni: error parsing CNI configuration: passthru cni: failed to load netconf: " + go_error,
    }


def test_null_values_are_ignored_as_go_does() -> None:
    stdin = conf("1.0.0", type=None, capabilities=None, ipam=None, dns={"domain": None}, prevResult=None)
    assert success(run(stdin)) == EXPECTED_ADD["1.0.0"]


# --- DEL, CHECK, GC, STATUS: silent successes ------------------------------------------------------


@pytest.mark.parametrize("version", PASSTHRU_VERSIONS, ids=lambda v: f"[{v}]")
def test_del_is_silent(version: str) -> None:
    assert success(run(conf(version), CNI_COMMAND="DEL")) == ""


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"], ids=lambda v: f"[{v}]")
def test_check_is_silent_from_0_4_0(version: str) -> None:
    assert success(run(conf(version), CNI_COMMAND="CHECK")) == ""


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_are_silent_at_1_1_0_and_need_only_cni_path(command: str) -> None:
    env = dict.fromkeys(("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"))
    stdin = conf("1.1.0", **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "net1"}]})
    assert success(run(stdin, CNI_COMMAND=command, **env)) == ""


def test_del_needs_no_netns() -> None:
    assert success(run(conf(), CNI_COMMAND="DEL", CNI_NETNS=None)) == ""


def test_del_does_not_decode_the_rest_of_the_conf() -> None:
    assert success(run(conf("1.0.0", type=5), CNI_COMMAND="DEL")) == ""


# --- version gating --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "version", "code", "msg"),
    [
        ("CHECK", "0.3.1", 1, "config version does not allow CHECK"),
        ("CHECK", "1.2.0", 1, "plugin version does not allow CHECK"),
        ("GC", "1.0.0", 1, "config version does not allow GC"),
        ("GC", "2.0.0", 1, "plugin version does not allow GC"),
        ("STATUS", "0.4.0", 1, "config version does not allow STATUS"),
        ("STATUS", "1.1.1", 1, "plugin version does not allow STATUS"),
        ("CHECK", "1.2.3.4", 6, 'invalid version "1.2.3.4": too many parts'),
        ("CHECK", "v1.0.0", 6, 'failed to convert major version part "v1": strconv.Atoi: parsing "v1": invalid syntax'),
        ("GC", "1.x", 6, 'failed to convert minor version part "x": strconv.Atoi: parsing "x": invalid syntax'),
        ("GC", "1.1.", 6, 'failed to convert micro version part "": strconv.Atoi: parsing "": invalid syntax'),
        (
            "STATUS",
            "1.99999999999999999999",
            6,
            'failed to convert minor version part "99999999999999999999": '
            'strconv.Atoi: parsing "99999999999999999999": value out of range',
        ),
    ],
)
def test_conf_version_must_allow_the_command(command: str, version: str, code: int, msg: str) -> None:
    assert run(conf(version), CNI_COMMAND=command).error() == {"code": code, "msg": msg}


@pytest.mark.parametrize(
    ("command", "version"),
    [("ADD", "1.2.0"), ("DEL", "0.2.0"), ("CHECK", "0.4.5"), ("CHECK", "+1.0.0"), ("STATUS", "1.1")],
)
def test_gated_versions_still_need_an_exact_match(command: str, version: str) -> None:
    assert run(conf(version), CNI_COMMAND=command).error() == {
        "code": 1,
        "msg": "incompatible CNI versions",
        "details": f'config is "{version}", {SUPPORTED_DETAILS}',
    }


# --- VERSION and the about text --------------------------------------------------------------------


def test_version_prints_one_encoder_line_without_reading_stdin() -> None:
    out = run(b"not json at all", CNI_COMMAND="VERSION", CNI_CONTAINERID=None, CNI_PATH=None)
    assert success(out) == '{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}\n'


def test_no_command_prints_the_about_text_on_stderr() -> None:
    out = run(b"not json", CNI_COMMAND=None)
    assert (out.rc, out.stdout) == (0, "")
    assert (
        out.stderr
        == "Passthrough CNI Plugin v1.0\nCNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
    )


# --- skel: environment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "removed", "missing"),
    [
        (
            "ADD",
            ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH",
        ),
        ("CHECK", ("CNI_NETNS",), "CNI_NETNS"),
        ("DEL", ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"), "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),
        ("GC", ("CNI_PATH",), "CNI_PATH"),
        ("STATUS", ("CNI_PATH",), "CNI_PATH"),
    ],
)
def test_missing_env_variables_are_code_4(command: str, removed: tuple[str, ...], missing: str) -> None:
    out = run(conf(), CNI_COMMAND=command, **dict.fromkeys(removed))
    assert out.stdout == '{\n    "code": 4,\n    "msg": "required env variables [' + missing + '] missing"\n}'
    assert out.rc == 1


def test_an_empty_value_counts_as_missing() -> None:
    assert run(conf(), CNI_IFNAME="").error() == {"code": 4, "msg": "required env variables [CNI_IFNAME] missing"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CNI_CONTAINERID": "-x"}, {"code": 4, "msg": "invalid characters in containerID", "details": "-x"}),
        ({"CNI_CONTAINERID": "a/b"}, {"code": 4, "msg": "invalid characters in containerID", "details": "a/b"}),
        (
            {"CNI_CONTAINERID": "caf\u00e9"},
            {"code": 4, "msg": "invalid characters in containerID", "details": "caf\u00e9"},
        ),
        (
            {"CNI_IFNAME": "net-sixteen-char"},
            {
                "code": 4,
                "msg": "interface name is too long",
                "details": "interface name should be less than 16 characters",
            },
        ),
        (
            {"CNI_IFNAME": "\u00e9" * 8},  # 8 characters, 16 bytes
            {
                "code": 4,
                "msg": "interface name is too long",
                "details": "interface name should be less than 16 characters",
            },
        ),
        ({"CNI_IFNAME": "."}, {"code": 4, "msg": "interface name is . or .."}),
        ({"CNI_IFNAME": ".."}, {"code": 4, "msg": "interface name is . or .."}),
        ({"CNI_IFNAME": "net:1"}, {"code": 4, "msg": "interface name contains / or : or whitespace characters"}),
        ({"CNI_IFNAME": "net\u00a01"}, {"code": 4, "msg": "interface name contains / or : or whitespace characters"}),
    ],
)
def test_invalid_env_values_are_code_4(env: dict[str, str], expected: dict[str, Any]) -> None:
    assert run(conf(), **env).error() == expected


def test_go_does_not_count_ascii_separators_as_whitespace() -> None:
    assert success(run(conf(), CNI_IFNAME="net\x1c1")) == EXPECTED_ADD["1.0.0"]


def test_undecodable_env_bytes_print_as_the_replacement_escape() -> None:
    proc = subprocess.run(
        [str(PASSTHRU)],
        input=json.dumps(conf()).encode(),
        env={**{k.encode(): v.encode() for k, v in BASE_ENV.items()}, b"CNI_CONTAINERID": b"a\xff"},
        capture_output=True,
        timeout=30,
    )
    assert proc.stdout.decode() == (
        '{\n    "code": 4,\n    "msg": "invalid characters in containerID",\n    "details": "a\\ufffd"\n}'
    )


def test_unknown_command_is_code_4_after_the_conf_checks() -> None:
    assert run(conf(), CNI_COMMAND="add").error() == {"code": 4, "msg": "unknown CNI_COMMAND: add"}
    assert run(b"{", CNI_COMMAND="add").error()["code"] == 6


# --- skel: stdin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "code", "msg"),
    [
        (b"", 6, "error unmarshall network config: unexpected end of JSON input"),
        (b" \n", 6, "error unmarshall network config: unexpected end of JSON input"),
        (b"not json", 6, "error unmarshall network config: invalid character 'o' in literal null (expecting 'u')"),
        (
            b"{'name': 1}",
            6,
            "error unmarshall network config: invalid character '\\'' looking for beginning of object key string",
        ),
        (
            b'{"name": "a",}',
            6,
            "error unmarshall network config: invalid character '}' looking for beginning of object key string",
        ),
        (b'{"name" "a"}', 6, "error unmarshall network config: invalid character '\"' after object key"),
        (
            b'{"name": "a" "b": 1}',
            6,
            "error unmarshall network config: invalid character '\"' after object key:value pair",
        ),
        (b'{"a": [1 2]}', 6, "error unmarshall network config: invalid character '2' after array element"),
        (b'{"a": [1,]}', 6, "error unmarshall network config: invalid character ']' looking for beginning of value"),
        (b'{"name": "a"} x', 6, "error unmarshall network config: invalid character 'x' after top-level value"),
        (b'{"a": 01}', 6, "error unmarshall network config: invalid character '1' after object key:value pair"),
        (
            b'{"a": 1.}',
            6,
            "error unmarshall network config: invalid character '}' after decimal point in numeric literal",
        ),
        (b'{"a": 1e+}', 6, "error unmarshall network config: invalid character '}' in exponent of numeric literal"),
        (b'{"a": -}', 6, "error unmarshall network config: invalid character '}' in numeric literal"),
        (b'{"a": NaN}', 6, "error unmarshall network config: invalid character 'N' looking for beginning of value"),
        (b'{"a": "\\q"}', 6, "error unmarshall network config: invalid character 'q' in string escape code"),
        (
            b'{"a": "\\u12x4"}',
            6,
            "error unmarshall network config: invalid character 'x' in \\u hexadecimal character escape",
        ),
        (b'{"a": "\n"}', 6, "error unmarshall network config: invalid character '\\n' in string literal"),
        (b'{"a": "open', 6, "error unmarshall network config: unexpected end of JSON input"),
        (
            "\u00e9".encode(),
            6,
            "error unmarshall network config: invalid character '\u00c3' looking for beginning of value",
        ),
        (
            b'["a list"]',
            6,
            "error unmarshall network config: json: cannot unmarshal array into Go value of type "
            'struct { Name string "json:\\"name\\"" }',
        ),
        (
            b'{"name": 5}',
            6,
            "error unmarshall network config: json: cannot unmarshal number into Go struct field .name of type string",
        ),
        (b"null", 7, "missing network name"),
        (b'{"cniVersion": "1.0.0"}', 7, "missing network name"),
        (
            b'{"name": "aux", "cniVersion": 1}',
            6,
            "decoding version from network config: "
            "json: cannot unmarshal number into Go struct field .cniVersion of type string",
        ),
    ],
)
def test_stdin_errors_have_go_texts(stdin: bytes, code: int, msg: str) -> None:
    assert run(stdin).error() == {"code": code, "msg": msg}


@pytest.mark.parametrize(
    ("name", "raw_details"),
    [("bad name", '"bad name"'), ("a<b>&c", '"a\\u003cb\\u003e\\u0026c"'), ("\u00e9t\u00e9", '"\u00e9t\u00e9"')],
)
def test_invalid_network_name_is_code_7_with_go_escaping(name: str, raw_details: str) -> None:
    out = run(json.dumps({"name": name, "cniVersion": "1.0.0"}, ensure_ascii=False).encode())
    assert out.rc == 1
    assert out.stdout == (
        f'{{\n    "code": 7,\n    "msg": "invalid characters found in network name",\n    "details": {raw_details}\n}}'
    )


def test_the_last_of_duplicate_keys_wins() -> None:
    assert run(b'{"name": "ok", "Name": "not ok"}').error()["details"] == "not ok"


# --- skel: the plugin's own netns ------------------------------------------------------------------


def test_add_into_its_own_netns_prints_the_result_then_code_8() -> None:
    out = run(conf(), CNI_NETNS="/proc/self/ns/net")
    assert out.rc == 1
    assert out.stdout == (
        EXPECTED_ADD["1.0.0"]
        + '{\n    "code": 8,\n    "msg": "plugin\'s netns and netns from CNI_NETNS should not be the same"\n}'
    )


def test_del_from_its_own_netns_is_code_8() -> None:
    out = run(conf(), CNI_COMMAND="DEL", CNI_NETNS="/proc/self/ns/net")
    assert out.error() == {"code": 8, "msg": "plugin's netns and netns from CNI_NETNS should not be the same"}


@pytest.mark.parametrize("override", ["true", "TRUE", "1"])
def test_netns_override_skips_the_check(override: str) -> None:
    out = run(conf(), CNI_NETNS="/proc/self/ns/net", CNI_NETNS_OVERRIDE=override)
    assert success(out) == EXPECTED_ADD["1.0.0"]


def test_check_does_not_look_at_the_netns() -> None:
    assert success(run(conf(), CNI_COMMAND="CHECK", CNI_NETNS="/proc/self/ns/net")) == ""


# --- other interpreters ----------------------------------------------------------------------------


def other_interpreters() -> list[Path]:
    """Old (and new) CPythons installed on this machine, standing in for RHEL 8 / Ubuntu 20.04 hosts."""
    return sorted((Path.home() / ".pyenv" / "versions").glob("3.*/bin/python3"))


@pytest.mark.parametrize(
    "python",
    other_interpreters() or [pytest.param(None, marks=pytest.mark.skip(reason="no pyenv CPythons here"))],
    ids=lambda p: p.parts[-3] if p else "none",
)
def test_runs_on_other_interpreters(python: Path) -> None:
    """Library APIs, not only syntax: success and each error path on every interpreter found."""
    py = str(python)
    assert success(run(conf("0.3.1"), python=py)) == EXPECTED_ADD["0.3.1"]
    assert success(run(conf(), CNI_COMMAND="DEL", python=py)) == ""
    assert success(run(None, CNI_COMMAND="VERSION", python=py)).startswith('{"cniVersion":"1.1.0"')
    assert run(b'{"name": "a" "b"}', python=py).error()["msg"].endswith("after object key:value pair")
    assert run(b'{"a": [1,]}', python=py).error()["msg"].endswith("']' looking for beginning of value")
    assert run(b'{"a": "\\q"}', python=py).error()["msg"].endswith("'q' in string escape code")
    assert run(conf("1.0.0", ipam=[]), python=py).error()["code"] == 999
    assert run(conf("1.x"), CNI_COMMAND="CHECK", python=py).error()["code"] == 6
    assert run(conf(), CNI_IFNAME="..", python=py).error()["code"] == 4


def test_runs_on_the_host_interpreter() -> None:
    assert Path(HOST_PYTHON).exists()
