"""The session's Kubernetes API server, reachable from inside a host namespace at the address
its kubeconfig and serving certificate name (`https://127.0.0.1:PORT`), as a pod reaches
`kubernetes.default` through kube-proxy.

A `libcalico.relay.Relay` (the demo's relay): a listening socket made inside the namespace,
each connection accepted on it spliced to the real server in the root namespace. Felix in the
namespace uses the session's kubeconfig unchanged (with calico-node's token, see stores.py);
nothing is added to the namespace's routes or iptables.
"""

from __future__ import annotations

from libcalico.relay import Relay


class KubeRelay(Relay):
    """127.0.0.1:`port` inside `ns` → 127.0.0.1:`port` in the root namespace."""

    def __init__(self, ns: str, port: int) -> None:
        self.port = port
        super().__init__(ns, ("127.0.0.1", port), ("127.0.0.1", port), connect_timeout=10)
