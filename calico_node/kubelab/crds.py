"""The project's CRDs (manifests/crds/) for the kubelab: read them, install them and wait until
each is served. Moved out of apiserver.py, which re-exports the public names."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from calico_node.kubelab.process import READY_BUDGET, KubeLabError

if TYPE_CHECKING:
    from calico_node.kubelab.apiserver import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "manifests" / "crds"


def crd_documents() -> list[dict[str, Any]]:
    """The project's CRDs (manifests/crds/*.yaml), in file order."""
    docs: list[dict[str, Any]] = []
    for f in sorted(CRD_DIR.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def install_crds(cp: ControlPlane, deadline: float | None = None) -> None:
    """Create every CRD (an existing one is replaced) and wait until each is Established and
    its collection answers."""
    deadline = deadline or time.monotonic() + READY_BUDGET
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    docs = crd_documents()
    for doc in docs:
        status, reply = cp.request("POST", base, doc)
        if status == 409:
            name = doc["metadata"]["name"]
            _, cur = cp.request("GET", f"{base}/{name}")
            doc = {**doc, "metadata": {**doc["metadata"],
                                       "resourceVersion": cur["metadata"]["resourceVersion"]}}
            status, reply = cp.request("PUT", f"{base}/{name}", doc)
        if status not in (200, 201):
            raise KubeLabError(f"CRD {doc['metadata']['name']}: {status} {reply}")
    for doc in docs:
        spec = doc["spec"]
        name = doc["metadata"]["name"]
        group_version = f"{spec['group']}/{spec['versions'][0]['name']}"
        collection = f"/apis/{group_version}/{spec['names']['plural']}"
        while True:
            _, cur = cp.request("GET", f"{base}/{name}")
            conds = {c["type"]: c["status"] for c in cur.get("status", {}).get("conditions", [])}
            if conds.get("Established") == "True" and cp.request("GET", collection)[0] == 200:
                break
            if time.monotonic() > deadline:
                raise KubeLabError(f"CRD {name} not served after {READY_BUDGET:.0f} s: {conds}")
            time.sleep(0.1)
