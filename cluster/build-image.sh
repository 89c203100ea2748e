#!/usr/bin/env bash
# Build the raympl cluster image (cluster/Dockerfile) for the versions pinned in cluster/versions.env.
#   cluster/build-image.sh gpu|cpu [--push]
# Tags it $RAYMPL_IMAGE:<raympl version>-<variant>, the name the launcher YAMLs and KubeRay manifests use.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: cluster/build-image.sh gpu|cpu [--push]}
case "$variant" in gpu) suffix=-gpu;; cpu) suffix=;; *) echo "error: variant must be gpu or cpu" >&2; exit 2;; esac
set -a; source cluster/versions.env; set +a
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
rm -rf dist && python3 -m pip wheel --no-deps -w dist .
tag="$RAYMPL_IMAGE:$version-$variant"
docker build -f cluster/Dockerfile --build-arg RAY_VERSION="$RAY_VERSION" --build-arg PYTHON_TAG="$PYTHON_TAG" \
    --build-arg BASE_SUFFIX="$suffix" --build-arg TORCH_VERSION="$TORCH_VERSION" \
    --build-arg TORCHVISION_VERSION="$TORCHVISION_VERSION" -t "$tag" .
if [ "${2:-}" = "--push" ]; then docker push "$tag"; fi
echo "built $tag"
