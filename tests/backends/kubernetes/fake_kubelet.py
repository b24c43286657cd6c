"""The FAKE kubelet of ``fake_apiserver``: for tests only, it stands in for the nodes.

Two modes. Without processes, a scheduled pod whose image can be pulled becomes Running at
once, and tests end it (``FakeApiServer.finish_pod``), give it log text and Summary stats.

With ``run_processes=True`` it really runs each pod's worker container as a local process, so
real runs go through the Kubernetes backend end to end:
- the command is the container's ``command`` + ``args``; ``python`` (the image's interpreter)
  is this test's Python, which has distbench and torch installed;
- the environment is this machine's (less ``DISTBENCH_*``, as the local backend does), then the
  container's ``env`` resolved as the kubelet does: plain values, downward-API ``fieldRef``s
  (``metadata.name``, ``metadata.annotations['...']``, ``status.podIP``, ...) and
  ``secretKeyRef``s read from the stored Secret;
- cluster DNS and pod networking are replaced by loopback: ``MASTER_ADDR`` becomes 127.0.0.1,
  ``MASTER_PORT`` a free port chosen once per Job (all its pods share this host), and
  ``GLOO_SOCKET_IFNAME`` is ``lo``;
- ``workingDir`` is honoured when given, else the pod gets its own temporary directory;
  an ``emptyDir`` volume is a directory of the pod's on this host, and environment values
  naming a path under its ``mountPath`` are rewritten to that directory (there is no mount);
- an ``exec`` readiness probe runs, with the container's environment, every ``periodSeconds``,
  and sets the pod's Ready condition (without processes, probes pass unless a test holds the
  pod unready: ``FakeApiServer.hold_unready``);
- init containers are reported completed without being run: they shape the network with
  ``tc`` (NET_ADMIN), which must not touch this machine's interfaces;
- the pod is Running once its process has started and Succeeded or Failed by its exit status
  (killed by a signal: 128 + the signal, as container runtimes report it); its stdout and
  stderr are the pod log; deleting the pod sends SIGTERM, then SIGKILL after the grace period;
- the Summary API answers from the process tree's real CPU time and resident memory (psutil).
  Loopback traffic cannot be told apart per process, so these pods report no ``network``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from distbench.ports import free_port

Obj = dict[str, Any]
SecretLookup = Callable[[str, str, str], str | None]
FIELD_IN_MAP = re.compile(r"^metadata\.(annotations|labels)\['(?P<key>[^']+)'\]$")


def _now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Container:
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    kill_at: float | None = None
    probed_at: float = 0.0


class FakeKubelet:
    def __init__(self, *, workdir: Path, run_processes: bool) -> None:
        self.workdir = workdir
        self.run_processes = run_processes
        self.containers: dict[str, Container] = {}
        self.logs: dict[str, str] = {}
        self.stats: dict[str, Obj] = {}
        self.unready: set[str] = set()
        self._job_ports: dict[str, int] = {}

    # -- what the API server asks ------------------------------------------------------------
    def sync(
        self, pods: Iterable[Obj], secret_value: SecretLookup, pullable_images: set[str]
    ) -> None:
        for pod in pods:
            name = pod["metadata"]["name"]
            container = self.containers.get(name)
            if container is not None:
                self._watch(pod, container)
                continue
            if pod["status"]["phase"] != "Pending" or not pod["spec"].get("nodeName"):
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            self._start(pod, secret_value, pullable_images)

    def is_running(self, pod: Obj) -> bool:
        container = self.containers.get(pod["metadata"]["name"])
        return container is not None and container.popen.poll() is None

    def has_started(self, pod: Obj) -> bool:
        state = _worker_status(pod).get("state", {})
        return "running" in state or "terminated" in state

    def stop(self, pod: Obj, *, grace_s: int) -> None:
        container = self.containers.get(pod["metadata"]["name"])
        if container is None or container.popen.poll() is not None:
            return
        _signal_group(container.popen.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace_s
        container.kill_at = min(container.kill_at or deadline, deadline)

    def terminate(self, pod: Obj, exit_code: int, *, reason: str | None, message: str) -> None:
        """End a process-less pod's container (tests use it to finish or fail pods)."""
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": _now_text(),
            "finishedAt": _now_text(),
        }
        if message:
            terminated["message"] = message
        self._set_state(pod, {"terminated": terminated}, ready=False)
        self._set_ready(pod, False)
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"

    def log_text(self, pod: Obj) -> str:
        name = pod["metadata"]["name"]
        container = self.containers.get(name)
        if container is not None:
            return container.log_path.read_text(errors="replace")
        return self.logs.get(name, "")

    def summary_entry(self, pod: Obj) -> Obj | None:
        """The pod's entry in its node's Summary document, as the kubelet writes it."""
        name = pod["metadata"]["name"]
        container = self.containers.get(name)
        stats = self.stats.get(name)
        if container is not None:
            stats = _process_stats(container.popen.pid)
        if stats is None:
            return None
        entry: Obj = {
            "podRef": {
                "name": name,
                "namespace": pod["metadata"]["namespace"],
                "uid": pod["metadata"]["uid"],
            },
            "startTime": pod["metadata"]["creationTimestamp"],
            "containers": [
                {
                    "name": pod["spec"]["containers"][0]["name"],
                    "startTime": pod["metadata"]["creationTimestamp"],
                    **{key: stats[key] for key in ("cpu", "memory") if key in stats},
                }
            ],
        }
        entry.update({key: stats[key] for key in ("cpu", "memory", "network") if key in stats})
        return entry

    def forget(self, pod: Obj) -> None:
        container = self.containers.pop(pod["metadata"]["name"], None)
        if container is not None and container.popen.poll() is None:
            _signal_group(container.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                container.popen.wait(timeout=10)

    def kill_all(self) -> None:
        for container in self.containers.values():
            if container.popen.poll() is None:
                _signal_group(container.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                container.popen.wait(timeout=10)

    # -- internals ---------------------------------------------------------------------------
    def _start(self, pod: Obj, secret_value: SecretLookup, pullable_images: set[str]) -> None:
        spec = pod["spec"]
        worker = spec["containers"][0]
        for container in [*spec.get("initContainers", []), worker]:
            if container["image"] not in pullable_images:
                self._set_state(
                    pod,
                    {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{container["image"]}"',
                        }
                    },
                    ready=False,
                )
                return
        env, missing = self._environment(pod, worker, secret_value)
        if missing:
            self._set_state(
                pod,
                {"waiting": {"reason": "CreateContainerConfigError", "message": missing}},
                ready=False,
            )
            return
        if spec.get("initContainers"):
            pod["status"]["initContainerStatuses"] = [
                _container_status(
                    c, {"terminated": {"exitCode": 0, "reason": "Completed"}}, ready=True
                )
                for c in spec["initContainers"]
            ]
        if self.run_processes:
            self._run(pod, worker, self._mount_volumes(pod, worker, env))
        self._set_state(pod, {"running": {"startedAt": _now_text()}}, ready=False)
        pod["status"]["phase"] = "Running"
        pod["status"]["startTime"] = _now_text()
        if not self.run_processes:
            self._set_ready(pod, pod["metadata"]["name"] not in self.unready)

    def _run(self, pod: Obj, worker: Obj, env: dict[str, str]) -> None:
        name = pod["metadata"]["name"]
        command = [*worker.get("command", []), *worker.get("args", [])]
        if command and command[0] == "python":
            command[0] = sys.executable
        pod_dir = self.workdir / name
        pod_dir.mkdir(parents=True, exist_ok=True)
        log_path = pod_dir / "container.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(  # the pod's own command, as a kubelet runs it
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=worker.get("workingDir") or str(pod_dir),
                start_new_session=True,
            )
        self.containers[name] = Container(popen=popen, log_path=log_path, env=env)

    def _mount_volumes(self, pod: Obj, worker: Obj, env: dict[str, str]) -> dict[str, str]:
        pod_dir = self.workdir / pod["metadata"]["name"]
        empty_dirs = {v["name"] for v in pod["spec"].get("volumes", []) if "emptyDir" in v}
        for mount in worker.get("volumeMounts", []):
            if mount["name"] not in empty_dirs:
                raise ValueError(f"the fake kubelet mounts only emptyDir volumes: {mount}")
            host_dir = pod_dir / "volumes" / mount["name"]
            host_dir.mkdir(parents=True, exist_ok=True)
            path = mount["mountPath"].rstrip("/")
            for key, value in env.items():
                if value == path or value.startswith(path + "/"):
                    env[key] = str(host_dir) + value[len(path) :]
        return env

    def _probe(self, pod: Obj, container: Container) -> None:
        probe = pod["spec"]["containers"][0].get("readinessProbe")
        if probe is None:
            self._set_ready(pod, True)
            return
        period_s = float(probe.get("periodSeconds", 10))
        if time.monotonic() - container.probed_at < period_s:
            return
        container.probed_at = time.monotonic()
        result = subprocess.run(
            probe["exec"]["command"], env=container.env, capture_output=True, timeout=5, check=False
        )
        self._set_ready(pod, result.returncode == 0)

    def _watch(self, pod: Obj, container: Container) -> None:
        code = container.popen.poll()
        if code is None:
            if container.kill_at is not None and time.monotonic() >= container.kill_at:
                _signal_group(container.popen.pid, signal.SIGKILL)
            elif container.kill_at is None:
                self._probe(pod, container)
            return
        if "terminated" in _worker_status(pod).get("state", {}):
            return
        exit_code = 128 - code if code < 0 else code
        self.terminate(pod, exit_code, reason=None, message="")

    def _environment(
        self, pod: Obj, worker: Obj, secret_value: SecretLookup
    ) -> tuple[dict[str, str], str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")}
        namespace = pod["metadata"]["namespace"]
        for variable in worker.get("env", []):
            source = variable.get("valueFrom")
            if source is None:
                env[variable["name"]] = variable.get("value", "")
            elif "fieldRef" in source:
                env[variable["name"]] = _field(pod, source["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = secret_value(namespace, ref["name"], ref["key"])
                if value is None:
                    return env, f'secret "{ref["name"]}" not found'
                env[variable["name"]] = value
        # Cluster DNS and pod networking, replaced by this host's loopback (module docstring).
        job_uid = pod["metadata"]["labels"].get("controller-uid", pod["metadata"]["uid"])
        port = self._job_ports.setdefault(job_uid, free_port())
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
        return env, ""

    def _set_state(self, pod: Obj, state: Obj, *, ready: bool) -> None:
        worker = pod["spec"]["containers"][0]
        pod["status"]["containerStatuses"] = [_container_status(worker, state, ready=ready)]

    def set_ready(self, pod: Obj, ready: bool) -> None:
        """Hold a process-less pod unready (its probe failing) or let it be Ready."""
        name = pod["metadata"]["name"]
        if ready:
            self.unready.discard(name)
        else:
            self.unready.add(name)
        if pod["status"].get("phase") == "Running":
            self._set_ready(pod, ready)

    def _set_ready(self, pod: Obj, ready: bool) -> None:
        status = pod["status"]
        for container in status.get("containerStatuses", []):
            container["ready"] = ready
        conditions = [c for c in status.get("conditions", []) if c["type"] != "Ready"]
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": _now_text(),
            }
        )
        status["conditions"] = conditions


def _container_status(container: Obj, state: Obj, *, ready: bool) -> Obj:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def _worker_status(pod: Obj) -> Obj:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    return statuses[0] if statuses else {}


def _field(pod: Obj, path: str) -> str:
    in_map = FIELD_IN_MAP.match(path)
    if in_map is not None:
        return str(pod["metadata"].get(in_map.group(1), {}).get(in_map["key"], ""))
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "status.podIP": pod["status"].get("podIP", ""),
        "status.hostIP": pod["status"].get("hostIP", ""),
    }
    if path not in simple:
        raise ValueError(f"the fake kubelet does not know fieldPath {path}")
    return str(simple[path])


def _process_stats(pid: int) -> Obj | None:
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu_s = memory = 0.0
    for member in tree:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            cpu_s += times.user + times.system + times.children_user + times.children_system
            memory += member.memory_info().rss
    stamp = _now_text()
    return {
        "cpu": {"time": stamp, "usageCoreNanoSeconds": int(cpu_s * 1e9)},
        "memory": {"time": stamp, "workingSetBytes": int(memory), "usageBytes": int(memory)},
    }


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
