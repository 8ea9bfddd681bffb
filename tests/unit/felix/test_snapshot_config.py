"""FelixConfiguration in the snapshot: a deleted `default` or `node.<host>` stops applying
(Felix's effective configuration changes back, which restarts it as in Calico)."""

from __future__ import annotations

from felix.calc.snapshot import Snapshot
from libcalico.model import codec
from tests.unit.felix import data


def test_deleted_felix_configuration_no_longer_applies() -> None:
    snap = Snapshot()
    for name, mtu in (("default", 1410), ("node.h1", 1400)):
        key, value = data.felixconfig(name, {"vxlanMTU": mtu})
        snap.apply(key, codec.loads(value))
    assert snap.felix_config("h1") == ({"vxlanMTU": 1400}, {"vxlanMTU": 1410})
    snap.apply(data.felixconfig("node.h1", {})[0], None)
    assert snap.felix_config("h1") == (None, {"vxlanMTU": 1410})
    snap.apply(data.felixconfig("default", {})[0], None)
    assert snap.felix_config("h1") == (None, None)
