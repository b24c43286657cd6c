"""A FAKE Kubernetes API server, for tests only. There is no cluster here: this is an in-process
HTTP server that answers the real API's JSON paths the way the real one does, so that the real
``kubernetes`` client (and ``KubernetesBackend`` through it) can be tested.

What it serves: Jobs (``/apis/batch/v1/namespaces/{ns}/jobs``), Pods, Services and Secrets
(``/api/v1/namespaces/{ns}/...``): create (409 if present), get (404 Status if absent), list
with ``labelSelector``, JSON/merge patch, delete with ``propagationPolicy`` and
``gracePeriodSeconds``, delete of a pod collection; pod logs (``pods/{name}/log`` with
``tailLines``), and the kubelet Summary through the node proxy
(``/api/v1/nodes/{node}/proxy/stats/summary``). Requests need ``Authorization: Bearer TOKEN``.

What it emulates, in a controller thread (every 50 ms):
- the Job controller: a resumed Indexed Job gets one pod per completion index (name
  ``<job>-<index>-<5 chars>``, the index as label and annotation, hostname ``<job>-<index>``,
  owner reference to the Job); one failed pod fails a ``backoffLimit: 0`` Job
  (BackoffLimitExceeded) and terminates the others; ``activeDeadlineSeconds`` fails it with
  DeadlineExceeded; all succeeded completes it.
- the scheduler: pods are bound to the fake nodes by their CPU (and GPU) requests; a pod that
  fits on none stays Pending with PodScheduled=False, reason Unschedulable.
- the kubelet (``fake_kubelet.FakeKubelet``): an image it was not told it can pull stays
  Pending in ErrImagePull/ImagePullBackOff; a missing Secret in CreateContainerConfigError;
  otherwise the pod runs (see that module).
- the garbage collector: Foreground deletion removes dependents (by owner reference) before
  the owner; Background removes the owner first; a Job deleted without a policy orphans its
  pods, as the real batch/v1 API does.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.backends.kubernetes.fake_controllers import FakeControllers, now_text
from tests.backends.kubernetes.fake_kubelet import FakeKubelet

Obj = dict[str, Any]
KINDS = {
    "jobs": ("apis/batch/v1", "batch/v1", "Job"),
    "pods": ("api/v1", "v1", "Pod"),
    "services": ("api/v1", "v1", "Service"),
    "secrets": ("api/v1", "v1", "Secret"),
}
OBJECT_PATH = re.compile(
    r"^/(?P<group>api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>log))?$"
)
SUMMARY_PATH = re.compile(r"^/api/v1/nodes/(?P<node>[^/]+)/proxy/stats/summary$")


def status_body(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.body = status_body(code, reason, message)
        self.code = code


def matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeApiServer:
    """The FAKE API server (see the module docstring). ``nodes`` maps node name to its CPUs."""

    def __init__(
        self,
        *,
        workdir: Path,
        nodes: dict[str, float] | None = None,
        pullable_images: set[str] | None = None,
        run_processes: bool = False,
    ) -> None:
        self.token = secrets.token_hex(8)
        self.nodes = nodes or {"fake-node-a": 4.0, "fake-node-b": 4.0}
        self.pullable_images = pullable_images or set()
        self.lock = threading.RLock()
        self.store: dict[str, dict[tuple[str, str], Obj]] = {kind: {} for kind in KINDS}
        self.summary_requests: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.kubelet = FakeKubelet(workdir=workdir, run_processes=run_processes)
        self.controllers = FakeControllers(self)
        # Every body a client sent (POST and PATCH), to check what the backend sends.
        self.received: list[tuple[str, str, Any]] = []
        self._stop = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._http.serve_forever, daemon=True),
            threading.Thread(target=self._control_loop, daemon=True),
        ]

    # -- life -------------------------------------------------------------------------------
    def __enter__(self) -> FakeApiServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.kubelet.kill_all()

    def write_kubeconfig(self, path: Path, *, namespace: str) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))  # JSON is YAML: the client reads it as such
        return path

    # -- what tests use ---------------------------------------------------------------------
    def objects(self, resource: str, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self.store[resource].items())
                if namespace is None or ns == namespace
            ]

    def pods_of_job(self, job: str) -> list[Obj]:
        return [p for p in self.objects("pods") if p["metadata"]["labels"].get("job-name") == job]

    def finish_pod(
        self, name: str, exit_code: int, *, reason: str | None = None, message: str = ""
    ) -> None:
        """End a pod's container (without a process) as the kubelet would report it."""
        with self.lock:
            pod = self._find("pods", name)
            self.kubelet.terminate(pod, exit_code, reason=reason, message=message)

    def hold_unready(self, name: str, unready: bool = True) -> None:
        """Make a pod's readiness probe fail (or pass again), without processes."""
        with self.lock:
            self.kubelet.set_ready(self._find("pods", name), not unready)

    def set_log(self, name: str, text: str) -> None:
        with self.lock:
            self.kubelet.logs[name] = text

    def set_stats(self, name: str, stats: Obj) -> None:
        """The Summary entry of a pod (without a process): ``cpu``, ``memory``, ``network``."""
        with self.lock:
            self.kubelet.stats[name] = stats

    def create(self, resource: str, namespace: str, body: Obj) -> Obj:
        """Create an object as a client would (a Job some other server left, say)."""
        with self.lock:
            return copy.deepcopy(self._create(resource, namespace, copy.deepcopy(body)))

    # -- HTTP -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    if self.headers.get("Authorization") != f"Bearer {server.token}":
                        raise ApiError(401, "Unauthorized", "Unauthorized")
                    code, payload = server.handle(
                        method, self.path, raw, self.headers.get("Content-Type", "")
                    )
                except ApiError as exc:
                    code, payload = exc.code, exc.body
                if isinstance(payload, str):
                    data, content_type = payload.encode(), "text/plain"
                else:
                    data, content_type = json.dumps(payload).encode(), "application/json"
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PUT(self) -> None:
                self._serve("PUT")

        return Handler

    def handle(self, method: str, target: str, raw: bytes, content_type: str) -> tuple[int, Any]:
        url = urlsplit(target)
        # Decoded as the real (Go) server decodes it: the client sends "stats%2Fsummary".
        url = url._replace(path=unquote(url.path))
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = json.loads(raw) if raw.strip() else {}
        with self.lock:
            self.requests.append((method, url.path))
            if method in ("POST", "PATCH"):
                self.received.append((method, url.path, copy.deepcopy(body)))
            summary = SUMMARY_PATH.match(url.path)
            if summary and method == "GET":
                return 200, self._summary(summary["node"])
            found = OBJECT_PATH.match(url.path)
            if found is None or found["resource"] not in KINDS:
                raise ApiError(404, "NotFound", f"the server could not find {url.path}")
            resource, namespace, name = found["resource"], found["ns"], found["name"]
            if KINDS[resource][0] != found["group"]:
                raise ApiError(404, "NotFound", f"the server could not find {url.path}")
            if found["sub"] == "log":
                if resource != "pods" or method != "GET":
                    raise ApiError(405, "MethodNotAllowed", "only GET on pods/log")
                return 200, self._log(namespace, name, query)
            if name is None:
                if method == "POST":
                    return 201, copy.deepcopy(self._create(resource, namespace, body))
                if method == "GET":
                    return 200, self._list(resource, namespace, query.get("labelSelector", ""))
                if method == "DELETE":
                    return 200, self._delete_collection(resource, namespace, query, body)
            else:
                if method == "GET":
                    return 200, copy.deepcopy(self._get(resource, namespace, name))
                if method == "PATCH":
                    return 200, copy.deepcopy(
                        self._patch(resource, namespace, name, body, content_type)
                    )
                if method == "DELETE":
                    return 200, self._delete(resource, namespace, name, query, body)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {url.path}")

    # -- objects ----------------------------------------------------------------------------
    def _get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self.store[resource].get((namespace, name))
        if obj is None:
            group = "jobs.batch" if resource == "jobs" else resource
            raise ApiError(404, "NotFound", f'{group} "{name}" not found')
        return obj

    def _find(self, resource: str, name: str) -> Obj:
        for (_, obj_name), obj in self.store[resource].items():
            if obj_name == name:
                return obj
        raise KeyError(name)

    def _create(self, resource: str, namespace: str, body: Obj) -> Obj:
        _, api_version, kind = KINDS[resource]
        if body.get("kind") not in (None, kind):
            raise ApiError(400, "BadRequest", f"expected kind {kind}, got {body.get('kind')}")
        metadata = body.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{kind}: metadata.name: Required value")
        if metadata.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match")
        if (namespace, name) in self.store[resource]:
            raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists')
        for owner in metadata.get("ownerReferences", []):
            if not owner.get("uid"):
                raise ApiError(422, "Invalid", "ownerReferences: uid: Required value")
        body.update(apiVersion=api_version, kind=kind)
        metadata.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=now_text(),
            resourceVersion=str(time.monotonic_ns()),
        )
        metadata.setdefault("labels", {})
        metadata.setdefault("annotations", {})
        if resource == "secrets" and "stringData" in body:
            data = body.setdefault("data", {})
            for key, value in body.pop("stringData").items():
                data[key] = base64.b64encode(value.encode()).decode()
        if resource == "jobs":
            body["status"] = {}
        if resource == "pods":
            body.setdefault("status", {"phase": "Pending", "conditions": []})
        self.store[resource][(namespace, name)] = body
        return body

    def _list(self, resource: str, namespace: str, selector: str) -> Obj:
        _, api_version, kind = KINDS[resource]
        items = [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self.store[resource].items())
            if ns == namespace and matches(obj["metadata"].get("labels", {}), selector)
        ]
        return {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(time.monotonic_ns())},
            "items": items,
        }

    def _patch(self, resource: str, namespace: str, name: str, body: Any, content_type: str) -> Obj:
        obj = self._get(resource, namespace, name)
        if "json-patch" in content_type:
            for operation in body:
                if operation["op"] not in ("add", "replace"):
                    raise ApiError(422, "Invalid", f"unsupported op {operation['op']}")
                *parents, last = operation["path"].strip("/").split("/")
                target = obj
                for part in parents:
                    target = target[part]
                target[last] = operation["value"]
        else:
            merge(obj, body)
        obj["metadata"]["resourceVersion"] = str(time.monotonic_ns())
        return obj

    def _delete(self, resource: str, namespace: str, name: str, query: Obj, body: Obj) -> Obj:
        obj = self._get(resource, namespace, name)
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        if policy is None:
            # The batch/v1 REST default: a deleted Job leaves its pods behind (kubectl asks
            # for Background; a client that asks for nothing gets orphans).
            policy = "Orphan" if resource == "jobs" else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(400, "BadRequest", f"unknown propagationPolicy {policy}")
        if policy == "Orphan":
            self._orphan_dependents(obj["metadata"]["uid"])
        if policy == "Foreground":
            obj["metadata"].setdefault("deletionTimestamp", now_text())
            obj["metadata"]["finalizers"] = ["foregroundDeletion"]
            return copy.deepcopy(obj)
        self._remove(resource, obj, grace_s=None if grace is None else int(grace))
        return copy.deepcopy(obj)

    def _delete_collection(self, resource: str, namespace: str, query: Obj, body: Obj) -> Obj:
        listed = self._list(resource, namespace, query.get("labelSelector", ""))
        for item in listed["items"]:
            self._delete(resource, namespace, item["metadata"]["name"], query, body)
        return listed

    def _remove(self, resource: str, obj: Obj, *, grace_s: int | None) -> None:
        """Remove an object now; a pod with a running container is terminated first (it goes
        once its process has exited)."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if resource == "pods" and self.kubelet.is_running(obj):
            if grace_s is None:
                grace_s = int(obj["spec"].get("terminationGracePeriodSeconds", 30))
            obj["metadata"].setdefault("deletionTimestamp", now_text())
            self.kubelet.stop(obj, grace_s=grace_s)
            return
        self.store[resource].pop(key, None)
        self.kubelet.forget(obj)

    def _orphan_dependents(self, uid: str) -> None:
        for objects in self.store.values():
            for obj in objects.values():
                owners = obj["metadata"].get("ownerReferences", [])
                obj["metadata"]["ownerReferences"] = [o for o in owners if o["uid"] != uid]

    def _log(self, namespace: str, name: str, query: Obj) -> str:
        pod = self._get("pods", namespace, name)
        container = query.get("container", pod["spec"]["containers"][0]["name"])
        if container not in [c["name"] for c in pod["spec"]["containers"]]:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if not self.kubelet.has_started(pod):
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        text = self.kubelet.log_text(pod)
        tail = query.get("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return text

    def _summary(self, node: str) -> Obj:
        if node not in self.nodes:
            raise ApiError(404, "NotFound", f'nodes "{node}" not found')
        self.summary_requests[node] = self.summary_requests.get(node, 0) + 1
        pods = [p for p in self.store["pods"].values() if p["spec"].get("nodeName") == node]
        return {
            "node": {"nodeName": node, "startTime": now_text()},
            "pods": [entry for pod in pods if (entry := self.kubelet.summary_entry(pod))],
        }

    # -- controllers ------------------------------------------------------------------------
    def _control_loop(self) -> None:
        while not self._stop.wait(0.05):
            with self.lock:
                self.controllers.tick()

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.store["secrets"].get((namespace, name))
        if secret is None or key not in secret.get("data", {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()


def merge(target: Obj, patch: Obj) -> None:
    """JSON merge patch (RFC 7386), which a strategic merge patch of plain fields also is."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
