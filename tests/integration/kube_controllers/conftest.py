from collections.abc import Iterator

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore.kubernetes_client import KubeClient, access_from_kubeconfig
from tests.fixtures.kube import kube_apiserver

__all__ = ["kube_apiserver", "kube_client"]


@pytest.fixture
def kube_client(kube_apiserver: ControlPlane) -> Iterator[KubeClient]:
    """A stdlib Kubernetes client with the admin kubeconfig of the session's API server."""
    c = KubeClient(access_from_kubeconfig(str(kube_apiserver.kubeconfig)))
    try:
        yield c
    finally:
        c.close()
