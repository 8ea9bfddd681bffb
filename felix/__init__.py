"""felix: see ARCHITECTURE (../shared/ARCHITECTURE.md) and docs/."""
