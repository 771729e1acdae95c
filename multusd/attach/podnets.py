"""The pod's own networks: its annotations applied to the cluster delegates (reference §5.4 to §5.7, §6).

:func:`make_pod_delegates` builds the ``PodDelegates`` hook :class:`multusd.attach.flows.Multus`
calls after the cluster network and ``defaultNetworks`` are resolved:

1. ``v1.multus-cni.io/default-network`` (namespace defaults to multusNamespace, no isolation)
   replaces ``delegates[0]`` and is the master;
2. each element of ``k8s.v1.cni.cncf.io/networks``, in order: namespace isolation, the NAD
   (``NadSource.get_nad``: watch cache, then one live GET), its CNI config, ``cni-args`` merged
   into ``args.cni``, the element's requests copied onto the :class:`Delegate`;
3. ``check_gateway_config`` over the whole list when some delegate carries ``default-route``
   (and the pod has a networks annotation, as upstream).

Error texts are upstream's (users search for them), with the network named where upstream's text
does not already name it. The flows layer prefixes ``[ns/pod]``; :class:`PodNetworkError` carries
the network so that layer can say ``[ns/pod:network]`` instead.

Not supported (documented in the README): the NAD annotation ``k8s.v1.cni.cncf.io/resourceName``
(device plugins, DRA). A NAD carrying it is used without a device ID and a warning is logged. The
element's own ``deviceID`` is honoured as upstream honours it: it becomes the delegate's device ID
(the ``deviceID`` capability arg), not an edit of the config; ``delegates.inject_device_id`` is
upstream's config edit for device IDs that come from a resource, kept for when that source exists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from multusd.attach.delegates import Delegate, MultusConf, NadSource, conf_from_nad, inject_cni_args
from multusd.attach.flows import PodDelegates, PodInfo
from multusd.attach.selection import (
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    NetworkSelection,
    SelectionError,
    is_v4_gateway,
    parse_default_network_annotation,
    parse_networks_annotation,
)
from multusd.cni.conf import validate_ifname
from multusd.cni.errors import CniCode, CniError

log = logging.getLogger("multusd.attach")

RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
ECMP_ERROR = "multus does not support ECMP for default-route"

_DEFAULT_NET_PREFIX = "TryLoadPodDelegates: error in loading K8s cluster default network from pod annotation: "
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: Told when a selected NAD does not exist: (pod, upstream's ``NoNetworkFound`` event message).
MissingNadCallback = Callable[[PodInfo, str], None]


class PodNetworkError(CniError):
    """A failure tied to one selected network; ``network`` is ``<ns>/<name>``."""

    def __init__(self, code: int, msg: str, network: str, details: str = "") -> None:
        super().__init__(code, msg, details)
        self.network = network

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.msg, self.network, self.details))


def make_pod_delegates(nads: NadSource, on_missing_nad: MissingNadCallback | None = None) -> PodDelegates:
    """The ``PodDelegates`` hook for :class:`~multusd.attach.flows.Multus`.

    ``on_missing_nad`` is where the daemon posts the ``NoNetworkFound`` Warning event; it must not
    block (events are best effort).
    """
    return _PodNetworks(nads, on_missing_nad)


class _PodNetworks:
    """The hook as an object: the NAD source and event callback bound once, at daemon start."""

    def __init__(self, nads: NadSource, on_missing_nad: MissingNadCallback | None) -> None:
        self.nads = nads
        self.on_missing_nad = on_missing_nad

    async def __call__(self, pod: PodInfo, mconf: MultusConf, delegates: list[Delegate]) -> list[Delegate]:
        out = list(delegates)
        default_value = pod.annotations.get(DEFAULT_NETWORK_ANNOTATION, "")
        try:
            default = parse_default_network_annotation(default_value, mconf.multus_namespace)
        except SelectionError as exc:
            raise SelectionError(
                f"{DEFAULT_NETWORK_ANNOTATION} annotation: {_DEFAULT_NET_PREFIX}{exc.msg}", exc.details
            ) from exc
        if default is not None:
            try:
                master = await self._delegate(pod, mconf, default, master=True)
            except PodNetworkError as exc:
                raise _reprefix(
                    exc, f"{_DEFAULT_NET_PREFIX}tryLoadK8sPodDefaultNetwork: failed getting the delegate: "
                ) from exc
            out[:1] = [master]

        value = pod.annotations.get(NETWORKS_ANNOTATION, "")
        if not value:
            return out
        try:
            selections = parse_networks_annotation(value, pod.namespace)
        except SelectionError as exc:
            raise SelectionError(f"{NETWORKS_ANNOTATION} annotation: {exc.msg}", exc.details, exc.network) from exc
        for selection in selections:
            check_namespace_isolation(pod.namespace, selection, mconf)
            try:
                out.append(await self._delegate(pod, mconf, selection, master=False))
            except PodNetworkError as exc:
                raise _reprefix(exc, "GetNetworkDelegates: failed getting the delegate: ") from exc
        if any(d.default_route is not None for d in out):
            out = check_gateway_config(out)
        return out

    async def _delegate(self, pod: PodInfo, mconf: MultusConf, selection: NetworkSelection, master: bool) -> Delegate:
        """Upstream ``getKubernetesDelegate`` + ``LoadDelegateNetConf`` for one element."""
        ref = selection.ref
        nad: Mapping[str, Any] | None = None
        # A name that cannot be an object name cannot exist: no API call for it (and no odd path).
        if _DNS_LABEL.fullmatch(selection.namespace) and _valid_name(selection.name):
            try:
                nad = await self.nads.get_nad(selection.namespace, selection.name)
            except CniError as exc:
                raise PodNetworkError(exc.code, f"getKubernetesDelegate: {ref}: {exc.msg}", ref, exc.details) from exc
        if nad is None:
            reason = (
                f"cannot find a network-attachment-definition ({selection.name}) in namespace ({selection.namespace}): "
                f'network-attachment-definitions.k8s.cni.cncf.io "{selection.name}" not found'
            )
            if self.on_missing_nad is not None:
                self.on_missing_nad(pod, reason)
            raise PodNetworkError(CniCode.INVALID_NETWORK_CONFIG, f"getKubernetesDelegate: {reason}", ref)
        meta = nad.get("metadata")
        annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
        if isinstance(annotations, Mapping) and annotations.get(RESOURCE_NAME_ANNOTATION):
            log.warning(
                "[%s/%s:%s] NAD annotation %s=%s ignored: device plugins are not supported, no deviceID injected",
                pod.namespace,
                pod.name,
                ref,
                RESOURCE_NAME_ANNOTATION,
                annotations.get(RESOURCE_NAME_ANNOTATION),
            )
        try:
            conf = conf_from_nad(nad, mconf.conf_dir)
            if selection.cni_args is not None:
                conf = inject_cni_args(conf, selection.cni_args)
            if selection.interface:
                validate_ifname(selection.interface)
        except CniError as exc:
            raise PodNetworkError(exc.code, f"{ref}: {exc.msg}", ref, exc.details) from exc
        return Delegate(
            name=ref,
            conf=conf,
            master=master,
            ifname_request=selection.interface,
            mac_request=selection.mac,
            ip_request=selection.ips,
            infiniband_guid_request=selection.infiniband_guid,
            default_route=selection.default_route,
            port_mappings=[dict(p) for p in selection.port_mappings] if selection.port_mappings is not None else None,
            bandwidth=dict(selection.bandwidth) if selection.bandwidth is not None else None,
            device_id=selection.device_id,
        )


def check_namespace_isolation(pod_namespace: str, selection: NetworkSelection, mconf: MultusConf) -> None:
    """Upstream ``isValidNamespaceReference`` (§5.7): only when ``namespaceIsolation`` is on."""
    if not mconf.namespace_isolation or selection.namespace == pod_namespace:
        return
    if selection.namespace in mconf.global_namespaces:
        return
    raise PodNetworkError(
        CniCode.INVALID_NETWORK_CONFIG,
        "GetNetworkDelegates: namespace isolation enabled, annotation violates permission, pod is in namespace "
        f"{pod_namespace} but refers to target namespace {selection.namespace} (network {selection.ref})",
        selection.ref,
    )


def check_gateway_config(delegates: Sequence[Delegate]) -> list[Delegate]:
    """Upstream ``CheckGatewayConfig`` (§6 step 13): ECMP refused, then every delegate's filter flags.

    Every delegate starts filtered in both families; its own gateways clear the flag of their
    family. So ``default-route: []`` alone leaves every interface without a default route (Q11).
    A nil gateway (``""``) counts as IPv6, as upstream.
    """
    gateways = [gw for d in delegates for gw in d.default_route or ()]
    v4 = sum(1 for gw in gateways if is_v4_gateway(gw))
    if v4 > 1 or len(gateways) - v4 > 1:
        raise CniError(CniCode.INVALID_NETWORK_CONFIG, ECMP_ERROR)
    out = []
    for d in delegates:
        own = d.default_route or ()
        has_v4 = any(is_v4_gateway(gw) for gw in own)
        has_v6 = any(not is_v4_gateway(gw) for gw in own)
        out.append(replace(d, filter_v4_gateway=not has_v4, filter_v6_gateway=not has_v6))
    return out


def _valid_name(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(name))


def _reprefix(exc: PodNetworkError, prefix: str) -> PodNetworkError:
    return PodNetworkError(exc.code, prefix + exc.msg, exc.network, exc.details)
