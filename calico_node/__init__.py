"""calico_node: see ARCHITECTURE (../shared/ARCHITECTURE.md) and docs/."""
