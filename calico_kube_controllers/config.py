"""calico-kube-controllers configuration, from the environment as Calico's
(`kube-controllers/pkg/config/config.go`):

    ENABLED_CONTROLLERS  comma list of node, namespace, serviceaccount, workloadendpoint,
                         policy (default: node). On the Kubernetes datastore only `node`
                         runs (the others mirror Kubernetes into etcd; Calico disables them
                         there too) and the others are dropped with a warning.
    DATASTORE_TYPE       etcdv3 (default) | kubernetes, with the usual datastore variables
                         (ETCD_ENDPOINTS, ...; KUBECONFIG, K8S_API_ENDPOINT, ...).
    KUBECONFIG           the Kubernetes API server to read Nodes, Pods, Namespaces,
                         ServiceAccounts and NetworkPolicies from (both datastores); without
                         it, $HOME/.kube/config or the in-cluster service account.
    LOG_LEVEL            default info.
    STATUS_FILE          where readiness is written (default /status/status.json; ours:
                         Calico's path is fixed).

The leak grace period is the `default` KubeControllersConfiguration's
`spec.controllers.node.leakGracePeriod` when present (Calico's default 15m; 0 disables the GC
of leaked addresses and empty blocks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from libcalico.datastore.config import DatastoreConfig, DatastoreType
from libcalico.errors import ConfigError

log = logging.getLogger(__name__)

CONTROLLERS = ("node", "namespace", "serviceaccount", "workloadendpoint", "policy")
ETCD_ONLY = frozenset(CONTROLLERS) - {"node"}
DEFAULT_STATUS_FILE = Path("/status/status.json")


@dataclass(frozen=True, slots=True)
class Config:
    datastore: DatastoreConfig
    enabled: tuple[str, ...] = ("node",)
    log_level: str = "info"
    status_file: Path = DEFAULT_STATUS_FILE
    dropped: tuple[str, ...] = field(default=())
    """Enabled controllers that do not run on this datastore."""

    @property
    def kdd(self) -> bool:
        return self.datastore.datastore_type is DatastoreType.KUBERNETES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        ds = DatastoreConfig.from_env(env)
        raw = env.get("ENABLED_CONTROLLERS", "node")
        names = [n.strip() for n in raw.split(",") if n.strip()]
        unknown = [n for n in names if n not in CONTROLLERS]
        if unknown:
            raise ConfigError(f"ENABLED_CONTROLLERS: unknown controller(s) "
                              f"{', '.join(unknown)} (known: {', '.join(CONTROLLERS)})")
        enabled = tuple(dict.fromkeys(names))
        dropped: tuple[str, ...] = ()
        if ds.datastore_type is DatastoreType.KUBERNETES:
            dropped = tuple(n for n in enabled if n in ETCD_ONLY)
            enabled = tuple(n for n in enabled if n not in ETCD_ONLY)
        return cls(datastore=ds, enabled=enabled,
                   log_level=env.get("LOG_LEVEL", "info") or "info",
                   status_file=Path(env.get("STATUS_FILE") or DEFAULT_STATUS_FILE),
                   dropped=dropped)
