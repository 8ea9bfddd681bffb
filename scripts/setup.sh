#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine, run as root: system packages from
# .ci/packages.txt, then a virtualenv at .venv with the project and its test tools.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

mapfile -t pkgs < <(grep -v '^\s*#' .ci/packages.txt | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts etcd as a service on install; the project runs its own etcds.
if systemctl is-active --quiet etcd 2>/dev/null; then systemctl stop etcd || true; fi

py=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -e $stamp ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The test-only Kubernetes control plane (kube-apiserver and etcd for tests/integration/kube),
# built from the Go module proxy into /var/cache/calico-py when missing (cold ~5 min here).
nice -n 10 bash scripts/build-kube >/dev/null
