"""deploy/: the Dockerfile, compose.yaml and the Kubernetes manifests.

No container engine or cluster runs here, so these tests check what can be checked without
one: every file parses, names, labels, ports, commands and settings agree across files and
with Kith itself, and the image's build and start commands work when run directly (a wheel
built from exactly what the Dockerfile copies, installed into a fresh virtualenv, then
`kith migrate`, the image's CMD and its HEALTHCHECK). docs/deployment.md lists the rest.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from typer.main import get_command

from kith.cli import app as cli_app
from kith.core.config import Settings
from tests.helpers import API
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SHUTDOWN_TIMEOUT = "KITH_SHUTDOWN_TIMEOUT_SECONDS"


# --- reading the files -----------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stages()[-1]:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for key, rest in instructions if key == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def image_cmd() -> list[str]:
    command: list[str] = json.loads(only(stages()[-1], "CMD"))
    return command


def healthcheck_cmd() -> list[str]:
    _, separator, command = only(stages()[-1], "HEALTHCHECK").partition("CMD ")
    assert separator, "HEALTHCHECK without CMD"
    parsed: list[str] = json.loads(command)
    return parsed


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def manifest(kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs() -> dict[str, dict[str, Any]]:
    """Pod templates of every workload, by workload name."""
    return {
        m["metadata"]["name"]: m["spec"]["template"]
        for m in manifests()
        if m["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    }


def dotenv_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def setting_names() -> set[str]:
    return {f"KITH_{name.upper()}" for name in Settings.model_fields}


def as_settings(values: dict[str, str]) -> Settings:
    """Read KITH_* values exactly as Kith reads them: from an environment holding only them."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    with patch.dict(os.environ, {**environment, **values}, clear=True):
        return Settings(_env_file=None)


def substituted(value: str) -> str:
    """Compose's `${NAME:-default}` / `${NAME:?error}` with a plausible .env filled in."""
    filled = {
        "KITH_SECRET_KEY": "k" * 48,
        "POSTGRES_PASSWORD": "pw",
        **{k: v for k, v in dotenv_example().items() if v},
    }
    out = value
    while "${" in out:
        start = out.index("${")
        end = out.index("}", start)
        name = out[start + 2 : end].split(":", 1)[0]
        default = out[start + 2 : end].partition(":-")[2]
        out = out[:start] + filled.get(name, default) + out[end + 1 :]
    return out


# --- parsing and consistency ----------------------------------------------------------


def test_every_yaml_file_parses_and_each_manifest_is_named_and_labelled() -> None:
    compose_file = compose()
    assert set(compose_file["services"]) == {"migrate", "api", "worker", "postgres", "redis"}
    kinds = sorted(m["kind"] for m in manifests())
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PersistentVolumeClaim",
            "Secret",
            "Service",
        ]
    )
    for m in manifests():
        assert m["apiVersion"]
        assert m["metadata"]["name"].startswith("kith-")
        assert m["metadata"]["labels"]["app.kubernetes.io/name"] == "kith"
    for name, template in pod_specs().items():
        labels = template["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kith", name


def test_every_kith_variable_set_anywhere_is_a_setting_with_a_valid_value() -> None:
    known = setting_names()
    sources: dict[str, dict[str, str]] = {
        "Dockerfile": {k: v for k, v in image_env().items() if k.startswith("KITH_")},
        "compose.yaml": {
            k: substituted(str(v))
            for service in compose()["services"].values()
            for k, v in (service.get("environment") or {}).items()
            if k.startswith("KITH_")
        },
        ".env.example": {k: v for k, v in dotenv_example().items() if k.startswith("KITH_")},
        "configmap": manifest("ConfigMap", "kith-config")["data"],
        "secret": manifest("Secret", "kith-secrets")["stringData"],
        "pod env": {
            item["name"]: str(item.get("value", ""))
            for template in pod_specs().values()
            for container in template["spec"]["containers"]
            for item in container.get("env", [])
        },
    }
    for source, values in sources.items():
        unknown = set(values) - known
        assert not unknown, f"{source} sets variables Kith does not read: {unknown}"
    assert sources["Dockerfile"]["KITH_ENV"] == "production"
    # The values parse as Kith's settings, and make a production configuration.
    for source in ("Dockerfile", "compose.yaml", ".env.example"):
        assert as_settings({k: v for k, v in sources[source].items() if v})
    cluster = as_settings({**sources["configmap"], **sources["secret"]})
    assert cluster.env.value == "production"
    assert cluster.redis_url and not cluster.is_sqlite
    composed = as_settings(sources["compose.yaml"])
    assert composed.env.value == "production"
    assert composed.redis_url and not composed.is_sqlite
    composed.resolve_secret_key()  # a filled-in .env gives a usable key


def test_names_ports_and_labels_agree_across_files() -> None:
    env = image_env()
    exposed = int(only(stages()[-1], "EXPOSE"))
    assert exposed == int(env["KITH_PORT"]) == Settings(_env_file=None).port
    config = manifest("ConfigMap", "kith-config")["data"]
    assert int(config["KITH_PORT"]) == exposed

    # Compose: the api publishes the container port; URLs point at compose services.
    services = compose()["services"]
    published = services["api"]["ports"][0]
    assert int(substituted(published).rsplit(":", 1)[1]) == exposed
    environment = {k: substituted(str(v)) for k, v in services["api"]["environment"].items()}
    assert urlsplit(environment["KITH_DATABASE_URL"]).hostname in services
    assert urlsplit(environment["KITH_REDIS_URL"]).hostname in services
    assert urlsplit(environment["KITH_DATABASE_URL"]).port == 5432
    assert urlsplit(environment["KITH_REDIS_URL"]).port == 6379
    postgres_env = services["postgres"]["environment"]
    database_url = urlsplit(environment["KITH_DATABASE_URL"])
    assert database_url.username == postgres_env["POSTGRES_USER"]
    assert database_url.path == "/" + postgres_env["POSTGRES_DB"]
    declared_volumes = set(compose()["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared_volumes, name
    media_mounts = {
        volume.split(":")[1]
        for name in ("api", "worker")
        for volume in services[name]["volumes"]
        if volume.startswith("media:")
    }
    assert media_mounts == {environment["KITH_MEDIA_DIR"]}

    # Kubernetes: selectors, ports, probes, references.
    defined = {(m["kind"], m["metadata"]["name"]) for m in manifests()}
    templates = pod_specs()
    for deployment in (m for m in manifests() if m["kind"] == "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    service = manifest("Service", "kith-api")
    selected = [
        name
        for name, template in templates.items()
        if service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    ]
    assert selected == ["kith-api"]  # the worker and the Job are never behind the Service
    api = templates["kith-api"]["spec"]["containers"][0]
    port_names = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert port_names == {"http": exposed}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    hpa = manifest("HorizontalPodAutoscaler", "kith-api")
    target = hpa["spec"]["scaleTargetRef"]
    assert ("Deployment", target["name"]) in defined
    assert target["name"] == "kith-api"
    assert api["resources"]["requests"]["cpu"]  # utilisation targets need a request
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]

    user = only(stages()[-1], "USER").split(":")[0]
    assert user.isdigit()
    assert int(user) != 0
    images = set()
    for name, template in templates.items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == int(user), name
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in spec["containers"]:
            images.add(container["image"])
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in defined
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in defined
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "persistentVolumeClaim" in volume:
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    assert ("PersistentVolumeClaim", claim) in defined
                    assert mount["mountPath"] == config["KITH_MEDIA_DIR"]
    assert images == {services["api"]["image"]}
    assert {services[name]["image"] for name in ("migrate", "api", "worker")} == images

    # Shutdown: the orchestrator waits longer than Kith's own timeout.
    timeout = int(config[SHUTDOWN_TIMEOUT])
    api_spec = templates["kith-api"]["spec"]
    pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert api_spec["terminationGracePeriodSeconds"] > timeout + pre_stop
    assert int(services["api"]["stop_grace_period"].removesuffix("s")) > int(
        services["api"]["environment"][SHUTDOWN_TIMEOUT]
    )


def test_commands_are_kith_commands_and_migrations_run_first() -> None:
    commands = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
    assert image_cmd() == ["kith", "serve", "--host", "0.0.0.0"]  # noqa: S104
    services = compose()["services"]
    templates = pod_specs()
    assert "command" not in services["api"]  # the image's CMD
    assert "command" not in templates["kith-api"]["spec"]["containers"][0]
    assert "args" not in templates["kith-api"]["spec"]["containers"][0]
    assert services["migrate"]["command"] == ["kith", "migrate"]
    assert templates["kith-migrate"]["spec"]["containers"][0]["command"] == ["kith", "migrate"]
    assert services["worker"]["command"] == ["kith", "worker"]
    assert templates["kith-worker"]["spec"]["containers"][0]["command"] == ["kith", "worker"]
    for command in (image_cmd(), services["migrate"]["command"], services["worker"]["command"]):
        assert command[1] in commands
    assert templates["kith-migrate"]["spec"]["restartPolicy"] == "Never"

    # compose: migrate once, then the api; PostgreSQL and Redis healthy first.
    api_needs = {name: dep["condition"] for name, dep in services["api"]["depends_on"].items()}
    assert api_needs == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    # The image's health check hits /healthz, which only the api serves.
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}


def test_dockerfile_is_multi_stage_slim_non_root_with_a_python_health_check() -> None:
    args = dict(rest.split("=", 1) for keyword, rest in dockerfile() if keyword == "ARG")
    built = stages()
    assert len(built) == 2
    bases = [rest.split()[0] for rest in (stage[0][1] for stage in built)]
    for base in bases:
        image = args.get(base.strip("${}"), base)
        assert image.startswith("python:3.11-slim")
    assert built[0][0][1].endswith("AS build")
    runtime = built[-1]
    runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "from=build" in runs
    assert "pip install --no-index" in runs  # only the wheels built in the first stage
    # Dependencies come from the lock, every file checked against its hash, in both stages.
    assert "--require-hashes -r /wheels/requirements.txt" in runs
    build_runs = " ".join(rest for keyword, rest in built[0] if keyword == "RUN")
    assert "--require-hashes" in build_runs
    assert "-r requirements/main.txt" in build_runs
    assert "--no-build-isolation" in build_runs
    assert "python -m venv /opt/kith" in runs
    assert image_env()["PATH"].startswith("/opt/kith/bin:")
    keywords = [keyword for keyword, _ in runtime]
    assert keywords.index("USER") < keywords.index("CMD")
    check = healthcheck_cmd()
    assert check[:2] == ["python", "-c"]
    assert "/healthz" in check[2]


# --- the image's commands, run directly -------------------------------------------------


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from what the Dockerfile copies and install it into a fresh venv.

    The dependencies come from this test environment, installed from the same lock (a .pth
    file points at its site-packages), and the wheel is built with its locked setuptools as
    in the image, so the test needs no network; `pip check` then proves the wheel's
    declared dependencies are met.
    """
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    # What the build context leaves out anywhere in the tree (`**/name` in the ignore file).
    ignored = [
        line.strip().removeprefix("**/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip().startswith("**/")
    ]
    for keyword, rest in stages()[0]:
        if keyword == "COPY":
            *sources, _destination = rest.split()
            for source in sources:
                origin = ROOT / source
                target = context / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns(*ignored))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, target)
    assert not list(context.rglob("*.egg-info"))
    wheels = work / "wheels"
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(wheels), str(context)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("kith-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    checked = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout
    # Kith itself comes from the wheel, not from this checkout.
    where = subprocess.run(
        [str(python), "-c", "import kith; print(kith.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    ).stdout.strip()
    assert where.startswith(purelib)
    return venv


def in_venv(venv: Path, command: list[str]) -> list[str]:
    """The image puts its venv first on PATH: resolve the command's program there."""
    return [str(venv / "bin" / command[0]), *command[1:]]


@pytest.fixture
def image_environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    env.update({k: v for k, v in image_env().items() if k.startswith("KITH_")})
    # Only the paths and port differ from the image: no /var/lib/kith or fixed port here.
    env.update(
        KITH_VAR_DIR=str(tmp_path / "var"),
        KITH_PORT=str(free_port()),
        KITH_SECRET_KEY="image-test-secret-key-" + "x" * 30,
        KITH_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def served_image(image_venv: Path, image_environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    env = image_environment
    migrated = subprocess.run(
        in_venv(image_venv, ["kith", "migrate"]),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    process = subprocess.Popen(
        in_venv(image_venv, image_cmd()),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{env['KITH_PORT']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "the image's command exited"
            assert time.monotonic() < deadline, "the image's command did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_image_commands_migrate_serve_and_pass_the_health_check(
    served_image: str, image_venv: Path, image_environment: dict[str, str], tmp_path: Path
) -> None:
    assert httpx.get(f"{served_image}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{served_image}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"  # `kith migrate` made the database
    registered = httpx.post(
        f"{served_image}{API}/auth/register",
        json={"username": "imaged", "email": "imaged@example.com", "password": "image test pw"},
    )
    assert registered.status_code == 201
    check = subprocess.run(
        in_venv(image_venv, healthcheck_cmd()),
        env=image_environment,
        cwd=tmp_path,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_the_image_serves_the_web_client(served_image: str) -> None:
    """The wheel carries the web client's files (package data): the page and its modules."""
    page = httpx.get(f"{served_image}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    found = re.search(r'src="(/assets/[0-9a-f]+/app\.js)"', page.text)
    assert found, page.text
    script = httpx.get(f"{served_image}{found.group(1)}")
    assert script.status_code == 200
    assert "import" in script.text


def test_the_image_serves_the_api_docs_from_its_own_files(served_image: str) -> None:
    """Swagger UI comes from a locked dependency of the wheel, the start-up script from its
    package data: every file the page names answers from the image."""
    page = httpx.get(f"{served_image}/docs")
    assert page.status_code == 200
    names = re.findall(r'(?:src|href)="(/assets/[0-9a-f]+/[^"]+)"', page.text)
    assert {name.rsplit("/", 1)[1] for name in names} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "api-docs.js",
    }
    for name in names:
        assert httpx.get(f"{served_image}{name}").status_code == 200, name


def test_the_health_check_fails_when_nothing_answers(
    image_venv: Path, image_environment: dict[str, str], tmp_path: Path
) -> None:
    check = subprocess.run(
        in_venv(image_venv, healthcheck_cmd()),
        env=image_environment,
        cwd=tmp_path,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert check.returncode != 0


def test_production_image_refuses_to_start_without_a_secret_key(
    image_venv: Path, image_environment: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in image_environment.items() if k != "KITH_SECRET_KEY"}
    result = subprocess.run(
        in_venv(image_venv, image_cmd()),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "KITH_SECRET_KEY is missing" in result.stderr
