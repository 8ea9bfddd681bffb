"""`calico-node install-cni`: the CNI install step of the calico-node DaemonSet (Calico's
install-cni), run in an init container with the host's directories under `/host`.

1. The runtime: the image's Python environment (`sys.prefix`, /opt/calico-py/venv) is copied to
   the same path on the host (hostPath /opt/calico-py), because the plugins are Python: the
   launchers run that environment's interpreter, whose base is the host's `python3` (3.11).
   `CALICO_CNI_COPY_RUNTIME=false` skips the copy (the host has the project installed there).
2. The plugins: `calico` and `calico-ipam` launchers (`calico_cni.install`) into
   /host/opt/cni/bin.
3. The kubeconfig `calico-kubeconfig` (mode 0600) in /host/etc/cni/net.d: the API server as the
   pod sees it (KUBERNETES_SERVICE_HOST/PORT), the service account's CA, and a token of the
   ServiceAccount `calico-cni-plugin` (`CALICO_CNI_SERVICE_ACCOUNT`) from a TokenRequest
   (24 h, as Calico asks; without TokenRequest, calico-node's own token, as Calico falls back).
4. The network configuration `CNI_CONF_NAME` (10-calico.conflist) from `CNI_NETWORK_CONFIG`
   with Calico's placeholders filled: `__KUBERNETES_NODE_NAME__` (KUBERNETES_NODE_NAME),
   `__KUBECONFIG_FILEPATH__` (the kubeconfig's path on the host), `__CNI_MTU__` (CNI_MTU,
   default 0: the plugin's default).

Files are written atomically (temporary file, then rename). While calico-node runs on KDD it
rewrites the kubeconfig with a fresh token every quarter of the token's life
(`keep_token_fresh`; `CNI_TOKEN_REFRESH_INTERVAL` overrides, `CALICO_MANAGE_CNI=false` turns it
off), as Calico's token watch does.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from calico_cni import install as cni_install
from libcalico.datastore.kubernetes_client import (
    SA_DIR,
    KubeAccess,
    KubeClient,
    access_in_cluster,
    name_path,
)
from libcalico.errors import CalicoError, ConfigError, DatastoreError
from libcalico.model.types import parse_duration

log = logging.getLogger(__name__)

HOST = Path("/host")
HOST_NET_DIR = "/etc/cni/net.d"
KUBECONFIG_NAME = "calico-kubeconfig"
TOKEN_SECONDS = 24 * 3600


def render_network_config(template: str, node: str, kubeconfig: str, mtu: str) -> str:
    """CNI_NETWORK_CONFIG with Calico's placeholders filled; refused unless it is a JSON
    object afterwards (the runtime would skip a broken file silently)."""
    if not mtu.strip().isdigit():
        raise ConfigError(f"CNI_MTU={mtu!r}: expected a number")
    text = (template.replace("__KUBERNETES_NODE_NAME__", node)
            .replace("__KUBECONFIG_FILEPATH__", kubeconfig)
            .replace("__CNI_MTU__", mtu.strip()))
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"CNI_NETWORK_CONFIG is not JSON once filled in: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError("CNI_NETWORK_CONFIG is not a JSON object")
    return json.dumps(doc, indent=2) + "\n"


def kubeconfig_text(server: str, ca_pem: bytes | None, token: str) -> str:
    """A kubeconfig (JSON, which is YAML) for one cluster, user and context."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "calico", "user": {"token": token}}],
        "contexts": [{"name": "calico-context",
                      "context": {"cluster": "local", "user": "calico"}}],
        "current-context": "calico-context"}, indent=2) + "\n"


def cni_token(access: KubeAccess, namespace: str, account: str) -> str:
    """A TokenRequest token of `account`; calico-node's own token when that is refused."""
    client = KubeClient(access)
    try:
        reply = client.request(
            "POST", f"/api/v1/namespaces/{name_path(namespace)}/serviceaccounts/"
            f"{name_path(account)}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": TOKEN_SECONDS}},
            what=f"TokenRequest for ServiceAccount {namespace}/{account}")
        token = (reply or {}).get("status", {}).get("token")
        if isinstance(token, str) and token:
            return token
        log.warning("TokenRequest for %s/%s returned no token: using calico-node's own",
                    namespace, account)
    except DatastoreError as exc:
        log.warning("TokenRequest for %s/%s failed (%s): using calico-node's own token",
                    namespace, account, exc)
    finally:
        client.close()
    if access.token:
        return access.token
    if access.token_file is not None:
        return access.token_file.read_text().strip()
    raise ConfigError("no service account token to put in the CNI kubeconfig")


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def copy_runtime(root: Path) -> Path:
    """This Python environment to the same path under `root` (replacing an older copy)."""
    dest = root / sys.prefix.lstrip("/")
    tmp = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(sys.prefix, tmp, symlinks=True)
    old = dest.with_name(f".{dest.name}.old")
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def _in_cluster(env: Mapping[str, str], sa_dir: Path) -> KubeAccess:
    access = access_in_cluster(env, sa_dir)
    if access is None:
        raise ConfigError("no in-cluster service account (KUBERNETES_SERVICE_HOST/PORT and "
                          f"{sa_dir}/token): install-cni runs in the calico-node pod")
    return access


def _net_dir_host(env: Mapping[str, str]) -> str:
    return (env.get("CNI_NET_DIR") or HOST_NET_DIR).rstrip("/")


def write_kubeconfig(env: Mapping[str, str], root: Path = HOST, sa_dir: Path = SA_DIR,
                     access: KubeAccess | None = None) -> Path:
    """(Re)write calico-kubeconfig with a fresh calico-cni-plugin token."""
    access = access or _in_cluster(env, sa_dir)
    ns_file = sa_dir / "namespace"
    namespace = (ns_file.read_text().strip() if ns_file.exists() else "") \
        or env.get("NAMESPACE") or "kube-system"
    account = env.get("CALICO_CNI_SERVICE_ACCOUNT") or "calico-cni-plugin"
    token = cni_token(access, namespace, account)
    net_dir = root / _net_dir_host(env).lstrip("/")
    net_dir.mkdir(parents=True, exist_ok=True)
    kc = net_dir / KUBECONFIG_NAME
    _write(kc, kubeconfig_text(access.server, access.ca_pem, token), 0o600)
    return kc


def install(env: Mapping[str, str], root: Path = HOST, sa_dir: Path = SA_DIR,
            runtime: bool | None = None) -> list[Path]:
    """Everything above; returns the paths written (on the host, under `root`)."""
    node = env.get("KUBERNETES_NODE_NAME") or env.get("NODENAME") or ""
    if not node:
        raise ConfigError("KUBERNETES_NODE_NAME is not set (the DaemonSet sets it from "
                          "spec.nodeName)")
    template = env.get("CNI_NETWORK_CONFIG") or ""
    if not template:
        raise ConfigError("CNI_NETWORK_CONFIG is not set (the calico-config ConfigMap's "
                          "cni_network_config)")
    access = _in_cluster(env, sa_dir)
    kubeconfig_host = f"{_net_dir_host(env)}/{KUBECONFIG_NAME}"
    conflist = render_network_config(template, node, kubeconfig_host, env.get("CNI_MTU") or "0")

    written: list[Path] = []
    if runtime if runtime is not None else \
            env.get("CALICO_CNI_COPY_RUNTIME", "true").lower() != "false":
        written.append(copy_runtime(root))
    written += cni_install.install(root / "opt/cni/bin")
    kc = write_kubeconfig(env, root, sa_dir, access)
    conf = kc.parent / (env.get("CNI_CONF_NAME") or "10-calico.conflist")
    _write(conf, conflist, 0o644)
    written += [kc, conf]
    for p in written:
        log.info("installed %s", p)
    return written


def refresh_interval(env: Mapping[str, str]) -> float:
    """Seconds between token refreshes: CNI_TOKEN_REFRESH_INTERVAL (a Go duration), else a
    quarter of the token's life (Calico's rule)."""
    raw = env.get("CNI_TOKEN_REFRESH_INTERVAL", "").strip()
    if not raw:
        return TOKEN_SECONDS / 4
    try:
        seconds = parse_duration(raw).total_seconds()
    except ValueError as exc:
        raise ConfigError(f"CNI_TOKEN_REFRESH_INTERVAL={raw!r}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f"CNI_TOKEN_REFRESH_INTERVAL={raw!r}: must be positive")
    return seconds


def keep_token_fresh(env: Mapping[str, str], stop: threading.Event,
                     root: Path = HOST, sa_dir: Path = SA_DIR) -> None:
    """calico-node's token watch (Calico's node/pkg/cni): rewrite calico-kubeconfig every
    refresh interval until `stop` is set; a failed refresh is logged and tried again after a
    minute."""
    interval = refresh_interval(env)
    wait = interval
    while not stop.wait(wait):
        try:
            write_kubeconfig(env, root, sa_dir)
            log.info("refreshed the CNI plugin's token in %s", KUBECONFIG_NAME)
            wait = interval
        except (CalicoError, OSError) as exc:
            log.warning("could not refresh the CNI plugin's token: %s", exc)
            wait = min(60.0, interval)


def manages_cni(env: Mapping[str, str], root: Path = HOST) -> bool:
    """On KDD, with CALICO_MANAGE_CNI not false and the host's CNI directory mounted."""
    return (env.get("CALICO_DATASTORE_TYPE") or env.get("DATASTORE_TYPE") or "") \
        .lower() == "kubernetes" \
        and env.get("CALICO_MANAGE_CNI", "true").lower() != "false" \
        and (root / _net_dir_host(env).lstrip("/") / KUBECONFIG_NAME).exists()


def main() -> None:
    for path in install(os.environ):
        print(f"installed {path}")
