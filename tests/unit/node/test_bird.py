from __future__ import annotations

import ipaddress

import pytest

from calico_node import health
from libcalico import bird
from libcalico.errors import ValidationError

REPLY = """0001 BIRD 1.6.8 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     04:06:51
 device1  Device   master   up     04:06:51
 direct1  Direct   master   up     04:06:51
 Mesh_172_31_0_2 BGP      master   up     04:07:03    Established
 Node_10_0_0_9 BGP      master   start  04:07:03    Active        Socket: Connection refused
 Global_fd00__1 BGP      master   up     04:07:05    Established
0000
"""


def test_parse_protocols_and_peers() -> None:
    protos = bird.parse_protocols(REPLY)
    assert [p.name for p in protos][:3] == ["kernel1", "device1", "direct1"]
    peers = bird.peers(protos, 4)
    assert [(str(p.address), p.peer_type, p.state, p.info) for p in peers] == [
        ("172.31.0.2", "node-to-node mesh", "up", "Established"),
        ("10.0.0.9", "node specific", "start", "Active Socket: Connection refused"),
    ]
    assert bird.peers(protos, 6)[0].address == ipaddress.ip_address("fd00::1")
    assert bird.peers(protos, 6)[0].peer_type == "global"


def test_table_matches_calicoctl_layout() -> None:
    peers = bird.peers(bird.parse_protocols(REPLY), 4)[:1]
    assert bird.format_table(peers).splitlines() == [
        "+--------------+-------------------+-------+----------+-------------+",
        "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |",
        "+--------------+-------------------+-------+----------+-------------+",
        "| 172.31.0.2   | node-to-node mesh | up    | 04:07:03 | Established |",
        "+--------------+-------------------+-------+----------+-------------+",
    ]


def test_bad_header_and_errors_rejected() -> None:
    with pytest.raises(ValidationError, match="unexpected BIRD header"):
        bird.parse_protocols("2002-name proto\n0000\n")
    with pytest.raises(ValidationError, match="BIRD error 8001"):
        bird.parse_protocols("8001 Control socket closed\n")


def test_reply_complete() -> None:
    assert not bird.reply_complete("0001 BIRD 1.6.8 ready.\n2002-name\n")
    assert bird.reply_complete(REPLY)
    assert bird.reply_complete("0013 Reconfigured\n")


def _peer(info: str) -> bird.Peer:
    return bird.Peer(ipaddress.ip_address("10.0.0.1"), "global", "up", "x", info)


def test_bird_readiness_rule() -> None:
    up, down = _peer("Established"), _peer("Active")
    assert health.bird_verdict([], False, 1.0).ok
    assert not health.bird_verdict([up, down], False, 5.0).ok
    assert health.bird_verdict([up, up], False, 5.0).ok
    assert not health.bird_verdict([up], True, 5.0).ok
    assert health.bird_verdict([up, down], False, 60.0).ok
    v = health.bird_verdict([down], False, 60.0)
    assert not v.ok and "10.0.0.1" in v.reason
