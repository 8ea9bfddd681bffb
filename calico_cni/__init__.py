"""calico_cni: see ARCHITECTURE (../shared/ARCHITECTURE.md) and docs/."""
