"""What confd refuses beyond Calico's validation (confd.birdsafe), over typed values, and how a
refused or undecodable resource is reported: once, naming the resource, the field and why."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from confd import birdsafe, keyspace
from confd.render import CALICO_JOBS, Renderer
from libcalico.model.metadata import Metadata
from libcalico.model.resources import BGPConfiguration, BGPFilter, BGPPeer
from libcalico.model.resources_bgp import (
    BGPConfigurationSpec,
    BGPFilterRule,
    BGPFilterSpec,
    BGPPeerSpec,
    FilterAction,
)
from tests.unit.confd_view import snap

FIELDS = ("communities", "prefixAdvertisements", "serviceClusterIPs", "serviceExternalIPs",
          "serviceLoadBalancerIPs", "ignoredInterfaces")


def warnings(s: dict[str, str]) -> tuple[str, ...]:
    return keyspace.KeySpaceBuilder().build(s, "a", {}).warnings


@pytest.mark.parametrize("field", FIELDS)
def test_a_list_field_that_is_not_a_list_refuses_the_configuration_naming_it(field: str) -> None:
    base = snap.snapshot(snap.node("a", "10.0.0.2/16"))
    assert warnings(base | snap.snapshot(snap.config("default", **{field: []}))) == ()
    w = warnings(base | snap.snapshot(snap.config("default", **{field: {"cidr": "10.0.0.0/8"}})))
    assert len(w) == 1 and w[0].startswith("BGPConfiguration 'default' ignored: ")
    assert f"spec.{field}" in w[0]


def test_interface_patterns_bird_cannot_quote_are_refused() -> None:
    for pat in ('eth0"', "eth\\0", "eth0\n", ""):
        cfg = BGPConfiguration(Metadata("default"), BGPConfigurationSpec(ignored_interfaces=(pat,)))
        bad = birdsafe.refusal("BGPConfiguration", "default", cfg)
        assert bad is not None and bad.field == "spec.ignoredInterfaces[0]", pat
        assert str(bad).startswith("BGPConfiguration 'default' ignored: spec.ignoredInterfaces[0]")
    ok = BGPConfiguration(Metadata("default"), BGPConfigurationSpec(ignored_interfaces=("eth*",)))
    assert birdsafe.refusal("BGPConfiguration", "default", ok) is None


def test_negative_durations_are_refused() -> None:
    peer = BGPPeer(Metadata("p"), BGPPeerSpec(max_restart_time=timedelta(seconds=-5)))
    bad = birdsafe.refusal("BGPPeer", "p", peer)
    assert bad is not None and bad.field == "spec.maxRestartTime"
    peer = dataclasses.replace(peer, spec=BGPPeerSpec(keepalive_time=timedelta(seconds=30)))
    assert birdsafe.refusal("BGPPeer", "p", peer) is None


def test_a_filter_rule_bird_cannot_print_refuses_the_filter() -> None:
    rule = BGPFilterRule(action=FilterAction.ACCEPT, interface='eth"*')
    f = BGPFilter(Metadata("f"), BGPFilterSpec(import_v6=(rule,)))
    bad = birdsafe.refusal("BGPFilter", "f", f)
    assert bad is not None and bad.field == "spec.importV6[0].interface"
    assert "cannot quote" in bad.reason


def test_names_come_from_the_key_and_must_be_kubernetes_names() -> None:
    assert birdsafe.refusal("BGPFilter", "F'x", BGPFilter(Metadata("f"))) is not None
    assert birdsafe.refusal("BGPFilter", "f-1.x", BGPFilter(Metadata("f-1.x"))) is None


def test_a_refusal_is_logged_once_until_the_value_changes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    s = snap.snapshot(snap.node("a", "10.0.0.2/16"), snap.config(listenPort="x"))
    r = Renderer(snap.TEMPLATES)
    r.render(s, "a", {}, CALICO_JOBS)
    r.render(dict(s), "a", {}, CALICO_JOBS)
    logged = [rec.getMessage() for rec in caplog.records if "ignored" in rec.getMessage()]
    assert len(logged) == 1 and "spec.listenPort" in logged[0], logged
    assert r.warnings and "BGPConfiguration 'default' ignored" in r.warnings[0]


def test_a_peer_ip_without_as_number_is_left_out() -> None:
    s = snap.snapshot(snap.node("a", "10.0.0.2/16"), snap.peer("p", peerIP="192.0.2.1"),
                      snap.peer("q", peerIP="192.0.2.2", asNumber=65001))
    ks = keyspace.KeySpaceBuilder().build(s, "a", {})
    assert ks.warnings == ("BGPPeer 'p' ignored: spec.asNumber: BIRD needs the AS number of a "
                           "peerIP peer",)
    assert "/calico/bgp/v1/global/peer_v4/192.0.2.2" in ks.values
    assert "/calico/bgp/v1/global/peer_v4/192.0.2.1" not in ks.values
