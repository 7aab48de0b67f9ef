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
