"""Network-namespace helpers for tests that run real CNI plugins (root only).

Every namespace is named ``mdt-<pid>-<random>``: unique across parallel test sessions on the same
machine, recognisable as ours, and listable per session (:func:`own_namespaces`) so a fixture can
verify none was left behind. :class:`NetnsFactory` records what it made and deletes all of it at
teardown, even when the test failed half-way (the containernetworking/plugins rig: a host
stand-in namespace and a pod namespace per test, removed in ``AfterEach``).

Everything here is synchronous ``ip``/``nsenter`` calls: fixtures and assertions, not the code
under test, and each call is a few milliseconds.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

NETNS_DIR = "/run/netns"
NAME_PREFIX = "mdt-"


def session_prefix() -> str:
    """The name prefix of namespaces made by this process."""
    return f"{NAME_PREFIX}{os.getpid()}-"


def run(argv: Sequence[str], *, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; a failure raises with stderr in the message."""
    proc = subprocess.run(
        list(argv), input=input.decode() if input else None, capture_output=True, text=True, timeout=30
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces() -> set[str]:
    """Names of every named network namespace (``ip netns list``)."""
    out = run(["ip", "-j", "netns", "list"]).stdout.strip()
    return {entry["name"] for entry in json.loads(out)} if out else set()


def own_namespaces() -> set[str]:
    """Named namespaces created by this process (see :func:`session_prefix`)."""
    return {name for name in list_namespaces() if name.startswith(session_prefix())}


@dataclass(frozen=True)
class Netns:
    """A named network namespace (``/run/netns/<name>``)."""

    name: str

    @property
    def path(self) -> str:
        return os.path.join(NETNS_DIR, self.name)

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (``ip netns exec``)."""
        return run(["ip", "netns", "exec", self.name, *argv], check=check)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n <name> …``."""
        return run(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> Any:
        """``ip -n <name> -j …``, decoded."""
        out = run(["ip", "-n", self.name, "-j", *args]).stdout.strip()
        return json.loads(out) if out else []

    def link_exists(self, ifname: str) -> bool:
        return self.ip("link", "show", "dev", ifname, check=False).returncode == 0

    def addresses(self, ifname: str) -> list[str]:
        """The interface's addresses as ``addr/prefix`` strings (link-local IPv6 left out)."""
        out = []
        for link in self.ip_json("addr", "show", "dev", ifname):
            for info in link.get("addr_info", []):
                if info.get("scope") == "link" and info.get("family") == "inet6":
                    continue
                out.append(f"{info['local']}/{info['prefixlen']}")
        return out

    def nsenter_prefix(self) -> list[str]:
        """argv prefix that runs a command inside this namespace (for ``SubprocessRunner``)."""
        return ["nsenter", f"--net={self.path}", "--"]


def create_netns(prefix: str | None = None) -> Netns:
    """Create a uniquely named namespace with ``lo`` up. The caller owns its deletion."""
    ns = Netns((prefix or session_prefix()) + secrets.token_hex(3))
    run(["ip", "netns", "add", ns.name])
    try:
        ns.ip("link", "set", "lo", "up")
    except BaseException:
        delete_netns(ns)
        raise
    return ns


def delete_netns(ns: Netns) -> None:
    """Delete the namespace; already gone is fine. Interfaces inside it go with it."""
    if ns.name in list_namespaces():
        run(["ip", "netns", "delete", ns.name])


def add_veth(ns: Netns, name: str, peer: str, peer_ns: Netns | None = None, *, up: bool = True) -> None:
    """A veth pair ``name`` (in ``ns``) ↔ ``peer`` (in ``peer_ns``, default the same namespace)."""
    ns.ip("link", "add", name, "type", "veth", "peer", "name", peer)
    if peer_ns is not None and peer_ns != ns:
        ns.ip("link", "set", peer, "netns", peer_ns.name)
    if up:
        ns.ip("link", "set", name, "up")
        (peer_ns or ns).ip("link", "set", peer, "up")


@dataclass
class NetnsFactory:
    """Makes namespaces and deletes every one of them in :meth:`cleanup` (reverse order)."""

    made: list[Netns] = field(default_factory=list)

    def create(self) -> Netns:
        ns = create_netns()
        self.made.append(ns)
        return ns

    def cleanup(self) -> None:
        errors = []
        for ns in reversed(self.made):
            try:
                delete_netns(ns)
            except Exception as exc:  # keep deleting the others, report at the end
                errors.append(f"{ns.name}: {exc}")
        self.made.clear()
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))


@contextmanager
def netns() -> Iterator[Netns]:
    """A namespace for the duration of a ``with`` block."""
    ns = create_netns()
    try:
        yield ns
    finally:
        delete_netns(ns)
