"""The meta-plugin: ADD / DEL / CHECK / GC / STATUS for one pod (reference §6, §7).

Collaborators arrive as Protocol-typed parameters (pods, NADs, status/event sink, the CNI
runtime, the state store), so this module knows CNI and Kubernetes *objects* but never sockets,
HTTP or the API client. Every error a user sees carries ``[ns/pod:network]``, added here once.

Where multusd differs from upstream (DESIGN.md §3): the scratch file is removed when an ADD is
rolled back; DEL reports real delegate failures so the runtime retries; a corrupt scratch file or
a missing one is handled (rebuild from the pod, else at least the cluster network) instead of
silently doing nothing (Q8, Q9); CHECK runs the recorded delegates; pod-not-found gives a valid
empty result in every cniVersion (Q6).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface
from typing import Any, Protocol

from multusd.attach import routes
from multusd.attach.auxchain import auxiliary_chain
from multusd.attach.delegates import (
    Delegate,
    MultusConf,
    NadSource,
    cluster_delegates,
    ifname_for,
    inject_cni_args,
)
from multusd.attach.request import CniRequest
from multusd.attach.status import (
    NETWORK_STATUS_ANNOTATION,
    NetworkStatus,
    added_interface_message,
    annotation_json,
    annotation_value,
    network_statuses,
)
from multusd.cni.conf import ConfList, PluginConf, conf_list_from_conf, parse_conf_list, parse_plugin_conf
from multusd.cni.errors import CniCode, CniError
from multusd.cni.runtime import VALID_ATTACHMENTS_KEY, CniRuntime, GcAttachment, RuntimeConf
from multusd.cni.types import LATEST_VERSION, Interface, IPConfig, Result, has_status
from multusd.state import CorruptStateError, DelegateRecord, StateError, StateStore

log = logging.getLogger("multusd.attach")

POD_POLL_SECONDS = 0.05

#: The networks the current request handled (``name=ifname`` pairs), for the server's one log
#: line per request; a context variable because the flows run inside the server's request task.
REQUEST_NETWORKS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("request_networks", default=())


def _note_networks(req: CniRequest, delegates: Sequence[Delegate]) -> None:
    """Record ``name=ifname`` of every delegate for the request's log line."""
    REQUEST_NETWORKS.set(tuple(f"{d.name}={ifname_for(d, i, req.ifname)}" for i, d in enumerate(delegates)))


@dataclass(frozen=True)
class PodInfo:
    """The few fields of a Pod the meta-plugin reads."""

    namespace: str
    name: str
    uid: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    static: bool = False


class PodSource(Protocol):
    def cached_pod(self, namespace: str, name: str) -> PodInfo | None: ...

    async def live_pod(self, namespace: str, name: str) -> PodInfo | None:
        """A GET against the API: None when the pod does not exist; CniError when the API fails."""
        ...


class StatusSink(Protocol):
    async def write_network_status(self, pod: PodInfo, value: str) -> None:
        """Merge-patch the annotation; raises on failure (bounded retries are the sink's)."""
        ...

    def event(self, pod: PodInfo, type_: str, reason: str, message: str) -> None:
        """Best effort and non-blocking: an event must never delay or fail a CNI request."""
        ...


class NetnsOps(Protocol):
    """What the flows do inside a pod's network namespace (attach/routes.py by default)."""

    async def validate_ifname(self, netns_path: str, ifname: str) -> None: ...

    async def apply_gateway_request(
        self, netns_path: str, ifname: str, *, delete_v4: bool, delete_v6: bool, gateways: Sequence[str]
    ) -> None: ...


class _RoutesModule:
    """The real NetnsOps: attach/routes.py (pyroute2 is imported only when routes change)."""

    async def validate_ifname(self, netns_path: str, ifname: str) -> None:
        await routes.validate_ifname(netns_path, ifname)

    async def apply_gateway_request(
        self, netns_path: str, ifname: str, *, delete_v4: bool, delete_v6: bool, gateways: Sequence[str]
    ) -> None:
        await routes.apply_gateway_request(
            netns_path, ifname, delete_v4=delete_v4, delete_v6=delete_v6, gateways=gateways
        )


#: (plugin type, command, seconds, CNI error code or None) for every delegate execution.
DelegateObserver = Callable[[str, str, float, int | None], None]
#: The pod's annotations applied to the cluster delegates: the default-network annotation may
#: replace ``[0]``, the networks annotation appends. Returns the full list (selection layer).
PodDelegates = Callable[[PodInfo, MultusConf, list[Delegate]], Awaitable[list[Delegate]]]


@dataclass
class FlowSettings:
    pod_lookup_timeout: float = 3.0
    #: Bound on one network-status write, retries included: the annotation is informational, so a
    #: slow or absent API server must not hold the pod's sandbox for longer than this.
    status_timeout: float = 10.0
    observe: DelegateObserver | None = None
    on_status_failure: Callable[[], None] | None = None
    on_corrupt_state: Callable[[], None] | None = None


class Multus:
    """The CniService the server calls."""

    def __init__(
        self,
        runtime: CniRuntime,
        state: StateStore,
        pods: PodSource | None = None,
        nads: NadSource | None = None,
        sink: StatusSink | None = None,
        settings: FlowSettings | None = None,
        pod_delegates: PodDelegates | None = None,
        netns: NetnsOps | None = None,
    ) -> None:
        self.runtime = runtime
        self.state = state
        self.pods = pods
        self.nads = nads
        self.sink = sink
        self.settings = settings or FlowSettings()
        self.pod_delegates = pod_delegates
        self.netns: NetnsOps = netns if netns is not None else _RoutesModule()

    # -- dispatch -----------------------------------------------------------------------------

    async def run(self, request: CniRequest) -> Result | None:
        handlers = {
            "ADD": self.add,
            "DEL": self.delete,
            "CHECK": self.check,
            "GC": self.gc,
            "STATUS": self.status,
        }
        return await handlers[request.command](request)

    async def delegate(self, request: CniRequest) -> Result | None:
        """The ``/delegate`` hot-plug API (reference §12.1): one extra interface on a running pod.

        Unlike upstream, the interface is also recorded in the pod's scratch file (so the pod's
        own DEL releases its IPs) and network-status is updated on ADD and DEL.
        """
        handlers = {
            "ADD": self._hotplug_add,
            "DEL": self._hotplug_del,
            "CHECK": self._hotplug_check,
            "STATUS": self._hotplug_status,
        }
        handler = handlers.get(request.command)
        if handler is None:
            raise CniError(CniCode.INVALID_ENVIRONMENT_VARIABLES, f"unknown cmd type: {request.command}")
        return await handler(request)

    # -- hot-plug (/delegate) -----------------------------------------------------------------

    def _hotplug_delegate(self, req: CniRequest) -> Delegate:
        attrs = req.interface_attributes
        conf: PluginConf | ConfList = (
            parse_plugin_conf(req.config_bytes) if req.config.get("type") else parse_conf_list(req.config_bytes)
        )
        if attrs is not None and attrs.cni_args:
            conf = inject_cni_args(conf, attrs.cni_args)
        return Delegate(
            name=conf.name,
            conf=conf,
            ifname_request=req.ifname,
            mac_request=attrs.mac if attrs else "",
            ip_request=attrs.ips if attrs else (),
        )

    async def _hotplug_pod(self, req: CniRequest) -> PodInfo:
        pod = await self.find_pod(req, wait=True)
        if pod is None:
            raise CniError(CniCode.UNKNOWN_CONTAINER, f"[{req.pod_ref}] pod not found during Multus GetPod")
        return pod

    async def _hotplug_add(self, req: CniRequest) -> Result:
        pod = await self._hotplug_pod(req)
        delegate = self._hotplug_delegate(req)
        mconf = MultusConf.parse({})
        rt = self._runtime_conf(req, mconf, delegate, req.ifname, add=True)
        context = f"[{req.pod_ref}:{delegate.name}] "
        try:
            await self._validate_ifname(req, delegate, req.ifname)
            result = await self._exec("ADD", delegate, rt)
        except CniError as exc:
            raise exc.with_prefix(f'{context}error adding container to network "{delegate.network_name}": ') from exc
        assert result is not None
        try:
            records = self.state.load(req.container_id) or []
        except StateError as exc:
            log.warning("%scannot read the scratch file, recording only the new interface: %s", context, exc)
            records = []
        # a re-added interface replaces its old record; [0] is always the cluster network
        records = [r for i, r in enumerate(records) if i == 0 or r.ifname_request != req.ifname]
        records.append(self._record(delegate, req))
        try:
            self.state.save(req.container_id, records)
        except StateError as exc:
            log.error("%sinterface added but not recorded (pod DEL will not release it): %s", context, exc)
        if self.sink is not None:
            if result.interfaces or result.ips:
                self.sink.event(
                    pod, "Normal", "AddedInterface", added_interface_message(req.ifname, result, delegate.name)
                )
            await self._rewrite_status(pod, req.ifname, network_statuses(delegate.name, result, False))
        return result

    async def _hotplug_del(self, req: CniRequest) -> None:
        pod = await self._hotplug_pod(req)
        delegate = self._hotplug_delegate(req)
        rt = self._runtime_conf(req, MultusConf.parse({}), delegate, req.ifname, add=False)
        try:
            await self._exec("DEL", delegate, rt)
        except CniError as exc:
            raise exc.with_prefix(f"[{req.pod_ref}:{delegate.name}] ") from exc
        try:
            records = self.state.load(req.container_id)
        except StateError:
            records = None
        if records:
            kept = [r for i, r in enumerate(records) if i == 0 or r.ifname_request != req.ifname]
            if len(kept) != len(records):
                self.state.save(req.container_id, kept)
        if self.sink is not None:
            await self._rewrite_status(pod, req.ifname, [])

    async def _hotplug_check(self, req: CniRequest) -> None:
        delegate = self._hotplug_delegate(req)
        rt = self._runtime_conf(req, MultusConf.parse({}), delegate, req.ifname, add=False)
        await self._exec("CHECK", delegate, rt)

    async def _hotplug_status(self, req: CniRequest) -> None:
        conf = self._hotplug_delegate(req).conf
        if not isinstance(conf, ConfList):
            if not has_status(conf.cni_version):
                return
            conf = conf_list_from_conf(conf)
        await self.runtime.status_list(conf)

    async def _rewrite_status(self, pod: PodInfo, ifname: str, added: Sequence[NetworkStatus]) -> None:
        """network-status minus any entry for ``ifname``, plus ``added``; failures only logged."""
        assert self.sink is not None
        current: list[Any] = []
        try:
            parsed = json.loads(pod.annotations.get(NETWORK_STATUS_ANNOTATION, "[]") or "[]")
            current = parsed if isinstance(parsed, list) else []
        except ValueError:
            log.warning(
                "[%s/%s] existing %s is not JSON; rewriting it", pod.namespace, pod.name, NETWORK_STATUS_ANNOTATION
            )
        kept = [e for e in current if not (isinstance(e, dict) and e.get("interface") == ifname)]
        entries = [*kept, *(s.to_json() for s in added)]
        try:
            async with asyncio.timeout(self.settings.status_timeout):
                await self.sink.write_network_status(pod, annotation_json(entries))
        except Exception as exc:
            log.error("[%s/%s] could not update %s: %s", pod.namespace, pod.name, NETWORK_STATUS_ANNOTATION, exc)
            if self.settings.on_status_failure is not None:
                self.settings.on_status_failure()

    # -- pods ---------------------------------------------------------------------------------

    async def find_pod(self, req: CniRequest, *, wait: bool) -> PodInfo | None:
        """Cache first (polled for a bounded time on ADD: the watch may lag the runtime), then one GET."""
        if self.pods is None:
            return None
        deadline = time.monotonic() + (self.settings.pod_lookup_timeout if wait else 0)
        while True:
            pod = self.pods.cached_pod(req.pod_namespace, req.pod_name)
            if pod is not None and (not req.pod_uid or pod.uid == req.pod_uid or pod.static):
                return pod
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POD_POLL_SECONDS)
        try:
            pod = await self.pods.live_pod(req.pod_namespace, req.pod_name)
        except CniError as exc:
            if not wait:
                log.warning("[%s] pod lookup failed during %s, continuing: %s", req.pod_ref, req.command, exc)
                return None
            raise exc.with_prefix(f"[{req.pod_ref}] error waiting for pod: ") from exc
        if pod is not None and req.pod_uid and pod.uid != req.pod_uid and not pod.static:
            if not wait:
                log.warning(
                    "[%s] pod UID %s does not match %s; treating the pod as gone", req.pod_ref, pod.uid, req.pod_uid
                )
                return None
            raise CniError(
                CniCode.INVALID_ENVIRONMENT_VARIABLES,
                f'[{req.pod_ref}] expected pod UID "{req.pod_uid}" but got "{pod.uid}" from Kube API',
            )
        return pod

    async def _delegates_for(self, mconf: MultusConf, pod: PodInfo | None, *, for_del: bool = False) -> list[Delegate]:
        """Cluster network, defaultNetworks, the pod's own networks, then the auxiliary chain.

        For a DEL rebuilt without a scratch file the pod's networks are best effort: a NAD deleted
        since the ADD must not block releasing the cluster network (nor post NoNetworkFound).
        """

        def missing_nad(message: str) -> None:
            if pod is not None and self.sink is not None and not for_del:
                self.sink.event(pod, "Warning", "NoNetworkFound", message)

        delegates = await cluster_delegates(mconf, self.nads, pod.namespace if pod else None, missing_nad)
        if pod is not None and self.pod_delegates is not None:
            try:
                delegates = await self.pod_delegates(pod, mconf, delegates)
            except CniError as exc:
                if not for_del:
                    raise
                log.warning(
                    "[%s/%s] pod networks unavailable for DEL, deleting the cluster network only: %s",
                    pod.namespace,
                    pod.name,
                    exc,
                )
        aux = auxiliary_chain(mconf)
        if aux is not None:
            delegates.append(aux)
        return delegates

    @staticmethod
    def _prefix(req: CniRequest, exc: CniError) -> str:
        """``[ns/pod:network] `` when the error knows its network, else ``[ns/pod] ``."""
        network = getattr(exc, "network", "")
        return f"[{req.pod_ref}:{network}] " if network else f"[{req.pod_ref}] "

    # -- execution ----------------------------------------------------------------------------

    def _runtime_conf(
        self, req: CniRequest, mconf: MultusConf, delegate: Delegate, ifname: str, add: bool
    ) -> RuntimeConf:
        """Upstream's CreateCNIRuntimeConf (reference §6 step 10) plus the deprecated MAC/IP args."""
        args: list[tuple[str, str]] = [
            ("IgnoreUnknown", "true"),
            ("K8S_POD_NAMESPACE", req.pod_namespace),
            ("K8S_POD_NAME", req.pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", req.infra_container_id),
            ("K8S_POD_UID", req.pod_uid),
        ]
        if add and delegate.mac_request:
            args.append(("MAC", delegate.mac_request))
        if add and delegate.ip_request:
            args.append(("IP", ",".join(delegate.ip_request)))
        capability_args: dict[str, Any] = dict(mconf.runtime_config)
        if not delegate.master:
            requests = {
                "portMappings": delegate.port_mappings,
                "bandwidth": delegate.bandwidth,
                "ips": list(delegate.ip_request) if delegate.ip_request else None,
                "mac": delegate.mac_request,
                "infinibandGUID": delegate.infiniband_guid_request,
                "deviceID": delegate.device_id,
            }
            # an element's value replaces the pod's, even when empty (upstream: portMappings: [] removes them)
            capability_args.update({k: v for k, v in requests.items() if v is not None and v != ""})
            capability_args = {k: v for k, v in capability_args.items() if v not in (None, "", [], {})}
        return RuntimeConf(
            container_id=req.container_id,
            netns=req.netns,
            ifname=ifname,
            args=tuple(args),
            capability_args=capability_args,
        )

    async def _exec(self, command: str, delegate: Delegate, rt: RuntimeConf) -> Result | None:
        started = time.monotonic()
        code: int | None = None
        try:
            conf = delegate.conf
            if command == "ADD":
                if isinstance(conf, ConfList):
                    return await self.runtime.add_list(conf, rt)
                return await self.runtime.add_conf(conf, rt)
            if command == "DEL":
                if isinstance(conf, ConfList):
                    await self.runtime.del_list(conf, rt)
                else:
                    await self.runtime.del_conf(conf, rt)
            elif command == "CHECK":
                if isinstance(conf, ConfList):
                    await self.runtime.check_list(conf, rt)
                else:
                    await self.runtime.check_conf(conf, rt)
            return None
        except CniError as exc:
            code = exc.code
            raise
        finally:
            if self.settings.observe is not None:
                self.settings.observe(delegate.plugin_type, command, time.monotonic() - started, code)

    # -- ADD ----------------------------------------------------------------------------------

    async def add(self, req: CniRequest) -> Result:
        mconf = MultusConf.parse(req.config)
        pod = await self.find_pod(req, wait=True)
        if pod is None:
            log.warning("[%s] pod not found: returning an empty result, attaching nothing", req.pod_ref)
            return Result(
                mconf.cni_version or LATEST_VERSION,
                interfaces=(Interface(name=req.ifname, sandbox=req.netns),),
                ips=(IPConfig(address=ip_interface("0.0.0.0/0"), gateway=ip_address("0.0.0.0")),),
            ).with_version(LATEST_VERSION)
        try:
            delegates = await self._delegates_for(mconf, pod)
        except CniError as exc:
            raise exc.with_prefix(self._prefix(req, exc)) from exc
        _note_networks(req, delegates)
        try:
            self.state.save(req.container_id, [self._record(d, req) for d in delegates])
        except StateError as exc:
            raise CniError(CniCode.IO_FAILURE, f"[{req.pod_ref}] error saving the delegates: {exc}") from exc

        results: list[tuple[Delegate, str, Result]] = []
        for index, delegate in enumerate(delegates):
            ifname = ifname_for(delegate, index, req.ifname)
            rt = self._runtime_conf(req, mconf, delegate, ifname, add=True)
            try:
                await self._validate_ifname(req, delegate, ifname)
                result = await self._exec("ADD", delegate, rt)
            except CniError as exc:
                await self._rollback(req, mconf, delegates[: index + 1])
                self.state.remove(req.container_id)
                raise exc.with_prefix(
                    f'[{req.pod_ref}:{delegate.name}] error adding container to network "{delegate.network_name}": '
                ) from exc
            assert result is not None
            results.append((delegate, ifname, result))

        try:
            await self._apply_gateways(req, results)
        except CniError as exc:
            await self._rollback(req, mconf, delegates)
            self.state.remove(req.container_id)
            raise exc.with_prefix(f"[{req.pod_ref}] ") from exc
        await self._report(req, pod, results)
        master = next((r for d, _, r in results if d.master), results[0][2])
        return master

    async def _validate_ifname(self, req: CniRequest, delegate: Delegate, ifname: str) -> None:
        """The interface must not exist yet in the pod (upstream's validateIfName, §6 step 11a)."""
        try:
            await self.netns.validate_ifname(req.netns, ifname)
        except CniError as exc:
            raise exc.with_prefix(
                f'DelegateAdd: cannot set "{delegate.plugin_type}" interface name to "{ifname}": '
            ) from exc

    async def _apply_gateways(self, req: CniRequest, results: Sequence[tuple[Delegate, str, Result]]) -> None:
        """``default-route`` requests (§6 step 13): move default routes, then edit the cached results."""
        for delegate, ifname, result in results:
            if not (result.interfaces or result.ips):
                continue
            actions = routes.gateway_actions(
                delegate.filter_v4_gateway, delegate.filter_v6_gateway, delegate.default_route
            )
            if not (actions.delete_v4 or actions.delete_v6 or actions.add):
                continue
            await self.netns.apply_gateway_request(
                req.netns, ifname, delete_v4=actions.delete_v4, delete_v6=actions.delete_v6, gateways=actions.add
            )
            cache = self.runtime.cache
            if cache is not None:
                await asyncio.to_thread(
                    routes.edit_cached_gateways,
                    cache,
                    delegate.network_name,
                    req.container_id,
                    ifname,
                    delete_v4=actions.delete_v4,
                    delete_v6=actions.delete_v6,
                    add=actions.add,
                )

    @staticmethod
    def _record(delegate: Delegate, req: CniRequest) -> DelegateRecord:
        """The scratch record, stamped with its owner so orphans can be recognised later."""
        return dataclasses.replace(
            delegate.to_record(),
            netns=req.netns,
            pod_namespace=req.pod_namespace,
            pod_name=req.pod_name,
            pod_uid=req.pod_uid,
        )

    async def _del_all(self, req: CniRequest, mconf: MultusConf, delegates: Sequence[Delegate]) -> list[CniError]:
        """DEL every delegate in reverse order; every one is attempted, the failures returned."""
        errors: list[CniError] = []
        for index in range(len(delegates) - 1, -1, -1):
            delegate = delegates[index]
            rt = self._runtime_conf(req, mconf, delegate, ifname_for(delegate, index, req.ifname), add=False)
            try:
                await self._exec("DEL", delegate, rt)
            except CniError as exc:
                errors.append(exc.with_prefix(f"[{req.pod_ref}:{delegate.name}] "))
        return errors

    async def _rollback(self, req: CniRequest, mconf: MultusConf, delegates: Sequence[Delegate]) -> None:
        """DEL every delegate tried so far, the failed one included; errors are only logged."""
        for error in await self._del_all(req, mconf, delegates):
            log.warning("rollback DEL failed: %s", error)

    async def _report(self, req: CniRequest, pod: PodInfo, results: Sequence[tuple[Delegate, str, Result]]) -> None:
        """AddedInterface events and one network-status write; never fails the ADD."""
        if self.sink is None:
            return
        statuses = []
        for delegate, ifname, result in results:
            if result.interfaces or result.ips:
                self.sink.event(pod, "Normal", "AddedInterface", added_interface_message(ifname, result, delegate.name))
            statuses += network_statuses(delegate.name, result, delegate.master)
        if not statuses:
            return
        try:
            async with asyncio.timeout(self.settings.status_timeout):
                await self.sink.write_network_status(pod, annotation_value(statuses))
        except Exception as exc:
            reason = str(exc) or f"no answer within {self.settings.status_timeout:.0f} s"
            log.error("[%s] could not write %s: %s", req.pod_ref, NETWORK_STATUS_ANNOTATION, reason)
            if self.settings.on_status_failure is not None:
                self.settings.on_status_failure()
            self.sink.event(
                pod, "Warning", "NetworkStatusFailed", f"could not write {NETWORK_STATUS_ANNOTATION}: {reason}"
            )

    # -- DEL ----------------------------------------------------------------------------------

    async def _recorded_delegates(self, req: CniRequest, mconf: MultusConf) -> tuple[list[Delegate] | None, bool]:
        """(delegates from the scratch file or None, whether a corrupt file was found)."""
        try:
            records = self.state.load(req.container_id)
        except CorruptStateError as exc:
            log.error("[%s] %s; rebuilding the delegates instead", req.pod_ref, exc)
            if self.settings.on_corrupt_state is not None:
                self.settings.on_corrupt_state()
            return None, True
        if records is None:
            return None, False
        return [
            Delegate.from_record(r, master=i == 0, multus_cni_version=mconf.cni_version) for i, r in enumerate(records)
        ], False

    async def delete(self, req: CniRequest) -> None:
        mconf = MultusConf.parse(req.config)
        delegates, corrupt = await self._recorded_delegates(req, mconf)
        from_state = delegates is not None
        if delegates is None:
            pod = await self.find_pod(req, wait=False)
            try:
                delegates = await self._delegates_for(mconf, pod, for_del=True)
            except CniError as exc:
                if pod is None:
                    log.warning("[%s] nothing recorded and no pod; nothing to delete: %s", req.pod_ref, exc)
                    return
                raise exc.with_prefix(f"{self._prefix(req, exc)}failed to get delegates: ") from exc
            log.info("[%s] no usable scratch file; deleting %d rebuilt delegate(s)", req.pod_ref, len(delegates))

        _note_networks(req, delegates)
        errors = await self._del_all(req, mconf, delegates)
        if (from_state or corrupt) and (not errors or not mconf.retry_delete_on_error or corrupt):
            self.state.remove(req.container_id)
        if errors:
            raise CniError(errors[0].code, "errors: " + " / ".join(e.msg for e in errors), errors[0].details)

    # -- CHECK / GC / STATUS ------------------------------------------------------------------

    async def check(self, req: CniRequest) -> None:
        mconf = MultusConf.parse(req.config)
        delegates, _ = await self._recorded_delegates(req, mconf)
        if delegates is None:
            raise CniError(
                CniCode.UNKNOWN_CONTAINER, f"[{req.pod_ref}] no attachment recorded for container {req.container_id}"
            )
        for index, delegate in enumerate(delegates):
            rt = self._runtime_conf(req, mconf, delegate, ifname_for(delegate, index, req.ifname), add=False)
            try:
                await self._exec("CHECK", delegate, rt)
            except CniError as exc:
                raise exc.with_prefix(f"[{req.pod_ref}:{delegate.name}] ") from exc

    async def _cluster_list(self, mconf: MultusConf) -> tuple[str, ConfList]:
        delegates = await cluster_delegates(mconf, self.nads, None)
        conf = delegates[0].conf
        return delegates[0].name, conf if isinstance(conf, ConfList) else conf_list_from_conf(conf)

    async def gc(self, req: CniRequest) -> None:
        """GC of the cluster network, honouring the runtime's ``cni.dev/valid-attachments``."""
        mconf = MultusConf.parse(req.config)
        name, conf_list = await self._cluster_list(mconf)
        raw = req.config.get(VALID_ATTACHMENTS_KEY)
        if isinstance(raw, list):
            valid = [
                GcAttachment(str(a.get("containerID", "")), str(a.get("ifname", "")))
                for a in raw
                if isinstance(a, dict)
            ]
        else:  # no list from the runtime: keep everything we know about (upstream's behaviour)
            valid = [GcAttachment(e.container_id, e.ifname) for e in self.runtime.cached_attachments(conf_list.name)]
        try:
            await self.runtime.gc_list(conf_list, valid)
        except CniError as exc:
            raise exc.with_prefix(f"[{name}] error in GC command: ") from exc

    async def status(self, req: CniRequest) -> None:
        """STATUS of the cluster network's plugins; their codes (50, 51) reach the runtime unchanged."""
        mconf = MultusConf.parse(req.config)
        delegates = await cluster_delegates(mconf, self.nads, None)
        conf = delegates[0].conf
        if not isinstance(conf, ConfList):
            if not has_status(conf.cni_version):
                return
            conf = conf_list_from_conf(conf)
        await self.runtime.status_list(conf)
