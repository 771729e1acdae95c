"""The auxiliary CNI chain: node-local plugins run for every pod (upstream-behaviour §6 step 8).

With ``auxiliaryCNIChainName: <aux>`` set, multus runs one more delegate after the pod's networks:
a list named ``<aux>`` that starts with the ``passthru`` plugin (an empty but valid result, so the
next plugins get a ``prevResult``) followed by every ``<dir of clusterNetwork>/<aux>/*.conf``, in
file-name order — typically ``tuning`` or a vendor's plugin, dropped on the node without touching
any operator-managed config. It is a non-master delegate, so it gets a ``net<idx>`` interface name.

As upstream, a misconfiguration never fails the pod: the chain is skipped with a warning naming
the reason, and it is skipped silently when the directory holds no plugin at all.
"""

from __future__ import annotations

import logging
import os

from multusd.cni.conf import ConfList, load_subdir_plugins, parse_conf_list, validate_network_name, with_plugins
from multusd.cni.errors import CniCode, CniError

from .delegates import Delegate, MultusConf

log = logging.getLogger(__name__)

#: The chain's first plugin, as upstream writes it.
PASSTHRU_PLUGIN: dict[str, str] = {"type": "passthru", "name": "passthru-cni"}


def load_auxiliary_chain(cluster_network: str, chain_name: str, cni_version: str) -> ConfList:
    """The chain list: passthru, then ``<dir of cluster_network>/<chain_name>/*.conf`` sorted.

    Raises a CniError when the cluster network is not a file path, when ``chain_name`` is not a
    valid network name (it is also a directory name: no ``/`` or ``..``), or when a plugin file
    cannot be read or parsed.
    """
    if "/" not in cluster_network:
        raise CniError(
            CniCode.INVALID_NETWORK_CONFIG,
            f"auxiliary chain used but ClusterNetwork must be a path, and it is not a path: {cluster_network}",
        )
    validate_network_name(chain_name)
    passthru = parse_conf_list({"cniVersion": cni_version, "name": chain_name, "plugins": [PASSTHRU_PLUGIN]})
    return with_plugins(passthru, load_subdir_plugins(os.path.dirname(cluster_network), chain_name))


def auxiliary_chain(mconf: MultusConf) -> Delegate | None:
    """The chain as a delegate to append after the pod's networks, or None (not set, or empty)."""
    name = mconf.auxiliary_cni_chain_name
    if not name:
        return None
    try:
        chain = load_auxiliary_chain(mconf.cluster_network, name, mconf.cni_version)
    except CniError as exc:
        log.warning("auxiliary CNI chain %r skipped: %s", name, exc)
        return None
    if len(chain.plugins) <= 1:
        chain_dir = os.path.join(os.path.dirname(mconf.cluster_network), name)
        log.debug("auxiliary CNI chain %r skipped: no plugin in %s", name, chain_dir)
        return None
    return Delegate(name=name, conf=chain)
