"""rtnetlink encoding: attributes are 4-byte aligned, nested ones parse back, and a route
dump entry reads as (destination, link index, metric) for the main table only."""

from __future__ import annotations

import ipaddress
import socket
import struct

from calico_cni import netlink as nl


def test_attributes_are_aligned_and_parse_back() -> None:
    a = nl._attr(nl.IFLA_IFNAME, b"eth0\0")           # 4 + 5 bytes, padded to 12
    assert len(a) == 12 and a[:4] == struct.pack("=HH", 9, nl.IFLA_IFNAME)
    both = a + nl._u32(nl.IFLA_MTU, 1450)
    assert nl._attrs(both, 0) == {nl.IFLA_IFNAME: b"eth0\0",
                                  nl.IFLA_MTU: struct.pack("=I", 1450)}
    nested = nl._attr(nl.IFLA_LINKINFO, nl._attr(nl.IFLA_INFO_KIND, b"veth"))
    inner = nl._attrs(nested, 0)[nl.IFLA_LINKINFO]
    assert nl._attrs(inner, 0) == {nl.IFLA_INFO_KIND: b"veth"}
    assert nl._mac("ee:ee:ee:ee:ee:ee") == b"\xee" * 6


def _route(family: int, dst: str, plen: int, *, table: int = nl.RT_TABLE_MAIN,
           oif: int | None = 7, metric: int | None = 1024, table_attr: int | None = None
           ) -> bytes:
    msg = nl._RTMSG.pack(family, plen, 0, 0, min(table, 255), nl.RTPROT_BOOT,
                         nl.RT_SCOPE_LINK, nl.RTN_UNICAST, 0)
    if plen:
        msg += nl._attr(nl.RTA_DST, ipaddress.ip_address(dst).packed)
    if oif is not None:
        msg += nl._u32(nl.RTA_OIF, oif)
    if metric is not None:
        msg += nl._u32(nl.RTA_PRIORITY, metric)
    if table_attr is not None:
        msg += nl._u32(nl.RTA_TABLE, table_attr)
    return msg


def test_route_entries() -> None:
    v4, v6 = socket.AF_INET, socket.AF_INET6
    assert nl.parse_route(_route(v4, "10.0.0.5", 32), v4) == (
        ipaddress.ip_network("10.0.0.5/32"), 7, 1024)
    assert nl.parse_route(_route(v6, "fd00::5", 128, metric=None), v6) == (
        ipaddress.ip_network("fd00::5/128"), 7, 0)
    assert nl.parse_route(_route(v4, "", 0, oif=None), v4) == (
        ipaddress.ip_network("0.0.0.0/0"), 0, 1024)
    # other tables (local, or a table number only in RTA_TABLE) and other families: left out
    assert nl.parse_route(_route(v4, "10.0.0.5", 32, table=255), v4) is None
    assert nl.parse_route(_route(v4, "10.0.0.5", 32, table_attr=1000), v4) is None
    assert nl.parse_route(_route(v6, "fd00::5", 128), v4) is None
    assert nl.parse_route(b"\0" * 4, v4) is None


def test_a_refusal_names_the_request() -> None:
    err = nl.NetlinkError(17, "link add cali0 type veth peer name eth0")
    assert err.errno == 17
    assert err.strerror == "link add cali0 type veth peer name eth0: File exists"
