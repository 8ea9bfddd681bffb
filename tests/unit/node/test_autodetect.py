from __future__ import annotations

import ipaddress

import pytest

from calico_node import autodetect as ad
from libcalico.errors import ConfigError


def iface(name: str, *addrs: str) -> ad.Interface:
    return ad.Interface(name, tuple(ipaddress.ip_interface(a) for a in addrs))


IFACES = [
    iface("lo", "127.0.0.1/8", "::1/128"),
    iface("docker0", "172.17.0.1/16"),
    iface("cali1234567890a", "169.254.1.1/32"),
    iface("eth1", "192.168.1.5/24", "fe80::1/64", "fd00::5/64"),
    iface("eth0", "10.0.0.5/24"),
    iface("veth99", "10.9.9.9/24"),
]


def test_first_found_skips_calico_default_exclusions_and_sorts_by_name() -> None:
    got = ad.detect(ad.parse_method("first-found"), IFACES, 4)
    assert got == ipaddress.ip_interface("10.0.0.5/24")


def test_first_found_ipv6_ignores_link_local() -> None:
    assert ad.detect(ad.Method("first-found"), IFACES, 6) == ipaddress.ip_interface("fd00::5/64")


def test_empty_method_is_first_found() -> None:
    assert ad.parse_method("") == ad.Method("first-found")


def test_interface_regex_is_unanchored_like_go() -> None:
    m = ad.parse_method("interface=eth1")
    assert ad.detect(m, IFACES, 4) == ipaddress.ip_interface("192.168.1.5/24")
    # "th9" matches veth99 as Go's MatchString would
    assert ad.detect(ad.parse_method("interface=th9"), IFACES, 4) == \
        ipaddress.ip_interface("10.9.9.9/24")


def test_interface_list_tries_each_pattern_in_order() -> None:
    m = ad.parse_method("interface=nothere,eth1,eth0")
    assert ad.detect(m, IFACES, 4) == ipaddress.ip_interface("192.168.1.5/24")


def test_skip_interface_keeps_default_exclusions() -> None:
    m = ad.parse_method("skip-interface=eth0")
    assert ad.detect(m, IFACES, 4) == ipaddress.ip_interface("192.168.1.5/24")


def test_cidr_picks_address_inside() -> None:
    m = ad.parse_method("cidr=10.9.0.0/16")
    # cidr= does not apply the default exclusions
    assert ad.detect(m, IFACES, 4) == ipaddress.ip_interface("10.9.9.9/24")
    assert ad.detect(ad.parse_method("cidr=8.8.0.0/16"), IFACES, 4) is None


def test_can_reach_uses_route_lookup_and_returns_the_interface_subnet() -> None:
    asked: list[object] = []

    def lookup(dest: ad.IPAddress) -> ad.IPAddress | None:
        asked.append(dest)
        return ipaddress.ip_address("192.168.1.5")

    got = ad.detect(ad.parse_method("can-reach=192.168.1.1"), IFACES, 4, lookup)
    assert got == ipaddress.ip_interface("192.168.1.5/24")
    assert asked == [ipaddress.ip_address("192.168.1.1")]


def test_can_reach_without_route_finds_nothing() -> None:
    assert ad.detect(ad.parse_method("can-reach=1.2.3.4"), IFACES, 4, lambda d: None) is None


@pytest.mark.parametrize("text,needle", [
    ("bogus", "unknown method"),
    ("interface=", "needs a value"),
    ("interface=eth(", "bad regular expression"),
    ("cidr=10.0.0.0/33", "bad CIDR"),
    ("can-reach=a,b", "one destination"),
])
def test_bad_methods_are_named(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        ad.parse_method(text)
    assert "IP_AUTODETECTION_METHOD" in str(e.value)


def test_can_reach_name_rejected_clearly() -> None:
    with pytest.raises(ConfigError, match="give an IP address"):
        ad.detect(ad.parse_method("can-reach=example.org"), IFACES, 4, lambda d: None)


def test_given_address_without_length_is_host_route() -> None:
    assert ad.parse_given("10.1.2.3", 4, "IP") == ipaddress.ip_interface("10.1.2.3/32")
    assert ad.parse_given("10.1.2.3/24", 4, "IP") == ipaddress.ip_interface("10.1.2.3/24")
    with pytest.raises(ConfigError, match=r"IP6=.10\.1\.2\.3.: not an IPv6"):
        ad.parse_given("10.1.2.3", 6, "IP6")
    with pytest.raises(ConfigError, match="not an IP address"):
        ad.parse_given("ten", 4, "IP")


def test_kubernetes_internal_ip() -> None:
    m = ad.parse_method("kubernetes-internal-ip")
    assert m == ad.Method("kubernetes-internal-ip")
    ips = (ipaddress.ip_address("fd00::5"), ipaddress.ip_address("192.168.1.5"))
    assert ad.detect(m, IFACES, 4, internal_ips=ips) == ipaddress.ip_interface("192.168.1.5/24")
    assert ad.detect(m, IFACES, 4, internal_ips=(ipaddress.ip_address("203.0.113.9"),)) == \
        ipaddress.ip_interface("203.0.113.9/32")  # on no interface: the address alone
    assert ad.detect(m, IFACES, 4) is None
    with pytest.raises(ConfigError, match="kubernetes-internal-ip"):
        ad.parse_method("kubernetes-internal-ip=x")
