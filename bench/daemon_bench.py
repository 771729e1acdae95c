"""Daemon RSS at rest and after load, and shim round-trip latency — measured, not asserted.

Runs the real ``multusd run`` process against the in-process localapi with a recorder cluster
network (no namespaces needed), drives N ADD+DEL pairs through the real shim with C concurrent
callers, and prints medians and RSS figures. Usage (from the repo root, as root):

    .venv/bin/python -m bench.daemon_bench [--pairs 200] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from multusd.kube.localapi import LocalApi
from tests.daemon_rig import Node, make_node, pod_manifest
from tests.netns import create_netns, delete_netns


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def run(pairs: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        async with LocalApi() as api:
            node: Node = make_node(tmp, "/proc/self/ns/net", api.write_kubeconfig(tmp / "kubeconfig"))
            recorder = node.conf_dir / "20-recorder.conflist"
            recorder.write_text(
                json.dumps(
                    {"cniVersion": "1.0.0", "name": "rec", "plugins": [{"type": "cni-recorder", "ip": "10.9.0.2/24"}]}
                )
            )
            node.write_config(maxConcurrentRequests=8, logLevel="error")
            uids = [api.create(pod_manifest(f"bench-{i}"))["metadata"]["uid"] for i in range(pairs)]
            pod_ns = create_netns()  # the recorder creates no interface: one netns serves every pod
            node.start()
            try:
                await node.wait_ready()
                await asyncio.sleep(1.0)
                assert node.process is not None
                pid = node.process.pid
                at_rest = rss_mib(pid)
                conf = node.multus_conf(clusterNetwork=str(recorder))
                sem = asyncio.Semaphore(concurrency)
                add_ms: list[float] = []
                del_ms: list[float] = []

                async def pair(i: int) -> None:
                    identity = ("default", f"bench-{i}", uids[i])
                    async with sem:
                        began = time.perf_counter()
                        add = await node.shim("ADD", f"cid-{i}", pod_ns.path, conf, pod=identity)
                        add_ms.append((time.perf_counter() - began) * 1000)
                        began = time.perf_counter()
                        delete = await node.shim("DEL", f"cid-{i}", pod_ns.path, conf, pod=identity)
                        del_ms.append((time.perf_counter() - began) * 1000)
                        assert add.returncode == 0 and delete.returncode == 0, add.stdout + delete.stdout

                api.requests.clear()
                began = time.perf_counter()
                await asyncio.gather(*(pair(i) for i in range(pairs)))
                wall = time.perf_counter() - began
                after = rss_mib(pid)
                await asyncio.sleep(1.0)  # events are posted in the background
                calls: dict[str, int] = {}
                for record in api.requests:
                    key = f"{record.method} {'events' if '/events' in record.path else record.path.split('/')[-1]}"
                    key = key if record.path.endswith(("/status", "/events")) else f"{record.method} other"
                    calls[key] = calls.get(key, 0) + 1
                print(f"pairs={pairs} concurrency={concurrency} wall={wall:.1f}s")
                p95 = sorted(add_ms)[int(len(add_ms) * 0.95)]
                print(f"ADD via shim: median {statistics.median(add_ms):.1f} ms, p95 {p95:.1f} ms")
                print(f"DEL via shim: median {statistics.median(del_ms):.1f} ms")
                per_pod = ", ".join(f"{k}: {v / pairs:.2f}" for k, v in sorted(calls.items()))
                print(f"API requests per pod (ADD+DEL, watches excluded): {per_pod}")
                print(f"daemon RSS at ready: {at_rest[0]:.1f} MiB; after load: {after[0]:.1f} MiB", end="")
                print(f" (peak {after[1]:.1f} MiB)")
            finally:
                await node.terminate()
                delete_netns(pod_ns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.pairs, args.concurrency))


if __name__ == "__main__":
    main()
