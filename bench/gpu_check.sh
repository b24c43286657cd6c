#!/usr/bin/env bash
# GPU check of distbench's local backend, run on a GPU machine from the repo root:
#
#     bash bench/gpu_check.sh            (the missing Python packages as wheels in ./.whl)
#
# Starts a real server (SQLite, local backend) and, through the HTTP API, runs resnet20-cifar10
# (synthetic data) on one GPU with nccl and on 8 CPUs with gloo, allreduce on one GPU, and digits
# on one GPU to 0.9 accuracy; prints each run's state, job_metadata and key metrics, and copies
# the logs into $OUT. Under five minutes. GPU_CHECK_CPU_ONLY=1 runs small CPU runs instead and
# installs no wheels (to try this script on a machine without a GPU, with .venv's Python);
# GPU_CHECK_PY, GPU_CHECK_WORKER_PY and GPU_CHECK_INSTALL=1 choose the Pythons and the install.
set -u
export PYTHONUNBUFFERED=1
REPO=$PWD
CPU_ONLY=${GPU_CHECK_CPU_ONLY:-}
OUT=${OUT:-$(mktemp -d /tmp/gpu-check-out.XXXXXX)}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
section() { printf '\n===== %s =====\n' "$*"; }
if [ -n "$CPU_ONLY" ]; then PY=${GPU_CHECK_PY:-$REPO/.venv/bin/python}; else PY=${GPU_CHECK_PY:-python3}; fi
PY=$(command -v "$PY") || { echo "no Python: $PY"; exit 1; }
WORKER_PY=${GPU_CHECK_WORKER_PY:-$PY}
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)

section "machine"
date -u; uname -srm; nproc; "$PY" --version
nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
if [ -d /proc/driver/nvidia/gpus ]; then
    echo "/proc/driver/nvidia/gpus: $(ls /proc/driver/nvidia/gpus | tr '\n' ' ')"
else
    echo "/proc/driver/nvidia/gpus: MISSING (gpu_count() falls back to /dev/nvidiaN)"
fi
ls /dev/nvidia* 2>&1 | tr '\n' ' '; echo

section "python packages"
SITE=$WORK/site
if [ -z "$CPU_ONLY" ] || [ -n "${GPU_CHECK_INSTALL:-}" ]; then
    ls .whl/*.whl >/dev/null || { echo "no wheels in ./.whl (carry .whl)"; exit 1; }
    timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" .whl/*.whl || { echo "WHEEL INSTALL FAILED"; exit 1; }
    echo "installed $(ls .whl/*.whl | wc -l) wheels into $SITE"
fi
# distbench runs from ./src uninstalled: a dist-info makes its entry points (tasks) findable.
"$PY" - "$REPO" "$SITE" <<'PY' || { echo "DIST-INFO FAILED"; exit 1; }
import pathlib, sys, tomllib
repo, site = map(pathlib.Path, sys.argv[1:])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
info = site / f"distbench-{project['version']}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: distbench\nVersion: {project['version']}\n")
groups = {**project.get("entry-points", {}), "console_scripts": project.get("scripts", {})}
(info / "entry_points.txt").write_text(
    "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items())
)
print("entry points:", {g: sorted(eps) for g, eps in groups.items()})
PY
export PYTHONPATH=$SITE:$REPO/src
timeout 60 "$PY" -c "import distbench.app, fastapi, pydantic, sqlalchemy, uvicorn; print('server imports ok: fastapi', fastapi.__version__, 'pydantic', pydantic.__version__)" \
    || { echo "SERVER IMPORTS FAILED"; exit 1; }
timeout 90 "$WORKER_PY" -c "import torch; print('worker: torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    || echo "WORKER'S TORCH FAILED"
GPU_CHECK_WORK=$WORK GPU_CHECK_OUT=$OUT GPU_CHECK_WORKER=$WORKER_PY GPU_CHECK_CPU_ONLY=$CPU_ONLY \
    timeout 300 "$PY" - <<'PY'
import json, os, subprocess, sys, time
import httpx

WORK, OUT = os.environ["GPU_CHECK_WORK"], os.environ["GPU_CHECK_OUT"]
CPU_ONLY = bool(os.environ["GPU_CHECK_CPU_ONLY"])
RESNET = {"dataset": "synthetic", "warmup_epochs": 0, "report_every_steps": 20}
# label, benchmark, gpu, num_cpus, time limit (s), options
CHECKS = [
    ("resnet20-gpu", "resnet20-cifar10", True, 8, 120,
     {**RESNET, "synthetic_samples": 12800, "max_epochs": 3}),  # 3 x 100 steps of 128
    ("resnet20-cpu", "resnet20-cifar10", False, 8, 90,
     {**RESNET, "synthetic_samples": 2560, "max_steps_per_epoch": 15, "max_epochs": 2}),
    ("allreduce-gpu", "allreduce", True, 4, 45,
     {"sizes_bytes": [1024 * 4**i for i in range(10)], "repetitions": 20, "warmup": 3}),
    ("digits-gpu", "digits", True, 4, 60, {"target_accuracy": 0.9, "max_epochs": 40}),
]
if CPU_ONLY:  # this machine has no GPU: the same API path with small CPU runs
    CHECKS = [
        ("resnet20-cpuonly", "resnet20-cifar10", False, 1, 120,
         {**RESNET, "synthetic_samples": 640, "max_steps_per_epoch": 3, "max_epochs": 1}),
        ("allreduce-cpuonly", "allreduce", False, 1, 60,
         {"sizes_bytes": [1024, 65536], "repetitions": 3}),
        ("digits-cpuonly", "digits", False, 1, 120, {"target_accuracy": 0.9, "max_epochs": 20}),
    ]
SHOWN = ("samples_per_s", "val_accuracy", "time_to_accuracy_s", "bus_bandwidth_mbit")


def section(title):
    print(f"\n===== {title} =====", flush=True)


def preflight():
    """Try the backend's own CPU limit and network namespaces once: if either cannot work
    here, say so and let the check's server go without it (the GPU path is what is checked)."""
    from distbench.backends.local.limits import cpu, network
    patches = {}
    try:
        limiter = cpu.CpuLimiter()
        limit = limiter.create("distbench-gpucheck-probe", 1.0, 0)
        try:
            subprocess.run(cpu.wrap_command(limit, ["true"]), check=True, timeout=10)
        finally:
            cpu.remove(limit.cgroup)
        print("cpu limit:", limit.describe())
    except Exception as exc:
        print(f"PREFLIGHT cpu limit FAILED ({type(exc).__name__}: {exc}); using affinity")
        patches["GPU_CHECK_AFFINITY"] = "1"
    problem = network.namespaces_available()
    if problem is None:
        try:
            plan = network.create("c0ffee", 1, None)
            try:
                ns = plan.workers[0].namespace
                subprocess.run(["ip", "netns", "exec", ns, "true"], check=True, timeout=10)
            finally:
                network.destroy(plan)
            print("network namespaces: work")
        except Exception as exc:
            print(f"PREFLIGHT namespaces FAILED ({type(exc).__name__}: {exc}); using loopback")
            patches["GPU_CHECK_NO_NETNS"] = "1"
    else:
        print("network namespaces: not used:", problem)
    return patches


SERVER = """
import logging, os, sys, uvicorn
from distbench.app import create_app, prepare_database
from distbench.backends.local.limits import cpu, network
from distbench.settings import Settings
if os.environ.get("GPU_CHECK_AFFINITY"):
    cpu.detect_method = lambda root=None: ("cpu_affinity", None)
if os.environ.get("GPU_CHECK_NO_NETNS"):
    network.namespaces_available = lambda: "turned off by bench/gpu_check.sh (preflight failed)"
logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("alembic").setLevel(logging.WARNING)
settings = Settings(port=int(sys.argv[1]), database_url=sys.argv[2])
prepare_database(settings)
uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info",
            access_log=False)
"""


def start_server(patches):
    from distbench.ports import free_port
    port = free_port()
    env = {**os.environ, **patches, "DISTBENCH_DATA_DIR": f"{WORK}/data",
           "DISTBENCH_WORKER_PYTHON": os.environ["GPU_CHECK_WORKER"]}
    log = open(f"{OUT}/server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), f"sqlite:///{WORK}/distbench.db"],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            health = httpx.get(f"{base}/api/health", timeout=2)
            if health.status_code == 200:
                print("health:", health.json())
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    print("SERVER DID NOT START; its log:")
    print(open(f"{OUT}/server.log", errors="replace").read()[-4000:])
    server.kill()
    sys.exit(1)


def gpu_sample():
    """What nvidia-smi sees while a GPU run trains: proof that the worker is on the GPU."""
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=15)
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"
    return f"GPU util, memory: {smi.stdout.strip()}; processes: {apps.stdout.strip() or 'none'}"


def one_check(http, label, benchmark, gpu, num_cpus, limit_s, options):
    section(f"{label}: {benchmark}, gpu={gpu}, num_cpus={num_cpus}, limit {limit_s} s")
    body = {"name": f"gpu check {label}", "num_workers": 1, "num_cpus": num_cpus,
            "benchmark": benchmark, "gpu": gpu, "backend": "nccl" if gpu else "gloo",
            "time_limit_s": limit_s, "start_timeout_s": 90, "options": options}
    started = time.monotonic()
    answer = http.post("/api/runs/", json=body)
    if answer.status_code >= 300:
        print(f"REFUSED {answer.status_code}: {answer.text[:2000]}")
        return {"label": label, "state": f"refused {answer.status_code}"}
    run_id = answer.json()["id"]
    state, sampled, run = None, False, answer.json()
    while time.monotonic() - started < limit_s + 20:
        run = http.get(f"/api/runs/{run_id}/").json()
        if run["state"] != state:
            state = run["state"]
            print(f"  {time.monotonic() - started:6.1f} s  {state}", flush=True)
        if state in ("FINISHED", "FAILED", "ABORTED"):
            break
        if gpu and not sampled and state == "STARTED" and time.monotonic() - started > 8:
            sampled = True
            print("  " + gpu_sample())
        time.sleep(1)
    else:
        print("  NOT ENDED in time: aborting")
        run = http.delete(f"/api/runs/{run_id}/", timeout=60).json()
    print(f"run {run_id}: {run['state']} after {time.monotonic() - started:.1f} s")
    print("job_metadata (worker_log_tails left out):")
    for key, value in run["job_metadata"].items():
        if key != "worker_log_tails":
            print(f"  {key}: {json.dumps(value, default=str)[:1500]}")
    series = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run"}).json()
    for name in SHOWN:
        points = series.get(name, [])
        if points:
            shown = [f"{float(p['value']):.4g}" + (f" {p['metadata']}" if name.startswith("bus") else "")
                     for p in points[-10:]]
            print(f"  {name}: " + ", ".join(shown))
    logs = http.get(f"/api/runs/{run_id}/logs").json()["logs"]
    with open(f"{OUT}/{label}.log", "w") as out:
        for pod, text in logs.items():
            out.write(f"----- {pod}\n{text}")
    if run["state"] != "FINISHED":
        for pod, text in logs.items():
            print(f"  last lines of {pod}:\n" + "\n".join(text.splitlines()[-25:]))
    result = run["job_metadata"].get("result", {})
    return {"label": label, "state": run["state"], **{k: result.get(k) for k in (
        "samples_per_s", "time_to_accuracy_s", "final_val_accuracy", "bus_bandwidth_mbit")}}


section("preflight")
patches = preflight()
server, base = start_server(patches)
results = []
try:
    with httpx.Client(base_url=base, timeout=30) as http:
        tasks = http.get("/api/benchmarks").json()
        print("benchmarks:", [t.get("name") for t in tasks] if isinstance(tasks, list) else tasks)
        for check in CHECKS:
            try:
                results.append(one_check(http, *check))
            except Exception as exc:  # one broken check must not hide the others
                print(f"CHECK {check[0]} BROKE: {type(exc).__name__}: {exc}")
                results.append({"label": check[0], "state": f"broke: {exc}"})
finally:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
section("summary")
for r in results:
    print(json.dumps(r))
speeds = {r["label"]: r.get("samples_per_s") for r in results}
if speeds.get("resnet20-gpu") and speeds.get("resnet20-cpu"):
    print(f"resnet20 samples/s: GPU {speeds['resnet20-gpu']:.0f}, CPU (8 cores) "
          f"{speeds['resnet20-cpu']:.0f}: x{speeds['resnet20-gpu'] / speeds['resnet20-cpu']:.1f}")
bus = {r["label"]: r.get("bus_bandwidth_mbit") for r in results}
if bus.get("allreduce-gpu"):
    print(f"allreduce, largest message: {bus['allreduce-gpu']:.0f} Mbit/s "
          f"({bus['allreduce-gpu'] / 8000:.1f} GB/s) bus bandwidth")
if patches:
    print("NOTE: the server ran with", patches, "(see PREFLIGHT above)")
ok = all(r["state"] == "FINISHED" for r in results) and len(results) == len(CHECKS)
print("GPU CHECK:", "ALL FINISHED" if ok else "SOME CHECKS DID NOT FINISH")
sys.exit(0 if ok else 1)
PY
code=$?
[ "$code" = 124 ] && echo "THE CHECKS RAN OUT OF TIME (300 s)"
if [ "$code" != 0 ]; then  # worker logs the driver may not have fetched, in one file
    for f in "$WORK"/data/runs/*/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 200 "$f"; }; done \
        > "$OUT/workers_all.log" 2>&1
fi
# Workers run in their own sessions: stop any left running, and remove their namespaces.
"$PY" - "$WORK" <<'PY'
import glob, json, os, signal, subprocess, sys, time
for path in glob.glob(f"{sys.argv[1]}/data/runs/*/state.json"):
    state = json.load(open(path))
    if state.get("cleaned"):
        continue
    for worker in state["workers"]:
        for kill in (os.killpg, os.kill):
            try:
                if b"distbench" in open(f"/proc/{worker['pid']}/cmdline", "rb").read():
                    kill(worker["pid"], signal.SIGKILL)
            except OSError:
                pass
        if worker.get("namespace"):
            subprocess.run(["ip", "netns", "delete", worker["namespace"]], check=False)
        if worker.get("cgroup"):
            time.sleep(0.5)  # the killed worker leaves its cgroup
            subprocess.run(["rmdir", worker["cgroup"]], check=False)
    if state.get("net"):
        subprocess.run(["ip", "link", "delete", state["net"]["bridge"]], check=False)
    print("cleaned up after run", state["run_id"])
PY
ls -la "$OUT"
exit "$code"
