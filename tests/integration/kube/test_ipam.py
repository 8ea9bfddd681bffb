"""Calico IPAM on KDD: blocks, affinities, handles and the config as Calico's IPAM custom
resources (names, labels, spec JSON), KDD's two-phase delete, and watches of IPAM objects."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.api import EventType
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.kubernetes_ipam import hostname_hash
from libcalico.errors import Conflict, NotFound
from libcalico.ipam.assignment import AutoAssignArgs
from libcalico.ipam.client import IPAMClient
from libcalico.ipam.records import IPAMConfig
from libcalico.model import codec, keys
from libcalico.model.resources import IPPool

CRD = "/apis/crd.projectcalico.org/v1"


@pytest.fixture
def pool_and_node(kube_apiserver: ControlPlane, kube_backend: KubernetesBackend
                  ) -> Iterator[tuple[str, str]]:
    """A Kubernetes Node and a /24 IPIP-less pool of /28 blocks, both the test's own."""
    tag = uuid.uuid4().hex[:6]
    host, octet = f"ipam-{tag}", int(tag[:2], 16)
    cidr = f"10.{200 + octet % 50}.{octet}.0/24"
    assert kube_apiserver.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": host}})[0] == 201
    client = Client(kube_backend)
    pool = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                         "metadata": {"name": f"pool-{tag}"},
                         "spec": {"cidr": cidr, "blockSize": 28}})
    client.create(pool)
    try:
        yield host, cidr
    finally:
        IPAMClient(kube_backend).release_host_affinities(host)
        client.delete(IPPool, f"pool-{tag}")
        kube_apiserver.request("DELETE", f"/api/v1/nodes/{host}")


def test_ipam_objects_as_calico_stores_them(kube_apiserver: ControlPlane,
                                            kube_backend: KubernetesBackend,
                                            pool_and_node: tuple[str, str]) -> None:
    host, _ = pool_and_node
    ipam = IPAMClient(kube_backend)
    handle = f"k8s-pod-network.Abc{uuid.uuid4().hex[:6]}"
    v4, _ = ipam.auto_assign(AutoAssignArgs(hostname=host, num4=2, handle_id=handle,
                                            attrs={"node": host}))
    assert len(v4.ips) == 2
    block = v4.ips[0].network
    block_name = str(block).replace(".", "-").replace("/", "-")

    status, cr = kube_apiserver.request("GET", f"{CRD}/ipamblocks/{block_name}")
    assert status == 200
    spec = cr["spec"]
    assert spec["cidr"] == str(block) and spec["affinity"] == f"host:{host}"
    assert spec["strictAffinity"] is False and "affinityClaimTime" in spec
    assert [a["handle_id"] for a in spec["attributes"]] == [handle]
    assert cr["metadata"]["annotations"]["projectcalico.org/metadata"] == \
        '{"creationTimestamp":null}'

    status, aff = kube_apiserver.request("GET", f"{CRD}/blockaffinities/{host}-{block_name}")
    assert status == 200
    assert aff["spec"] == {"state": "confirmed", "node": host, "type": "host",
                           "cidr": str(block), "deleted": "false"}
    assert aff["metadata"]["labels"] == {"projectcalico.org/affinity-type": "host",
                                         "projectcalico.org/hostname-hash": hostname_hash(host),
                                         "projectcalico.org/ip-version": "4"}

    status, h = kube_apiserver.request("GET", f"{CRD}/ipamhandles/{handle.lower()}")
    assert status == 200
    assert h["spec"] == {"handleID": handle, "block": {str(block): 2}, "deleted": False}

    assert sorted(str(i) for i in ipam.ips_by_handle(handle)) == \
        sorted(str(i.ip) for i in v4.ips)
    assert ipam.release_by_handle(handle) == 2
    assert kube_apiserver.request("GET", f"{CRD}/ipamhandles/{handle.lower()}")[0] == 404
    assert ipam.release_host_affinities(host) == 1
    assert kube_apiserver.request("GET", f"{CRD}/blockaffinities/{host}-{block_name}")[0] \
        == 404
    assert kube_apiserver.request("GET", f"{CRD}/ipamblocks/{block_name}")[0] == 404


def test_ipam_config_and_two_phase_delete(kube_apiserver: ControlPlane,
                                          kube_backend: KubernetesBackend) -> None:
    ipam = IPAMClient(kube_backend)
    ipam.set_config(IPAMConfig(strict_affinity=True, auto_allocate_blocks=True,
                               max_blocks_per_host=4))
    try:
        status, cfg = kube_apiserver.request("GET", f"{CRD}/ipamconfigs/default")
        assert status == 200
        assert cfg["spec"] == {"strictAffinity": True, "autoAllocateBlocks": True,
                               "maxBlocksPerHost": 4}
        assert ipam.get_config() == IPAMConfig(True, True, 4)
        ipam.set_config(IPAMConfig(strict_affinity=False, auto_allocate_blocks=True))
        assert ipam.get_config() == IPAMConfig(False, True, 0)  # apply over the existing
    finally:
        kube_backend.delete(keys.IPAM_CONFIG_KEY)

    key = keys.handle_key(f"two-phase-{uuid.uuid4().hex[:6]}")
    first = kube_backend.create(key, '{"block":{"10.9.0.0/26":1},"deleted":false}')
    second = kube_backend.update(key, '{"block":{"10.9.0.0/26":2},"deleted":false}',
                                 first.revision)
    with pytest.raises(Conflict):
        kube_backend.delete(key, first.revision)
    assert json.loads(kube_backend.get(key).value)["block"] == {"10.9.0.0/26": 2}

    # A delete interrupted after its first phase: readers see nothing, a get finishes it.
    prefix = keys.HANDLE_PREFIX
    listing = kube_backend.list(prefix)
    stream = kube_backend.watch(prefix, listing.revision)
    name = key[len(prefix):].lower()
    try:
        status, _ = kube_apiserver.request(
            "PATCH", f"{CRD}/ipamhandles/{name}", {"spec": {"deleted": True}},
            content_type="application/merge-patch+json")
        assert status == 200
        for ev in stream:
            if ev.key == key:
                assert ev.type is EventType.DELETE
                break
    finally:
        stream.close()
    assert key not in [kv.key for kv in kube_backend.list(prefix).kvs]
    with pytest.raises(NotFound):
        kube_backend.get(key)
    assert kube_apiserver.request("GET", f"{CRD}/ipamhandles/{name}")[0] == 404
    assert second.revision != first.revision


def test_v3_ipam_configuration_is_the_ipamconfigs_object(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend) -> None:
    from libcalico.model.resources import IPAMConfiguration

    client = Client(kube_backend)
    res = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration",
                        "metadata": {"name": "default"},
                        "spec": {"strictAffinity": True, "autoAllocateBlocks": True,
                                 "maxBlocksPerHost": 7}})
    client.create(res)
    try:
        status, cr = kube_apiserver.request("GET", f"{CRD}/ipamconfigs/default")
        assert status == 200 and cr["kind"] == "IPAMConfig"
        assert cr["spec"] == {"strictAffinity": True, "maxBlocksPerHost": 7,
                              "autoAllocateBlocks": True}
        got = client.get(IPAMConfiguration, "default")
        assert got.spec.max_blocks_per_host == 7
        # The IPAM library reads the same object through its own key.
        assert IPAMClient(kube_backend).get_config() == IPAMConfig(True, True, 7)
    finally:
        client.delete(IPAMConfiguration, "default")
    assert kube_apiserver.request("GET", f"{CRD}/ipamconfigs/default")[0] == 404
