"""``multusd localapi`` as a real process, driven by the real kubectl (v1.32 client).

kubectl is the strictest client we have: aggregated discovery, Table output, merge-patch from
``annotate``, the wait-for-deletion GET after ``delete``. If it works here, the stand-in is close
enough to a real API server for the demo and for people poking at it by hand.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

KUBECTL = Path("/usr/bin/kubectl")
START_TIMEOUT_SECONDS = 20.0
KUBECTL_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="/usr/bin/kubectl is not installed")

POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: x
spec:
  nodeName: node1
  containers:
  - name: c
    image: busybox
"""

NAD_YAML = """\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-conf
spec:
  config: '{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0"}'
"""

SEED_YAML = """\
apiVersion: v1
kind: List
items:
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: seeded, namespace: kube-system}
  spec: {config: '{"type": "bridge"}'}
---
apiVersion: v1
kind: Pod
metadata: {name: seeded-pod, namespace: demo}
spec: {nodeName: node1, containers: [{name: c, image: busybox}]}
status: {phase: Running, podIP: 10.42.0.7}
"""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    kubeconfig: Path
    home: Path

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.home / "cache"), *args]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)}
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_SECONDS, env=env, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done


def start_server(tmp: Path, *extra: str) -> Server:
    """Start ``multusd localapi`` and wait (bounded) for the kubeconfig path on stdout."""
    multusd = Path(sys.executable).with_name("multusd")
    argv = [str(multusd)] if multusd.exists() else [sys.executable, "-m", "multusd.cli"]
    proc = subprocess.Popen(
        [*argv, "localapi", "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_SECONDS)
    line = proc.stdout.readline().strip() if ready else ""
    if not line:
        stop_server(proc)
        raise AssertionError(f"multusd localapi did not start: {proc.stderr.read() if proc.stderr else ''}")
    return Server(proc, Path(line), tmp)


def stop_server(proc: subprocess.Popen[str]) -> int:
    """SIGTERM by PID, bounded wait, SIGKILL as a last resort."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        stop_server(srv.proc)


def test_kubectl_pod_lifecycle(server: Server, tmp_path: Path) -> None:
    assert "No resources found" in server.kubectl("get", "pods", "-A").stderr
    (tmp_path / "pod.yaml").write_text(POD_YAML)
    assert "pod/x created" in server.kubectl("create", "--validate=false", "-f", str(tmp_path / "pod.yaml")).stdout
    table = server.kubectl("get", "pods", "-A", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["default", "x", "0/1", "Pending"]
    assert "node1" in table[1]

    server.kubectl("annotate", "pod", "x", "k8s.v1.cni.cncf.io/networks=macvlan-conf")
    pod = json.loads(server.kubectl("get", "pod", "x", "-o", "json").stdout)
    assert pod["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "macvlan-conf"}

    assert 'pod "x" deleted' in server.kubectl("delete", "pod", "x").stdout
    gone = server.kubectl("get", "pod", "x", check=False)
    assert gone.returncode != 0
    assert 'pods "x" not found' in gone.stderr


def test_kubectl_network_attachment_definitions(server: Server, tmp_path: Path) -> None:
    (tmp_path / "nad.yaml").write_text(NAD_YAML)
    created = server.kubectl("create", "--validate=false", "-f", str(tmp_path / "nad.yaml")).stdout
    assert "networkattachmentdefinition.k8s.cni.cncf.io/macvlan-conf created" in created
    table = server.kubectl("get", "net-attach-def").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE"]
    assert table[1].split()[0] == "macvlan-conf"
    nad = json.loads(server.kubectl("get", "network-attachment-definitions", "macvlan-conf", "-o", "json").stdout)
    assert nad["kind"] == "NetworkAttachmentDefinition"
    assert json.loads(nad["spec"]["config"])["type"] == "macvlan"
    deleted = server.kubectl("delete", "network-attachment-definitions", "macvlan-conf").stdout
    assert 'networkattachmentdefinition.k8s.cni.cncf.io "macvlan-conf" deleted' in deleted
    assert "No resources found" in server.kubectl("get", "net-attach-def", "-A").stderr


def test_tls_token_seed_and_clean_exit(tmp_path: Path) -> None:
    # client-go only sends kubeconfig credentials over TLS, hence --tls with --token
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED_YAML)
    kubeconfig = tmp_path / "given.kubeconfig"
    srv = start_server(tmp_path, "--tls", "--token", "s3cret", "--seed", str(seed), "--kubeconfig", str(kubeconfig))
    try:
        assert srv.kubeconfig == kubeconfig
        assert json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"].startswith("https://")
        assert "seeded" in srv.kubectl("get", "net-attach-def", "-n", "kube-system").stdout
        pod = json.loads(srv.kubectl("get", "pod", "seeded-pod", "-n", "demo", "-o", "json").stdout)
        assert pod["status"]["podIP"] == "10.42.0.7"
        assert "demo" in srv.kubectl("get", "namespaces").stdout  # made implicitly
        denied = srv.kubectl("get", "pods", "-A", "--token", "wrong", check=False)
        assert denied.returncode != 0
        assert "Unauthorized" in denied.stderr or "must be logged in" in denied.stderr
    finally:
        assert stop_server(srv.proc) == 0
    assert kubeconfig.exists()  # given files are left alone


def test_temp_kubeconfig_removed_on_sigterm(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        assert srv.kubeconfig.exists()
        assert srv.kubectl("get", "ns").returncode == 0
    finally:
        assert stop_server(srv.proc) == 0
    assert not srv.kubeconfig.exists()
