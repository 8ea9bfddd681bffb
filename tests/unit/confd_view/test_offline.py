"""Offline rendering (`calico-confd render`): YAML snapshot → six files, or a clear error and
nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from confd import offline

SNAPSHOT = """
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-a, labels: {rack: yes}}
spec: {bgp: {ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-b}
spec: {bgp: {ipv4Address: 10.0.0.2/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  communities: [{name: c, value: 5663:12}]
  prefixAdvertisements: [{cidr: 192.168.0.0/18, communities: [c]}]
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: p}
spec: {cidr: 192.168.0.0/18}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: a}
spec: {node: node-a, cidr: 192.168.0.0/26, state: confirmed}
---
apiVersion: v1
kind: Secret
metadata: {name: bgp}
stringData: {pw: hunter2}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: edge}
spec:
  peerIP: 192.0.2.1
  asNumber: 65001
  password: {secretKeyRef: {name: bgp, key: pw}}
"""


def test_renders_the_six_files(tmp_path: Path) -> None:
    src = tmp_path / "snap.yaml"
    src.write_text(SNAPSHOT)
    out = tmp_path / "out"
    assert offline.run_render("node-a", src, out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["bird.cfg", "bird6.cfg", "bird_aggr.cfg", "bird6_aggr.cfg", "bird_ipam.cfg",
         "bird6_ipam.cfg"])
    bird = (out / "bird.cfg").read_text()
    assert "protocol bgp Mesh_10_0_0_2 from bgp_template" in bird
    assert 'password "hunter2";' in bird
    # "5663:12" stays a community (YAML 1.1 would read it as a base-60 number).
    assert "bgp_community.add((5663, 12));" in bird
    assert "route 192.168.0.0/26 blackhole;" in (out / "bird_aggr.cfg").read_text()


@pytest.mark.parametrize(("text", "message"), [
    ("kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: p}\n"
     "spec: {cidr: not-a-cidr}\n", "cidr"),
    ("kind: [\n", "YAML"),
    ("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: other}\n", "node-a"),
])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path: Path, text: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "snap.yaml"
    src.write_text(text)
    out = tmp_path / "out"
    assert offline.run_render("node-a", src, out) == 1
    assert not out.exists()
    assert message in capsys.readouterr().err
