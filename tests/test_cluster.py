"""cluster/: launcher YAMLs validate against Ray's own schema, KubeRay manifests are well formed, and
every file uses the versions pinned in cluster/versions.env."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"
PINS = dict(line.split("=", 1) for line in (CLUSTER / "versions.env").read_text().splitlines()
            if line and not line.startswith("#"))


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_yaml_validates_against_rays_schema(name):
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / name).read_text())
    jsonschema.validate(config, schema)
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    assert any("cpu" in t for t in node_types) and any("gpu" in t for t in node_types)
    broken = dict(config, no_such_key=1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_kuberay_manifests_are_well_formed():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["rayVersion"] == PINS["RAY_VERSION"]
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert head["image"].startswith(f"rayproject/ray:{PINS['RAY_VERSION']}")
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            assert group["template"]["spec"]["containers"][0]["image"] == head["image"]
    gpu_groups = [g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert gpu_groups[0]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "raympl.cli.main simulate" in job["spec"]["entrypoint"]
    assert yaml.safe_load(job["spec"]["runtimeEnvYAML"])["working_dir"]


def test_every_cluster_file_uses_the_pinned_versions():
    for path in CLUSTER.rglob("*"):
        if path.suffix not in (".yaml", ".sh"):
            continue
        text = path.read_text()
        for version in re.findall(r"rayproject/ray:([0-9.]+)", text) + re.findall(r'rayVersion: "([0-9.]+)"', text):
            assert version == PINS["RAY_VERSION"], path
        for version in re.findall(r"torch==([0-9.]+)", text):
            assert version == PINS["TORCH_VERSION"], path
        for tag in re.findall(r"rayproject/ray:[0-9.]+-(py[0-9]+)", text):
            assert tag == PINS["PYTHON_TAG"], path
    assert ray.__version__ == PINS["RAY_VERSION"]


def test_runtime_env_keeps_the_virtualenv_out_of_the_upload():
    runtime_env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert ".venv/" in runtime_env["excludes"] and "runs/" in runtime_env["excludes"]
