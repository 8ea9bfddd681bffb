"""Startup's read-modify-write of its Node over MemoryBackend: a writer that gets in between
the read and the write makes the compare-and-swap fail; startup re-reads, keeps that writer's
change, and writes its own."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path

from calico_node import autodetect, startup
from libcalico.client import Client
from libcalico.datastore.api import KVPair, Revision
from libcalico.datastore.memory import MemoryBackend
from libcalico.model import codec, keys
from libcalico.model.resources import Node

IFACES = [autodetect.Interface("eth0", (ipaddress.ip_interface("172.30.0.11/24"),))]
NODE = keys.resource_key("Node", "node-1")


class RacingBackend(MemoryBackend):
    """Before the first update of the Node, another writer labels it."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        if key == NODE and not self.raced:
            self.raced = True
            other = Client(self).get(Node, "node-1")  # another writer, same store
            super().update(key, _labelled(other), revision)
        return super().update(key, value, revision)


def _labelled(node: Node) -> str:
    return codec.dumps(replace(node, metadata=replace(node.metadata, labels={"rack": "a"})))


def run(backend: MemoryBackend, tmp_path: Path, **env: str) -> startup.Result:
    full = {"NODENAME": "node-1", "CALICO_NODENAME_FILE": str(tmp_path / "nodename"), **env}
    return startup.Startup(backend=backend, env=full, interfaces=lambda: IFACES,
                           route_lookup=lambda d: None, hostname="host-a").run()


def test_conflict_is_retried_and_the_other_writers_change_kept(tmp_path: Path) -> None:
    backend = RacingBackend()
    run(backend, tmp_path)  # creates the Node (no update yet)
    r = run(backend, tmp_path, AS="65010")  # the update races with the labeller
    assert backend.raced and r.ipv4 == "172.30.0.11/24"
    doc = json.loads(backend.get(NODE).value)
    assert doc["metadata"]["labels"] == {"rack": "a"}
    assert doc["spec"]["bgp"]["asNumber"] == 65010
