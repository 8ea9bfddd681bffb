#!/usr/bin/env bash
# Build the calico-node image with podman, without a registry:
#   1. a Debian 12 base made with debootstrap from Debian's mirror and `podman import`
#      (kept as localhost/calico-py-base:bookworm; rebuilt only when missing);
#   2. docker/Dockerfile on top of it (bird, iptables, ipset, iproute2, the project).
# Usage: docker/build.sh [IMAGE]   (default localhost/calico-py/node:latest)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-localhost/calico-py/node:latest}
base=localhost/calico-py-base:bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# PODMAN may carry global options (a private --root/--runroot for tests).
read -r -a podman <<<"${PODMAN:-podman}"

if ! "${podman[@]}" image exists "$base"; then
  rootfs=$(mktemp -d /tmp/calico-py-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "build: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  echo "build: podman import -> $base" >&2
  tar -C "$rootfs" -c . | "${podman[@]}" import - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi
echo "build: wheels of the project and its dependencies -> build/wheels" >&2
# pip wheel also leaves setuptools' build/ in the tree: remove what this script created.
if [[ -e $here/build ]]; then
  trap 'rm -rf "$here/build/wheels"' EXIT
else
  trap 'rm -rf "$here/build"' EXIT
fi
rm -rf "$here/build/wheels"
py=${PYTHON:-$here/.venv/bin/python}
"$py" -m pip wheel -q --wheel-dir "$here/build/wheels" "$here"
echo "build: podman build -> $image" >&2
"${podman[@]}" build --network host --build-arg BASE="$base" -f "$here/docker/Dockerfile" \
  --ignorefile "$here/docker/dockerignore" \
  -t "$image" "$here"
