"""Just enough rtnetlink for the CNI wiring: a veth pair, link state, addresses, routes.

A `Netlink` is a NETLINK_ROUTE socket of the network namespace the calling thread is in when
it is opened (open one after entering a namespace to act inside it). Every change is one
request the kernel acknowledges; a refusal raises `NetlinkError` with the kernel's errno, the
same answer `ip` prints ("RTNETLINK answers: File exists"). Talking to the kernel directly
instead of running `ip` saves a process per namespace on every ADD and DEL.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HDR = struct.Struct("=IHHII")          # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")      # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")       # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")    # rtmsg: family, dst_len, src_len, tos, table,
#                                         protocol, scope, type, flags
_ATTR = struct.Struct("=HH")            # rtattr: len, type

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR = 20
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO = 1, 3, 4, 18
IFLA_NET_NS_FD, IFLA_NUM_TX_QUEUES, IFLA_NUM_RX_QUEUES = 28, 31, 32
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_F_NODAD = 1, 2, 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
IFF_UP = 0x1


class NetlinkError(OSError):
    """The kernel refused a request: `errno` is its answer, `what` the request."""

    def __init__(self, err: int, what: str) -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.what = what


RouteEntry = tuple[Network, int, int]
"""A route of the main table as a dump shows it: (destination, output link index or 0,
metric)."""


def _attr(kind: int, payload: bytes) -> bytes:
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _family(ip: Address | Network) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _attrs(data: bytes, start: int) -> dict[int, bytes]:
    out = {}
    off = start
    while off + _ATTR.size <= len(data):
        size, kind = _ATTR.unpack_from(data, off)
        if size < _ATTR.size:
            break
        out[kind & 0x3FFF] = data[off + _ATTR.size:off + size]
        off += (size + 3) & ~3
    return out


class Netlink:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- transport ------------------------------------------------------------------------
    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self._sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST,
                                  self._seq, 0) + body)
        return self._seq

    def _replies(self, seq: int, what: str) -> list[tuple[int, bytes]]:
        """Messages answering `seq` until its acknowledgement or the end of its dump."""
        out: list[tuple[int, bytes]] = []
        while True:
            data = self._sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                size, kind, _flags, got, _pid = _HDR.unpack_from(data, off)
                if size < _HDR.size:
                    raise NetlinkError(71, what)  # EPROTO: a malformed answer
                if got == seq:
                    if kind == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", data, off + _HDR.size)[0]
                        if err:
                            raise NetlinkError(err, what)
                        return out
                    if kind == NLMSG_DONE:
                        return out
                    out.append((kind, data[off + _HDR.size:off + size]))
                off += (size + 3) & ~3

    def _do(self, kind: int, flags: int, body: bytes, what: str) -> None:
        self._replies(self._send(kind, flags | NLM_F_ACK, body), what)

    # ---- links ----------------------------------------------------------------------------
    def add_veth(self, name: str, mac: str, peer: str, peer_mac: str, mtu: int,
                 peer_netns_fd: int, queues: int = 1) -> None:
        """`ip link add NAME mtu M address MAC type veth peer name PEER mtu M address
        PEER_MAC netns FD`, NAME up. Raises NetlinkError (EEXIST when a name is taken)."""
        q = _u32(IFLA_NUM_TX_QUEUES, queues) + _u32(IFLA_NUM_RX_QUEUES, queues) \
            if queues > 1 else b""
        peer_msg = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _name(peer) \
            + _u32(IFLA_MTU, mtu) + _attr(IFLA_ADDRESS, _mac(peer_mac)) \
            + _u32(IFLA_NET_NS_FD, peer_netns_fd) + q
        info = _attr(IFLA_INFO_KIND, b"veth") \
            + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _name(name) \
            + _u32(IFLA_MTU, mtu) + _attr(IFLA_ADDRESS, _mac(mac)) + q \
            + _attr(IFLA_LINKINFO, info)
        self._do(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body,
                 f"link add {name} type veth peer name {peer}")

    def set_up(self, name: str) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _name(name)
        self._do(RTM_NEWLINK, 0, body, f"link set {name} up")

    def delete_link(self, name: str) -> None:
        """Raises NetlinkError (ENODEV when there is no such link)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _name(name)
        self._do(RTM_DELLINK, 0, body, f"link del {name}")

    # ---- addresses and routes -------------------------------------------------------------
    def add_address(self, index: int, ip: Address, *, nodad: bool = False) -> None:
        """The address as a full-length prefix (/32, /128) on the link."""
        raw = ip.packed
        body = _IFADDR.pack(_family(ip), ip.max_prefixlen, IFA_F_NODAD if nodad else 0, 0,
                            index) + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        self._do(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body,
                 f"addr add {ip}/{ip.max_prefixlen}")

    def add_route(self, dst: Network, index: int, *, gateway: Address | None = None,
                  metric: int | None = None) -> None:
        """`ip route add DST [via GATEWAY] dev LINK [metric M]` in the main table (scope
        link without a gateway). Raises NetlinkError (EEXIST for the same route)."""
        scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        body = _RTMSG.pack(_family(dst), dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           scope, RTN_UNICAST, 0)
        if dst.prefixlen:
            body += _attr(RTA_DST, dst.network_address.packed)
        if gateway is not None:
            body += _attr(RTA_GATEWAY, gateway.packed)
        body += _u32(RTA_OIF, index)
        if metric is not None:
            body += _u32(RTA_PRIORITY, metric)
        via = f" via {gateway}" if gateway is not None else ""
        self._do(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body,
                 f"route add {dst}{via} dev index {index}")

    def routes(self, version: int) -> list[RouteEntry]:
        """Every route of the main table of that IP version."""
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
        seq = self._send(RTM_GETROUTE, NLM_F_DUMP, body)
        out: list[RouteEntry] = []
        for kind, msg in self._replies(seq, f"route show (IPv{version})"):
            entry = parse_route(msg, family) if kind == RTM_NEWROUTE else None
            if entry is not None:
                out.append(entry)
        return out


def parse_route(msg: bytes, family: int) -> RouteEntry | None:
    """An RTM_NEWROUTE payload (rtmsg + attributes) as a RouteEntry; None for a route of
    another family or table than main."""
    if len(msg) < _RTMSG.size:
        return None
    fam, dst_len, _s, _t, table, _p, _sc, _ty, _f = _RTMSG.unpack_from(msg)
    attrs = _attrs(msg, _RTMSG.size)
    if RTA_TABLE in attrs:
        table = struct.unpack("=I", attrs[RTA_TABLE])[0]
    if table != RT_TABLE_MAIN or fam != family:
        return None
    raw = attrs.get(RTA_DST, b"\0" * (4 if family == socket.AF_INET else 16))
    oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
    metric = struct.unpack("=I", attrs[RTA_PRIORITY])[0] if RTA_PRIORITY in attrs else 0
    return (ipaddress.ip_network(f"{ipaddress.ip_address(raw)}/{dst_len}"), oif, metric)
