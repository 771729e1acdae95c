"""ADD / DEL / CHECK / GC / STATUS for a conf or a list — libcni's ``api.go`` in Python.

What a plugin receives (upstream-behaviour §12.7), built by :func:`build_plugin_conf`:

* its original JSON with ``name`` and ``cniVersion`` set to the list's (or the conf's own);
* ``prevResult``: during ADD the previous plugin's result; during CHECK and DEL (≥ 0.4.0) the
  cached ADD result converted to the config's version;
* ``runtimeConfig``: only the capability args whose name the plugin declares ``true`` in
  ``capabilities``, values untouched, key omitted when nothing matches.

Capability names are lower-camel (``portMappings``, ``bandwidth``, ``ips``, ``mac``). A capability
arg is found under exactly that key or, failing that, a key equal to it ignoring case
(``PortMappings``), because multus' Go structs accept both spellings and upstream therefore
forwards either. The Go-capitalised names containerd writes *inside* the values (``HostPort``,
``IngressRate``) are the plugins' business (their Go decoders match fields case-insensitively), so
values are passed through exactly as given.

Results: every operation that produces one returns a :class:`~multusd.cni.types.Result` in the
version the plugin printed. No raw JSON is kept beside it on purpose: libcni itself parses the
plugin's output into its typed result and re-marshals that for ``prevResult`` and for the cache, so
``result.to_json()`` is exactly what Go would pass on and cache, and callers convert with
``result.to_json(version)``.

Deliberate differences from libcni: the cache is written atomically; GC takes the valid
attachments explicitly (libcni with ``args=nil`` would DEL every cached attachment); several GC
errors are joined with ``"; "`` and keep the first error's code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .cache import DEFAULT_CACHE_DIR, CacheEntry, ResultCache
from .conf import (
    ConfList,
    PluginConf,
    inject,
    validate_container_id,
    validate_ifname,
    validate_network_name,
)
from .errors import CniCode, CniError
from .exec import ExecArgs, PluginExecutor, PluginInfo
from .types import Result, has_check, has_gc, has_prev_result_on_del, has_status

log = logging.getLogger(__name__)

VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"
#: libcni also sends the valid list under this key: the 1.1.0 spec text used this name (cni#1101).
ATTACHMENTS_KEY = "cni.dev/attachments"


@dataclass(frozen=True)
class RuntimeConf:
    """The per-invocation arguments (libcni ``RuntimeConf``).

    ``args`` become ``CNI_ARGS`` in order; ``capability_args`` feed ``runtimeConfig``.
    ``cache_dir`` is used only when the :class:`CniRuntime` was built without a cache (libcni's
    deprecated ``RuntimeConf.CacheDir`` precedence).
    """

    container_id: str
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: str = ""

    def exec_args(self, command: str) -> ExecArgs:
        return ExecArgs(
            command=command,
            container_id=self.container_id,
            netns=self.netns,
            ifname=self.ifname,
            args=self.args,
        )


@dataclass(frozen=True)
class GcAttachment:
    """One still-valid attachment, as the runtime lists them for GC."""

    container_id: str
    ifname: str

    def to_json(self) -> dict[str, str]:
        return {"containerID": self.container_id, "ifname": self.ifname}


def describe_plugin(conf: PluginConf) -> str:
    """libcni's ``pluginDescription``: ``type="bridge"`` plus ``name="…"`` when the conf has one."""
    out = f"type={_go_quote(conf.type)}"
    if conf.name:
        out += f" name={_go_quote(conf.name)}"
    return out


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _capability_value(capability_args: Mapping[str, Any], capability: str) -> tuple[bool, Any]:
    """(found, value): the exact key first, else the last key equal ignoring case (Go's rule)."""
    if capability in capability_args:
        return True, capability_args[capability]
    folded = capability.lower()
    found: tuple[bool, Any] = (False, None)
    for key, value in capability_args.items():
        if key.lower() == folded:
            found = (True, value)
    return found


def runtime_config(conf: PluginConf, capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """The ``runtimeConfig`` for ``conf``: capability args for its capabilities set to true."""
    out: dict[str, Any] = {}
    for capability, enabled in conf.capabilities.items():
        if not enabled:
            continue
        found, value = _capability_value(capability_args, capability)
        if found:
            out[capability] = value
    return out


def build_plugin_conf(
    name: str,
    cni_version: str,
    conf: PluginConf,
    prev_result: Mapping[str, Any] | None,
    rt: RuntimeConf | None,
) -> PluginConf:
    """The conf a plugin is sent (libcni ``buildOneConfig`` + ``injectRuntimeConfig``)."""
    values: dict[str, Any] = {"name": name, "cniVersion": cni_version}
    if prev_result is not None:
        values["prevResult"] = dict(prev_result)
    if rt is not None:
        rc = runtime_config(conf, rt.capability_args)
        if rc:
            values["runtimeConfig"] = rc
    return inject(conf, values)


class CniRuntime:
    """Runs confs and lists through an executor, keeping libcni's result cache.

    ``cache`` defaults to none, in which case each call uses ``rt.cache_dir`` or ``/var/lib/cni``.
    """

    def __init__(self, executor: PluginExecutor, cache: ResultCache | None = None) -> None:
        self.executor = executor
        self.cache = cache

    # -- helpers ------------------------------------------------------------------------------

    def _cache_for(self, rt: RuntimeConf | None = None) -> ResultCache:
        if self.cache is not None:
            return self.cache
        return ResultCache(rt.cache_dir if rt is not None and rt.cache_dir else DEFAULT_CACHE_DIR)

    def _cached_prev_result(self, name: str, cni_version: str, rt: RuntimeConf) -> dict[str, Any] | None:
        """The cached result as JSON in ``cni_version``; None if there is none.

        Raises a CniError (a :class:`~multusd.cni.cache.CacheCorruptError` for a broken file)
        when it exists but cannot be used; callers decide what that means.
        """
        entry = self._cache_for(rt).load(name, rt.container_id, rt.ifname)
        if entry is None or not entry.result:
            return None
        try:
            return Result.from_json(entry.result).to_json(cni_version)
        except CniError as exc:
            raise CniError(
                exc.code,
                f'failed to convert cached result to config version "{cni_version}": {exc.msg}',
                exc.details,
            ) from exc

    def get_cached_result(self, name: str, cni_version: str, rt: RuntimeConf) -> Result | None:
        """The cached ADD result of network ``name`` for ``rt``, in ``cni_version``
        (libcni ``GetNetworkListCachedResult``/``GetNetworkCachedResult``)."""
        obj = self._cached_prev_result(name, cni_version, rt)
        return None if obj is None else Result.from_json(obj)

    def cached_attachments(self, network_name: str | None = None, container_id: str | None = None) -> list[CacheEntry]:
        """Usable cache entries, optionally of one network / container (``GetCachedAttachments``)."""
        return self._cache_for().attachments(network_name, container_id)

    async def _save(self, result: Result, config: bytes, name: str, rt: RuntimeConf) -> None:
        entry = CacheEntry(
            network_name=name,
            container_id=rt.container_id,
            ifname=rt.ifname,
            config=config,
            netns=rt.netns,
            cni_args=rt.args,
            capability_args=dict(rt.capability_args),
            result=result.to_json(),
        )
        try:
            await asyncio.to_thread(self._cache_for(rt).save, entry)
        except (OSError, CniError, TypeError, ValueError) as exc:  # disk, or args JSON cannot hold
            raise CniError(CniCode.IO_FAILURE, f'failed to set network "{name}" cached result: {exc}') from exc

    def _uncache(self, name: str, rt: RuntimeConf) -> None:
        try:
            self._cache_for(rt).delete(name, rt.container_id, rt.ifname)
        except OSError as exc:
            log.warning("could not remove cached result of %s for %s: %s", name, rt.container_id, exc)

    async def _add_one(
        self, name: str, cni_version: str, conf: PluginConf, prev: Result | None, rt: RuntimeConf
    ) -> Result:
        self.executor.find_plugin(conf.type)  # as libcni: a missing plugin is reported first
        validate_container_id(rt.container_id)
        validate_network_name(name)
        validate_ifname(rt.ifname)
        sent = build_plugin_conf(name, cni_version, conf, None if prev is None else prev.to_json(), rt)
        return await self.executor.exec_with_result(conf.type, sent.data, cni_version, rt.exec_args("ADD"))

    async def _run_one(
        self,
        command: str,
        name: str,
        cni_version: str,
        conf: PluginConf,
        prev: Mapping[str, Any] | None,
        rt: RuntimeConf,
    ) -> None:
        sent = build_plugin_conf(name, cni_version, conf, prev, rt)
        await self.executor.exec_without_result(conf.type, sent.data, rt.exec_args(command))

    # -- lists --------------------------------------------------------------------------------

    async def add_list(self, conf_list: ConfList, rt: RuntimeConf) -> Result:
        """ADD each plugin in order, chaining results; cache and return the last one."""
        result: Result | None = None
        for plugin in conf_list.plugins:
            try:
                result = await self._add_one(conf_list.name, conf_list.cni_version, plugin, result, rt)
            except CniError as exc:
                raise exc.with_prefix(f"plugin {describe_plugin(plugin)} failed (add): ") from exc
        if result is None:
            raise CniError(CniCode.INVALID_NETWORK_CONFIG, f'network "{conf_list.name}" has no plugins')
        await self._save(result, conf_list.data, conf_list.name, rt)
        return result

    async def del_list(self, conf_list: ConfList, rt: RuntimeConf) -> None:
        """DEL each plugin in reverse; the cache entry goes only once all of them succeeded.

        A cache entry that cannot be used is removed and the DEL goes on without a prevResult
        (libcni ``DelNetworkList``): failing here would leave the pod's sandbox undeletable.
        """
        prev: dict[str, Any] | None = None
        if has_prev_result_on_del(conf_list.cni_version):
            try:
                prev = self._cached_prev_result(conf_list.name, conf_list.cni_version, rt)
            except CniError as exc:
                log.warning("DEL %s for %s without prevResult: %s", conf_list.name, rt.container_id, exc)
                self._uncache(conf_list.name, rt)
        for plugin in reversed(conf_list.plugins):
            try:
                await self._run_one("DEL", conf_list.name, conf_list.cni_version, plugin, prev, rt)
            except CniError as exc:
                raise exc.with_prefix(f"plugin {describe_plugin(plugin)} failed (delete): ") from exc
        self._uncache(conf_list.name, rt)

    async def check_list(self, conf_list: ConfList, rt: RuntimeConf) -> None:
        """CHECK each plugin in order with the cached result (≥ 0.4.0; skipped on disableCheck)."""
        _require_check(conf_list.cni_version)
        if conf_list.disable_check:
            return
        try:
            prev = self._cached_prev_result(conf_list.name, conf_list.cni_version, rt)
        except CniError as exc:
            raise exc.with_prefix(f'failed to get network "{conf_list.name}" cached result: ') from exc
        for plugin in conf_list.plugins:
            await self._run_one("CHECK", conf_list.name, conf_list.cni_version, plugin, prev, rt)

    async def gc_list(self, conf_list: ConfList, valid_attachments: Iterable[GcAttachment]) -> None:
        """Garbage-collect a network (libcni ``GCNetworkList``).

        First DEL every cached attachment of this network that is not in ``valid_attachments``,
        then (≥ 1.1.0) run each plugin with ``CNI_COMMAND=GC`` and the valid list injected under
        both ``cni.dev/valid-attachments`` and ``cni.dev/attachments``. Every step is attempted;
        the errors are reported together. Nothing at all happens with ``disableGC``.
        """
        if conf_list.disable_gc:
            return
        valid = list(dict.fromkeys(valid_attachments))
        valid_set = set(valid)
        errors: list[CniError] = []
        for entry in self.cached_attachments(conf_list.name):
            if GcAttachment(entry.container_id, entry.ifname) in valid_set:
                continue
            rt = RuntimeConf(
                container_id=entry.container_id,
                netns=entry.netns,
                ifname=entry.ifname,
                args=entry.cni_args,
                capability_args=entry.capability_args,
            )
            log.info("GC %s: deleting stale attachment %s %s", conf_list.name, entry.container_id, entry.ifname)
            try:
                await self.del_list(conf_list, rt)
            except CniError as exc:
                errors.append(
                    exc.with_prefix(f"failed to delete stale attachment {entry.container_id} {entry.ifname}: ")
                )
        if has_gc(conf_list.cni_version):
            attachments = [a.to_json() for a in valid]
            values = {
                "name": conf_list.name,
                "cniVersion": conf_list.cni_version,
                VALID_ATTACHMENTS_KEY: attachments,
                ATTACHMENTS_KEY: attachments,
            }
            for plugin in conf_list.plugins:
                try:
                    sent = inject(plugin, values)
                    await self.executor.exec_without_result(plugin.type, sent.data, ExecArgs(command="GC"))
                except CniError as exc:
                    errors.append(exc.with_prefix(f"failed to GC plugin {plugin.type}: "))
        if errors:
            first = errors[0]
            if len(errors) == 1:
                raise first
            raise CniError(first.code, "; ".join(str(e) for e in errors))

    async def status_list(self, conf_list: ConfList) -> None:
        """STATUS each plugin (≥ 1.1.0, else a no-op); the first error is returned untouched,
        so a plugin's code (50 "not available", 51 "limited connectivity") reaches the runtime."""
        if not has_status(conf_list.cni_version):
            return
        values = {"name": conf_list.name, "cniVersion": conf_list.cni_version}
        for plugin in conf_list.plugins:
            sent = inject(plugin, values)
            await self.executor.exec_without_result(plugin.type, sent.data, ExecArgs(command="STATUS"))

    # -- single confs ---------------------------------------------------------------------------

    async def add_conf(self, conf: PluginConf, rt: RuntimeConf) -> Result:
        """ADD one plugin under its own name and version; cache and return its result."""
        result = await self._add_one(conf.name, conf.cni_version, conf, None, rt)
        await self._save(result, conf.data, conf.name, rt)
        return result

    async def del_conf(self, conf: PluginConf, rt: RuntimeConf) -> None:
        """DEL one plugin. Unlike a list, an unusable cache entry fails the DEL (libcni v1.3.0)."""
        prev: dict[str, Any] | None = None
        if has_prev_result_on_del(conf.cni_version):
            try:
                prev = self._cached_prev_result(conf.name, conf.cni_version, rt)
            except CniError as exc:
                raise exc.with_prefix(f'failed to get network "{conf.name}" cached result: ') from exc
        await self._run_one("DEL", conf.name, conf.cni_version, conf, prev, rt)
        self._uncache(conf.name, rt)

    async def check_conf(self, conf: PluginConf, rt: RuntimeConf) -> None:
        """CHECK one plugin with its cached result (≥ 0.4.0)."""
        _require_check(conf.cni_version)
        try:
            prev = self._cached_prev_result(conf.name, conf.cni_version, rt)
        except CniError as exc:
            raise exc.with_prefix(f'failed to get network "{conf.name}" cached result: ') from exc
        await self._run_one("CHECK", conf.name, conf.cni_version, conf, prev, rt)

    async def version_info(self, plugin_type: str) -> PluginInfo:
        """What the plugin reports for VERSION."""
        return await self.executor.version_info(plugin_type)


def _require_check(cni_version: str) -> None:
    if not has_check(cni_version):
        raise CniError(
            CniCode.INCOMPATIBLE_CNI_VERSION,
            f"configuration version {_go_quote(cni_version)} does not support the CHECK command",
        )
