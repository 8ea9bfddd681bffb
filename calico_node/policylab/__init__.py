"""`calico-node policy-lab FILE.json`: a reachability lab for network policy (docs/policy.md)."""
