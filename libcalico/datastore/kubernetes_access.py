"""Where and how the Kubernetes datastore reaches its API server (`access`), from the
datastore configuration, as libcalico-go resolves it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from libcalico.datastore.kubernetes_client import (
    KubeAccess,
    access_from_kubeconfig,
    access_from_kubeconfig_text,
    access_in_cluster,
)
from libcalico.errors import ConfigError

if TYPE_CHECKING:
    from libcalico.datastore.config import DatastoreConfig


def access(cfg: DatastoreConfig, env: Mapping[str, str] | None = None) -> KubeAccess:
    """Where and how to reach the API server, as libcalico-go resolves it: `kubeconfigInline`,
    else `kubeconfig` (a `:`-list), else `$HOME/.kube/config` when no endpoint is given; then
    the overrides (`k8sAPIEndpoint`, `k8sCAFile`, `k8sCertFile`/`k8sKeyFile`, `k8sAPIToken`,
    `k8sInsecureSkipTLSVerify`); with no kubeconfig and no endpoint, the in-cluster service
    account."""
    env = os.environ if env is None else env
    k = dict(cfg.k8s)
    context = k.get("k8sCurrentContext")
    base: KubeAccess | None = None
    if k.get("kubeconfigInline"):
        base = access_from_kubeconfig_text(k["kubeconfigInline"], context)
    elif k.get("kubeconfig"):
        base = access_from_kubeconfig(k["kubeconfig"], context)
    elif not k.get("k8sAPIEndpoint"):
        home = Path(env.get("HOME") or "/root") / ".kube" / "config"
        base = access_from_kubeconfig(str(home), context) if home.exists() else None
        if base is None:
            base = access_in_cluster(env)
        if base is None:
            raise ConfigError(
                f"{cfg.source}: DATASTORE_TYPE=kubernetes needs KUBECONFIG, K8S_API_ENDPOINT "
                "or an in-cluster service account")
    if base is None:
        base = KubeAccess(server=k["k8sAPIEndpoint"].rstrip("/"), source=cfg.source)

    def read(field: str) -> bytes:
        try:
            return Path(k[field]).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{cfg.source}: cannot read {field} {k[field]}: "
                              f"{exc.strerror or exc}") from exc

    over: dict[str, Any] = {}
    if k.get("k8sAPIEndpoint"):
        over["server"] = k["k8sAPIEndpoint"].rstrip("/")
    if k.get("k8sCAFile"):
        over["ca_pem"] = read("k8sCAFile")
    if k.get("k8sCertFile"):
        over["cert_pem"] = read("k8sCertFile")
    if k.get("k8sKeyFile"):
        over["key_pem"] = read("k8sKeyFile")
    if k.get("k8sAPIToken"):
        over["token"] = k["k8sAPIToken"]
    if k.get("k8sInsecureSkipTLSVerify", "").lower() == "true":
        over["insecure"] = True
    return replace(base, **over) if over else base
