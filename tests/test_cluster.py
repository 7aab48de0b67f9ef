"""Deployment files: cluster.yaml against Ray's own schema; the KubeRay/CronJob manifests; nightly."""

import json
import os

import jsonschema
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _yaml(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return yaml.safe_load(f)


def test_cluster_yaml_validates_against_rays_schema():
    import ray.autoscaler

    schema_path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    config = _yaml("cluster.yaml")
    jsonschema.validate(config, schema)
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["resources"]["GPU"] == 1
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any("pip install" in c and "batch-nst" in c for c in config["setup_commands"])


def test_schema_check_rejects_unknown_keys():
    """The validation above is not vacuous: Ray's schema refuses what it does not know."""
    import ray.autoscaler

    with open(os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")) as f:
        schema = json.load(f)
    config = _yaml("cluster.yaml") | {"gpu_workers_typo": 3}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_kuberay_manifests_run_the_nightly_entry_point():
    rayjob = _yaml("jobs/k8s/rayjob-nightly.yaml")
    cron = _yaml("jobs/k8s/raycronjob-nightly.yaml")
    cronjob = _yaml("jobs/k8s/cronjob-nightly.yaml")
    assert rayjob["kind"] == "RayJob" and rayjob["spec"]["shutdownAfterJobFinishes"] is True
    assert "jobs/nightly.py" in rayjob["spec"]["entrypoint"]
    assert cron["kind"] == "RayCronJob" and cron["spec"]["jobTemplate"] == rayjob["spec"]  # the same job, whole
    assert cronjob["kind"] == "CronJob" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["minReplicas"] == 0 and workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_shipped_cluster_and_jobs_ask_for_the_gpu_workers_the_cluster_can_grow_to():
    """`ray up cluster.yaml` + the submit script, or the KubeRay RayJob, run as many 1-GPU workers
    as the cluster's GPU nodes can reach, asked for at once (the autoscaler grows from zero to
    them): nothing computed by hand, nothing left to a scaled-to-zero cluster's resources."""
    import re

    gpu = _yaml("cluster.yaml")["available_node_types"]["gpu_worker"]
    with open(os.path.join(ROOT, "jobs", "submit-nightly.sh")) as f:
        script = f.read()
    defaults = dict(re.findall(r'"\$\{(WORKERS|GPUS_PER_WORKER):=([\d.]+)\}"', script))
    assert (int(defaults["WORKERS"]), float(defaults["GPUS_PER_WORKER"])) == (gpu["max_workers"], gpu["resources"]["GPU"])
    assert '--workers "$WORKERS" --gpus-per-worker "$GPUS_PER_WORKER"' in script
    rayjob = _yaml("jobs/k8s/rayjob-nightly.yaml")
    group = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    flags = re.findall(r"--(workers|gpus-per-worker) (\S+)", rayjob["spec"]["entrypoint"])
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert dict(flags) == {"workers": str(group["maxReplicas"]), "gpus-per-worker": str(limits["nvidia.com/gpu"])}


def test_the_cluster_image_is_built_from_rays_gpu_image_with_the_measured_backend():
    """jobs/Dockerfile builds the image that cluster.yaml and the KubeRay manifests run: FROM Ray's
    GPU image of the Ray version they pin (its tag says which), installing batch-nst with extras
    pyproject.toml defines, `gpu` being JAX's CUDA build (the backend measured on GPUs); cluster.yaml
    installs its synced checkout with the same extras."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(os.path.join(ROOT, "jobs", "Dockerfile")) as f:
        docker = f.read()
    ((version, python),) = re.findall(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-(py\d+)-gpu$", docker, re.M)
    (extras,) = re.findall(r'pip install [^\n]*"/home/ray/batch-nst\[([\w,-]+)\]"', docker)
    cluster = _yaml("cluster.yaml")
    (setup,) = [c for c in cluster["setup_commands"] if "pip install" in c]
    assert f'"/home/ray/batch-nst[{extras}]"' in setup

    rayjob = _yaml("jobs/k8s/rayjob-nightly.yaml")["spec"]
    cron = _yaml("jobs/k8s/raycronjob-nightly.yaml")["spec"]["jobTemplate"]
    pods = [group["template"]["spec"] for spec in (rayjob, cron) for group in
            (spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"])]
    images = {cluster["docker"]["image"]} | {c["image"] for pod in pods for c in pod["containers"]}
    assert images == {f"ghcr.io/studio/batch-nst:ray{version}-{python}-gpu"}
    assert {rayjob["rayClusterSpec"]["rayVersion"], cron["rayClusterSpec"]["rayVersion"]} == {version}

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        defined = tomllib.load(f)["project"]["optional-dependencies"]
    assert set(extras.split(",")) <= set(defined) and "gpu" in extras.split(",")
    assert [dep for dep in defined["gpu"] if dep.startswith("jax[cuda")], defined["gpu"]
