"""A Calico cluster in namespaces for end-to-end tests (real etcd, BIRD, Felix, confd, CNI)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from calico_node.demo import cluster as clustermod
from calico_node.demo import lab as labmod
from libcalico.datastore.etcd import EtcdBackend

Factory = Callable[..., clustermod.Cluster]


@pytest.fixture
def make_cluster() -> Iterator[Factory]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    made: list[tuple[clustermod.Cluster, labmod.Lab, EtcdBackend]] = []

    def make(endpoint: str, **opts: object) -> clustermod.Cluster:
        prefix = f"ct{os.getpid()}n{len(made)}"
        lab = labmod.Lab(prefix, Path(tempfile.mkdtemp(prefix="calico-e2e-")))
        backend = EtcdBackend([endpoint])
        cl = clustermod.Cluster(clustermod.Options(**opts), lab, endpoint,  # type: ignore[arg-type]
                                backend, say=print)
        made.append((cl, lab, backend))
        cl.bring_up()
        return cl

    try:
        yield make
    finally:
        for cl, lab, backend in reversed(made):
            cl.close()
            backend.close()
            lab.close()
            assert not list(labmod.NETNS_DIR.glob(f"{lab.prefix}-*")), "namespaces left"
            assert not lab.workdir.exists()
