from collections.abc import Iterator

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes import KubernetesBackend

__all__ = ["kube_backend"]


@pytest.fixture
def kube_backend(kube_apiserver: ControlPlane) -> Iterator[KubernetesBackend]:
    """The project's Kubernetes backend, connected through `connect()` with the admin
    kubeconfig of the session's API server; closed afterwards."""
    b = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                          "KUBECONFIG": str(kube_apiserver.kubeconfig)}))
    assert isinstance(b, KubernetesBackend)
    try:
        yield b
    finally:
        b.close()
