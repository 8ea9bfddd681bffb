#!/bin/sh
# calico-node container entrypoint: with no arguments run calico-node (startup, then
# BIRD/confd/Felix under its supervisor); otherwise run the given calico-node arguments
# (`-startup`, `--felix-ready`, ...) or any command (`calicoctl node status`).
set -e
if [ "$#" -eq 0 ]; then
  exec calico-node
fi
case "$1" in
  -*) exec calico-node "$@" ;;
  *) exec "$@" ;;
esac
