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

from raympl.runtime.placement import Resources

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
    image = f"{PINS['RAYMPL_IMAGE']}:{PINS['RAYMPL_VERSION']}"
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["rayVersion"] == PINS["RAY_VERSION"]
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert head["image"] in (f"{image}-cpu", f"{image}-gpu")  # the raympl image, never bare Ray
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            container = group["template"]["spec"]["containers"][0]
            gpus = container["resources"]["limits"].get("nvidia.com/gpu")
            assert container["image"] == f"{image}-{'gpu' if gpus else 'cpu'}"
            # Ray is told exactly what the pod holds
            assert group["rayStartParams"]["num-cpus"] == container["resources"]["limits"]["cpu"]
            assert group["rayStartParams"].get("num-gpus") == gpus
    assert job["spec"]["entrypoint"].startswith("raympl simulate --address auto")


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


def test_the_image_is_built_from_the_pinned_ray_with_torch_and_the_wheel():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={PINS['RAY_VERSION']}" in dockerfile
    assert f"ARG PYTHON_TAG={PINS['PYTHON_TAG']}" in dockerfile
    assert "FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}${BASE_SUFFIX}" in dockerfile
    assert f"ARG TORCH_VERSION={PINS['TORCH_VERSION']}" in dockerfile and "raympl-*.whl" in dockerfile
    for name in ("aws.yaml", "gcp.yaml"):
        config = yaml.safe_load((CLUSTER / name).read_text())
        assert config["docker"]["image"] == f"{PINS['RAYMPL_IMAGE']}:{PINS['RAYMPL_VERSION']}-gpu"


# ---- every example asks for what its cluster can hold ---------------------------------------------
def launcher_nodes(name: str) -> list[tuple[float, float]]:
    """(CPU, GPU) of every node the launcher config may run at its largest (workers at max_workers)."""
    config = yaml.safe_load((CLUSTER / name).read_text())
    types = config["available_node_types"]
    workers = {t: spec["max_workers"] for t, spec in types.items() if t != config["head_node_type"]}
    assert sum(workers.values()) <= config["max_workers"], "node types allow more workers than the cluster"
    nodes = [(types[config["head_node_type"]]["resources"].get("CPU", 0), 0)]
    for node_type, count in workers.items():
        resources = types[node_type]["resources"]
        assert "CPU" in resources, f"{name}: {node_type} must state its CPUs so placement can be checked"
        nodes += [(resources["CPU"], resources.get("GPU", 0))] * count
    return nodes


def kuberay_nodes(spec: dict) -> list[tuple[float, float]]:
    nodes = [(float(spec["headGroupSpec"]["rayStartParams"].get("num-cpus", 0)), 0.0)]
    for group in spec["workerGroupSpecs"]:
        params = group["rayStartParams"]
        nodes += [(float(params["num-cpus"]), float(params.get("num-gpus", 0)))] * group["maxReplicas"]
    return nodes


def commands(text: str) -> list[str]:
    """`raympl simulate` / submit.sh command lines (with their continuation lines) in a text."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines()
            if ("submit.sh --" in line or "raympl simulate" in line) and "..." not in line]


def placement_of(command: str):
    from raympl.options import resolve
    from raympl.runtime.placement import plan

    words = command.split("#")[0].split()
    flags = {}
    for k, word in enumerate(words):
        if word.startswith("--") and k + 1 < len(words) and not words[k + 1].startswith("--"):
            flags[word[2:].replace("-", "_")] = words[k + 1]
    overrides = {k: v for k, v in flags.items() if k in ("agents", "gpus_per_agent", "cpus_per_agent",
                                                          "agents_per_actor")}
    return lambda nodes: plan(resolve({k: float(v) if "per_agent" in k else int(v) for k, v in overrides.items()}),
                              Resources(nodes))


def test_every_example_fits_the_cluster_it_is_meant_for():
    readme = (CLUSTER / "README.md").read_text()
    launcher_part, kuberay_part = readme.split("## KubeRay")
    examples = [(c, launcher_nodes(n)) for c in commands(launcher_part) for n in ("aws.yaml", "gcp.yaml")]
    examples += [(c, kuberay_nodes(yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())["spec"]))
                 for c in commands(kuberay_part.split("## What is tested")[0])]
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())["spec"]
    examples.append((job["entrypoint"], kuberay_nodes(job["rayClusterSpec"])))
    assert len(examples) >= 4
    for command, nodes in examples:
        if "--gpus-per-agent auto" in command:  # packed by measured memory: needs a GPU node next to CPUs
            assert any(gpus >= 1 and cpus >= 1 for cpus, gpus in nodes), command
            continue
        placement = placement_of(command)(nodes)  # raises "invalid placement" when it does not fit
        assert placement.fits_now, command


def test_the_fit_check_catches_an_oversized_ask():
    from raympl.config import ConfigError

    with pytest.raises(ConfigError, match="invalid placement"):
        placement_of("cluster/submit.sh --agents 200 --gpus-per-agent 0.25 --cpus-per-agent 1")(
            launcher_nodes("aws.yaml"))


# ---- every recipe requires Ray's token (docs/security.md) -------------------------------------------
def launcher_auth_problems(config: dict) -> list[str]:
    """What leaves a cluster launcher config open: a `ray start` without RAY_AUTH_MODE=token and a token file
    that file_mounts brings, or a dashboard bound beyond the head's localhost."""
    problems = []
    mounts = config.get("file_mounts") or {}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for command in config[key]:
            if "ray start" not in command:
                continue
            token = re.search(r"RAY_AUTH_TOKEN_PATH=(\S+?);", command)
            if "RAY_AUTH_MODE=token" not in command or token is None or token.group(1) not in mounts:
                problems.append(f"{key}: `ray start` without RAY_AUTH_MODE=token and a mounted token file")
            host = re.search(r"--dashboard-host[= ](\S+)", command)
            if key == "head_start_ray_commands" and (host is None or host.group(1) not in ("127.0.0.1", "localhost")):
                problems.append("the dashboard does not bind to the head's localhost")
    return problems


def kuberay_auth_problems(spec: dict) -> list[str]:
    """A RayCluster spec is closed by `authOptions: {mode: token}`, or by RAY_AUTH_MODE=token and RAY_AUTH_TOKEN
    from a Secret on every container."""
    if (spec.get("authOptions") or {}).get("mode") == "token":
        return []
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    problems = []
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            secret = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token" or not secret:
                problems.append(f"{container['name']}: no token authentication")
    return problems


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_recipes_require_a_token(name):
    config = yaml.safe_load((CLUSTER / name).read_text())
    assert launcher_auth_problems(config) == []
    opened = json.loads(json.dumps(config))  # the same recipe with authentication off fails the check
    opened["head_start_ray_commands"] = [c.replace("RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled")
                                         for c in opened["head_start_ray_commands"]]
    assert launcher_auth_problems(opened)
    wide = json.loads(json.dumps(config))
    wide["head_start_ray_commands"] = [c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
                                       for c in wide["head_start_ray_commands"]]
    assert launcher_auth_problems(wide) == ["the dashboard does not bind to the head's localhost"]


def test_kuberay_recipes_require_a_token():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())["spec"]
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())["spec"]["rayClusterSpec"]
    for spec in (cluster, job):
        assert kuberay_auth_problems(spec) == []
        opened = {k: v for k, v in spec.items() if k != "authOptions"}
        assert len(kuberay_auth_problems(opened)) == 1 + len(spec["workerGroupSpecs"])


def test_no_file_turns_authentication_off():
    """submit.sh sends the token (and refuses to go on without one); no recipe or guide says to disable it."""
    submit = (CLUSTER / "submit.sh").read_text()
    assert ': "${RAY_AUTH_MODE:=token}"' in submit and "export RAY_ADDRESS RAY_AUTH_MODE" in submit
    for path in [*CLUSTER.rglob("*"), CLUSTER.parent / "README.md", *(CLUSTER.parent / "docs").glob("*.md")]:
        if path.is_file() and path.suffix in (".md", ".yaml", ".sh", ".env", ""):
            assert "RAY_AUTH_MODE=disabled" not in path.read_text(), path


def test_submit_refuses_to_go_on_without_a_token(tmp_path):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(tmp_path)}
    result = subprocess.run([str(CLUSTER / "submit.sh"), "--agents", "4"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: no Ray token"), result.stderr
