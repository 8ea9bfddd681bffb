"""Hypothesis properties: round trips are lossless and stable; junk only ever raises
ValidationError."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from libcalico.errors import ValidationError
from libcalico.model import codec
from libcalico.model import resources as r

V3 = "projectcalico.org/v3"

dns_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
names = st.builds(lambda parts: ".".join(parts), st.lists(dns_label, min_size=1, max_size=3))
label_values = st.from_regex(r"\A([A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?)?\Z")
labels = st.dictionaries(dns_label, label_values, max_size=4)
modes = st.sampled_from(["Always", "CrossSubnet", "Never", None])


@st.composite
def v4_pool_docs(draw: st.DrawFn) -> dict[str, Any]:
    prefix = draw(st.integers(min_value=8, max_value=26))
    addr = draw(st.integers(min_value=0, max_value=2**32 - 1))
    net = ipaddress.IPv4Network((addr, prefix), strict=False)
    if net.overlaps(ipaddress.IPv4Network("169.254.0.0/16")):
        net = ipaddress.IPv4Network("10.0.0.0/8")
        prefix = 8
    ipip = draw(modes)
    vxlan = None if ipip not in (None, "Never") else draw(modes)
    spec: dict[str, Any] = {"cidr": str(net)}
    if ipip is not None:
        spec["ipipMode"] = ipip
    if vxlan is not None:
        spec["vxlanMode"] = vxlan
    if draw(st.booleans()):
        spec["blockSize"] = draw(st.integers(min_value=max(prefix, 20), max_value=32))
    spec["natOutgoing"] = draw(st.booleans())
    spec["disableBGPExport"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(st.sampled_from(["all()", "has(a)", "zone == 'b'"]))
    return {"apiVersion": V3, "kind": "IPPool",
            "metadata": {"name": draw(names), "labels": draw(labels)}, "spec": spec}


@st.composite
def peer_docs(draw: st.DrawFn) -> dict[str, Any]:
    v6 = draw(st.booleans())
    ip = (ipaddress.IPv6Address(draw(st.integers(min_value=1, max_value=2**128 - 1))) if v6
          else ipaddress.IPv4Address(draw(st.integers(min_value=1, max_value=2**32 - 1))))
    port = draw(st.none() | st.integers(min_value=1, max_value=65535))
    text = str(ip) if port is None else (f"[{ip}]:{port}" if v6 else f"{ip}:{port}")
    asn = draw(st.integers(min_value=1, max_value=2**32 - 1))  # 0 means "unset" (omitempty)
    as_text = draw(st.sampled_from(["int", "str", "dotted"]))
    as_value: object = {"int": asn, "str": str(asn), "dotted": f"{asn >> 16}.{asn & 0xFFFF}"}[
        as_text]
    spec: dict[str, Any] = {"peerIP": text, "asNumber": as_value}
    if draw(st.booleans()):
        spec["node"] = draw(names)
    if draw(st.booleans()):
        spec["keepaliveTime"] = f"{draw(st.integers(min_value=0, max_value=10**6))}s"
    if draw(st.booleans()):
        spec["ttlSecurity"] = draw(st.integers(min_value=0, max_value=255))
    if draw(st.booleans()):
        spec["filters"] = draw(st.lists(names, max_size=3))
    return {"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": draw(names)},
            "spec": spec}


def _round_trips(doc: dict[str, Any]) -> None:
    res = codec.decode(doc)
    stored = codec.dumps(res)
    again = codec.loads(stored)
    assert again == res
    assert codec.dumps(again) == stored  # stable bytes
    assert codec.decode(codec.encode(res)) == res  # decode is idempotent over encode
    assert json.loads(stored)["metadata"].get("resourceVersion") is None


@settings(max_examples=150)
@given(v4_pool_docs())
def test_ippool_round_trip(doc: dict[str, Any]) -> None:
    _round_trips(doc)
    res = codec.decode(doc)
    assert isinstance(res, r.IPPool)
    assert res.spec.block_size is not None and res.spec.cidr.prefixlen <= res.spec.block_size


@settings(max_examples=150)
@given(peer_docs())
def test_bgppeer_round_trip_keeps_port_and_as_number(doc: dict[str, Any]) -> None:
    _round_trips(doc)
    res = codec.decode(doc)
    assert isinstance(res, r.BGPPeer)
    text = doc["spec"]["peerIP"]
    assert res.spec.port == (int(text.rsplit(":", 1)[1]) if "]:" in text or text.count(":") == 1
                             else None)
    assert codec.encode(res)["spec"]["peerIP"] == text  # type: ignore[index]
    raw_as = doc["spec"]["asNumber"]
    if isinstance(raw_as, int):
        assert res.spec.as_number == raw_as


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["cidr", "ipipMode", "bgp", "asNumber", "peerIP", "x", "ports",
                         "action", "exportV4", "ingress", "blockSize", "nets"]),
        children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.sampled_from(sorted(r.KINDS)), json_values)
def test_junk_specs_raise_only_validation_errors(kind: str, spec: object) -> None:
    doc = {"apiVersion": V3, "kind": kind, "metadata": {"name": "default"}, "spec": spec}
    try:
        res = codec.decode(doc)
    except ValidationError as exc:
        assert exc.errors and all(e.reason for e in exc.errors)
    else:
        assert codec.loads(codec.dumps(res)) == res


wep_part = st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?\Z")


@settings(max_examples=300)
@given(st.tuples(wep_part, wep_part, st.from_regex(r"\Aeth[0-9]{1,2}\Z")),
       st.tuples(wep_part, wep_part, st.from_regex(r"\Aeth[0-9]{1,2}\Z")))
def test_workload_endpoint_names_are_unambiguous(a: tuple[str, str, str],
                                                 b: tuple[str, str, str]) -> None:
    """Doubling '-' inside each part makes the derived name injective."""
    def name(ids: tuple[str, str, str]) -> str | None:
        return r.workload_endpoint_name(r.WorkloadEndpointSpec(
            orchestrator="k8s", node=ids[0], pod=ids[1], endpoint=ids[2]))

    assert (name(a) == name(b)) == (a == b)
