"""libcni's result cache: ``<cache_dir>/results/<networkName>-<containerID>-<ifName>``.

The format is libcni's ``cniCacheV1`` (upstream-behaviour §7.2), byte-compatible in content so a
node can switch between the Go image and multusd and still DEL pods attached by the other:

    {"kind":"cniCacheV1","containerId":…,"config":"<base64 of the conf/list bytes>","ifName":…,
     "networkName":…,"netns":…,"cniArgs":[[k,v],…],"capabilityArgs":{…},"result":{…}}

``netns``, ``cniArgs``, ``capabilityArgs`` and ``result`` are left out when empty (Go ``omitempty``).
Readers ignore key order and unknown keys; pre-``cniCacheV1`` files (a bare result) are read too.

Unlike libcni (``os.WriteFile``), entries are written tmp + fsync + rename, so a crash leaves the
old entry or the new one, never half of one (P5/P6). A corrupt entry is reported as a distinct
:class:`CacheCorruptError` carrying the reason, so each caller applies its own rule: list DEL
removes it and carries on without a prevResult, single-conf DEL fails, GC skips it.

All methods are synchronous and small; the runtime calls :meth:`ResultCache.save` (the one with
an fsync) through a thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .atomicfile import write_atomic
from .errors import CniCode, CniError

log = logging.getLogger(__name__)

CACHE_KIND_V1 = "cniCacheV1"
RESULTS_DIR = "results"
DEFAULT_CACHE_DIR = "/var/lib/cni"


class CacheCorruptError(CniError):
    """A cache entry exists but cannot be used; ``reason`` says why, ``path`` which file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(CniCode.DECODING_FAILURE, f"corrupt CNI result cache {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class CacheEntry:
    """One attachment as libcni caches it (``cachedInfo``).

    ``result`` is the final plugin's result in its own version, as the plugin printed it (after
    libcni's missing-``cniVersion`` fix-up); ``config`` the exact conf/list bytes that ran.
    ``legacy`` marks a pre-cniCacheV1 file: only ``result`` is known.
    """

    network_name: str
    container_id: str
    ifname: str
    config: bytes = field(repr=False, default=b"")
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict, repr=False)
    result: Mapping[str, Any] | None = field(default=None, repr=False)
    legacy: bool = False

    def to_json(self) -> dict[str, Any]:
        """The cniCacheV1 object, keys in Go's declaration order, empty optionals left out."""
        obj: dict[str, Any] = {
            "kind": CACHE_KIND_V1,
            "containerId": self.container_id,
            "config": base64.b64encode(self.config).decode("ascii"),
            "ifName": self.ifname,
            "networkName": self.network_name,
        }
        if self.netns:
            obj["netns"] = self.netns
        if self.cni_args:
            obj["cniArgs"] = [[k, v] for k, v in self.cni_args]
        if self.capability_args:
            obj["capabilityArgs"] = dict(self.capability_args)
        if self.result:
            obj["result"] = dict(self.result)
        return obj

    @classmethod
    def from_json(cls, obj: Any, path: str = "<cache>") -> CacheEntry:
        """Parse a cniCacheV1 object; anything unusable raises :class:`CacheCorruptError`."""
        if not isinstance(obj, dict):
            raise CacheCorruptError(path, "not a JSON object")
        kind = obj.get("kind")
        if kind != CACHE_KIND_V1:
            if kind is None and isinstance(obj.get("cniVersion"), str):
                # libcni's legacy layout: the file *is* the result.
                return cls("", "", "", result=obj, legacy=True)
            raise CacheCorruptError(path, f"wrong kind {kind!r}")

        def text(key: str) -> str:
            value = obj.get(key)
            if value is None:
                return ""
            if not isinstance(value, str):
                raise CacheCorruptError(path, f"{key} is not a string")
            return value

        raw_config = obj.get("config")
        config = b""
        if raw_config is not None:
            if not isinstance(raw_config, str):
                raise CacheCorruptError(path, "config is not a base64 string")
            try:
                config = base64.b64decode(raw_config, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CacheCorruptError(path, f"config is not valid base64: {exc}") from exc
        raw_args = obj.get("cniArgs") or []
        if not isinstance(raw_args, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in raw_args
        ):
            raise CacheCorruptError(path, "cniArgs is not a list of [key, value] string pairs")
        caps = obj.get("capabilityArgs") or {}
        if not isinstance(caps, dict):
            raise CacheCorruptError(path, "capabilityArgs is not an object")
        result = obj.get("result")
        if result is not None and not isinstance(result, dict):
            raise CacheCorruptError(path, "result is not an object")
        return cls(
            network_name=text("networkName"),
            container_id=text("containerId"),
            ifname=text("ifName"),
            config=config,
            netns=text("netns"),
            cni_args=tuple((k, v) for k, v in raw_args),
            capability_args=caps,
            result=result or None,
        )


class ResultCache:
    """The ``results/`` directory under a CNI cache dir (default ``/var/lib/cni``)."""

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = cache_dir
        self.results_dir = os.path.join(cache_dir, RESULTS_DIR)

    def path(self, network_name: str, container_id: str, ifname: str) -> str:
        """The entry's file; libcni refuses to build it from an empty part."""
        if not network_name or not container_id or not ifname:
            raise CniError(
                CniCode.INVALID_ENVIRONMENT_VARIABLES,
                f"cache file path requires network name ({_go_quote(network_name)}), container ID "
                f"({_go_quote(container_id)}), and interface name ({_go_quote(ifname)})",
            )
        return os.path.join(self.results_dir, f"{network_name}-{container_id}-{ifname}")

    def save(self, entry: CacheEntry) -> str:
        """Write ``entry`` atomically (tmp in the same dir, fsync, rename, fsync dir); its path."""
        path = self.path(entry.network_name, entry.container_id, entry.ifname)
        data = json.dumps(entry.to_json(), separators=(",", ":"), ensure_ascii=False).encode()
        os.makedirs(self.results_dir, mode=0o700, exist_ok=True)
        write_atomic(path, data)
        return path

    def load(self, network_name: str, container_id: str, ifname: str) -> CacheEntry | None:
        """The entry, None when there is none; :class:`CacheCorruptError` when it is unusable."""
        path = self.path(network_name, container_id, ifname)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheCorruptError(path, f"unreadable: {exc.strerror or exc}") from exc
        return _parse_file(path, data)

    def delete(self, network_name: str, container_id: str, ifname: str) -> bool:
        """Remove the entry; False when there was none (or a part is empty, as libcni ignores)."""
        try:
            path = self.path(network_name, container_id, ifname)
        except CniError:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def attachments(self, network_name: str | None = None, container_id: str | None = None) -> list[CacheEntry]:
        """Usable cniCacheV1 entries, by file name, optionally for one network and/or container.

        As libcni ``GetCachedAttachments``: unreadable, corrupt and legacy files and entries
        without an ifName or network name are skipped (logged here); a missing dir is empty.
        """
        try:
            names = sorted(os.listdir(self.results_dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CniError(
                CniCode.IO_FAILURE, f"cannot list CNI result cache {self.results_dir}: {exc.strerror or exc}"
            ) from exc
        out = []
        for name in names:
            if name.startswith(".tmp-"):
                continue
            if container_id and f"-{container_id}-" not in name:
                continue
            path = os.path.join(self.results_dir, name)
            try:
                with open(path, "rb") as f:
                    entry = _parse_file(path, f.read())
            except (OSError, CacheCorruptError) as exc:
                log.debug("skipping cache entry %s: %s", path, exc)
                continue
            if entry.legacy or not entry.ifname or not entry.network_name or not entry.container_id:
                continue
            if container_id and entry.container_id != container_id:
                continue
            if network_name is not None and entry.network_name != network_name:
                continue
            out.append(entry)
        return out


def _parse_file(path: str, data: bytes) -> CacheEntry:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CacheCorruptError(path, f"invalid JSON: {exc}") from exc
    return CacheEntry.from_json(obj, path)


def _go_quote(s: str) -> str:
    return json.dumps(s)
