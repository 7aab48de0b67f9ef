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
    assert cron["kind"] == "RayCronJob" and cron["spec"]["jobTemplate"]["entrypoint"] == rayjob["spec"]["entrypoint"]
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
