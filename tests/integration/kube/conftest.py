from tests.fixtures.kube import kube_apiserver

__all__ = ["kube_apiserver"]
