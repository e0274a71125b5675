"""deploy/kubernetes: the kustomize base and the example overlay, checked offline.

Both are built here (a small subset of `kustomize build`: resources,
generators, labels, namespace, images, replicas and JSON 6902 patches, all the
base and the overlay use) and every object is validated against the Kubernetes
API schemas (`kubernetes-validate`, strict: unknown fields are errors); KEDA's
objects against the JSON schemas of KEDA's CRDs in tests/fixtures (strict too).
Then what the
deployment relies on: probes, grace periods, non-root, limits, the *_FILE
secrets, the ingress annotations, and the scaler's query against the schema.

tests/fixtures/keda-v1alpha1.schema.json was generated, outside this environment's
site-packages (cloudcoil installs a pytest plugin), with::

    pip install --target /tmp/cc cloudcoil-models-keda==2.16.1.0
    PYTHONPATH=/tmp/cc python -c '...ScaledObject.model_json_schema(by_alias=True)...'

then `additionalProperties: false` added to every object schema that lists its
properties, as the API server's strict field validation behaves.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml

from config.settings import Settings, env_name, secret_file_names
from server.db.pool import open_database

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
BASE, OVERLAY = KUBE / "base", KUBE / "overlays" / "example"
# The oldest Kubernetes still supported upstream when this was written, and the newest known.
VERSIONS = ("1.32.0", kubernetes_validate.utils.latest_version())
KEDA_SCHEMAS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "keda-v1alpha1.schema.json").read_text()
)["schemas"]
SETTING_NAMES = {env_name(name) for name in Settings.__dataclass_fields__}


def _literals(entries: list[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries)


def build(directory: Path) -> list[dict[str, Any]]:
    """`kustomize build directory`, for the features the base and overlay use."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {
        "apiVersion",
        "kind",
        "resources",
        "labels",
        "configMapGenerator",
        "secretGenerator",
        "namespace",
        "images",
        "replicas",
        "patches",
    }
    assert set(spec) <= known, f"this test's builder lacks {set(spec) - known}"
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for gen in spec.get("configMapGenerator", []):
        data = _literals(gen.get("literals", []))
        if gen.get("behavior") == "merge":
            [target] = [o for o in objects if _is(o, "ConfigMap", gen["name"])]
            target["data"].update(data)
        else:
            objects.append(_object("v1", "ConfigMap", gen["name"], data=data))
    for gen in spec.get("secretGenerator", []):
        data = {
            k: base64.b64encode(v.encode()).decode()
            for k, v in _literals(gen.get("literals", [])).items()
        }
        objects.append(_object("v1", "Secret", gen["name"], type="Opaque", data=data))
    for group in spec.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(group["pairs"])
    for image in spec.get("images", []):
        for container in (c for o in objects for c in _containers(o)):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image['newName']}:{image['newTag']}"
    for replicas in spec.get("replicas", []):
        [target] = [o for o in objects if _is(o, "Deployment", replicas["name"])]
        target["spec"]["replicas"] = replicas["count"]
    for patch in spec.get("patches", []):
        target_spec = patch["target"]
        [i] = [i for i, o in enumerate(objects) if _is(o, target_spec["kind"], target_spec["name"])]
        ops = yaml.safe_load((directory / patch["path"]).read_text())
        objects[i] = jsonpatch.apply_patch(objects[i], ops)
    if namespace := spec.get("namespace"):
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = namespace
    return objects


def _object(api_version: str, kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **fields}


def _is(obj: dict[str, Any], kind: str, name: str) -> bool:
    return bool(obj["kind"] == kind and obj["metadata"]["name"] == name)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] != "Deployment":
        return []
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def the(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if _is(o, kind, name)]
    return found


@pytest.fixture(params=["base", "overlay"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(BASE if request.param == "base" else OVERLAY)


def test_every_object_is_valid_against_the_kubernetes_and_keda_schemas(
    objects: list[dict[str, Any]],
) -> None:
    kinds = sorted(o["kind"] for o in objects)
    for required in ("Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"):
        assert required in kinds
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(obj, KEDA_SCHEMAS[obj["kind"]])
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_a_misspelt_field_is_caught() -> None:
    objects = build(BASE)
    deployment = copy.deepcopy(the(objects, "Deployment", "frameflow-api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(the(objects, "ScaledObject", "frameflow-worker"))
    scaled["spec"]["triggers"][0]["metdata"] = scaled["spec"]["triggers"][0].pop("metadata")
    with pytest.raises(jsonschema.ValidationError, match="metdata"):
        jsonschema.validate(scaled, KEDA_SCHEMAS["ScaledObject"])


def test_pods_run_their_role_non_root_with_limits_probes_and_file_secrets(
    objects: list[dict[str, Any]],
) -> None:
    config = the(objects, "ConfigMap", "frameflow-config")["data"]
    assert set(config) <= SETTING_NAMES, set(config) - SETTING_NAMES
    grace = float(config["FRAMEFLOW_SHUTDOWN_GRACE_SECONDS"])
    for role in ("api", "worker"):
        pod = the(objects, "Deployment", f"frameflow-{role}")["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"][-2:] == ["--role", role]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        pause = 0.0
        if pre_stop := container.get("lifecycle", {}).get("preStop"):
            pause = float(pre_stop["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] > pause + grace
        # Secrets come from files of the mounted Secret, through real *_FILE settings.
        files = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
        assert files and set(files) <= secret_file_names()
        inline = {e["name"] for e in container["env"]} | set(config)
        assert not inline & {name.removesuffix("_FILE") for name in secret_file_names()}
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
        [volume] = [v for v in pod["volumes"] if v["name"] == "secrets"]
        assert all(path.startswith(mount["mountPath"] + "/") for path in files.values())
        secret_name = volume["secret"]["secretName"]
        keys = {path.rsplit("/", 1)[1] for path in files.values()}
        secrets = [o for o in objects if _is(o, "Secret", secret_name)]
        if secrets:  # the overlay makes it; the base leaves that to the operator
            assert keys <= set(secrets[0]["data"])
    api = the(objects, "Deployment", "frameflow-api")["spec"]["template"]["spec"]
    assert "lifecycle" in api["containers"][0], "api pods pause before they stop"


def test_the_api_is_spread_scaled_and_exposed_for_uploads_and_websockets(
    objects: list[dict[str, Any]],
) -> None:
    pdb = the(objects, "PodDisruptionBudget", "frameflow-api")
    labels = the(objects, "Deployment", "frameflow-api")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = the(objects, "HorizontalPodAutoscaler", "frameflow-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "frameflow-api"
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    service = the(objects, "Service", "frameflow-api")["spec"]
    assert service["selector"].items() <= labels.items()
    ingress = the(objects, "Ingress", "frameflow")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] == "10g"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # WebSockets
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "frameflow-api"


def test_keda_scales_workers_on_the_queue(objects: list[dict[str, Any]]) -> None:
    scaled = the(objects, "ScaledObject", "frameflow-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "frameflow-worker"
    assert scaled["minReplicaCount"] >= 1, "a worker runs the sweep and the senders"
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    auth = the(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    [ref] = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == (
        "connection",
        "frameflow-secrets",
        "database-url",
    )
    worker = the(objects, "Deployment", "frameflow-worker")
    assert "replicas" not in worker["spec"], "KEDA owns the worker count"
    env = {
        e["name"]: e.get("value")
        for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert trigger["metadata"]["targetQueryValue"] == env["FRAMEFLOW_WORKER_CONCURRENCY"]


async def test_the_scalers_query_counts_jobs_in_our_schema(
    make_settings: Callable[..., Settings],
) -> None:
    query = the(build(BASE), "ScaledObject", "frameflow-worker")["spec"]["triggers"][0]
    sql = query["metadata"]["query"]
    assert re.fullmatch(r"SELECT count\(\*\) FROM jobs WHERE [^;]+", sql)
    async with open_database(make_settings()) as pool, pool.acquire() as conn:
        assert isinstance(await conn.fetchval(sql), int)
