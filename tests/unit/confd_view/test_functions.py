"""memkv-like key functions over one template resource's slice of the key space, the helper
functions, and the BIRD safety gate."""

from __future__ import annotations

import pytest

from confd import functions
from confd.functions import KeyView, TemplateValueError

VALUES = {
    "/calico/bgp/v1/global/as_num": "64512",
    "/calico/bgp/v1/host/node1/ip_addr_v4": "10.0.0.1",
    "/calico/bgp/v1/host/node1/peer_v4/10.0.0.9": '{"ip": "10.0.0.9"}',
    "/calico/bgp/v1/host/node10/ip_addr_v4": "10.0.0.10",
    "/calico/bgp/v1/host/node2/ip_addr_v4": "10.0.0.2",
    "/calico/ipam/v2/host/node1/ipv4/block/10.1.0.0-26": '{"state":"confirmed"}',
    "/calico/ipam/v2/host/node2/ipv4/block/10.2.0.0-26": '{"state":""}',
    "/calico/v1/ipam/v4/pool/10.1.0.0-16": '{"cidr":"10.1.0.0/16"}',
}


def kv(prefix: str = "/calico/", keys: tuple[str, ...] = ("/bgp/v1/host", "/bgp/v1/global",
                                                          "/ipam/v2/host//NODENAME/ipv4/block")
       ) -> KeyView:
    return KeyView(VALUES, prefix, keys, "node1")


def test_keys_are_relative_to_the_prefix_and_limited_to_the_resource_keys() -> None:
    v = kv()
    assert v.getv("/bgp/v1/global/as_num") == "64512"
    assert v.exists("/ipam/v2/host/node1/ipv4/block/10.1.0.0-26")
    # //NODENAME expands to this node: other nodes' blocks and the pools are not visible.
    assert not v.exists("/ipam/v2/host/node2/ipv4/block/10.2.0.0-26")
    assert not v.exists("/v1/ipam/v4/pool/10.1.0.0-16")
    # Prefix "/calico" (no slash) gives the same relative keys.
    assert KeyView(VALUES, "/calico", ("/v1/ipam/v4/pool",), "n").ls("/v1/ipam/v4/pool") == [
        "10.1.0.0-16"]


def test_getv_default_and_missing_key_error() -> None:
    v = kv()
    assert v.getv("/bgp/v1/global/nope", "dflt") == "dflt"
    with pytest.raises(TemplateValueError, match="key does not exist"):
        v.getv("/bgp/v1/global/nope")
    with pytest.raises(TemplateValueError):
        v.get("/bgp/v1/global/nope")
    pair = v.get("bgp/v1/global/as_num")
    assert (pair.key, pair.value, pair.Key, pair.Value) == (
        "/bgp/v1/global/as_num", "64512", "/bgp/v1/global/as_num", "64512")


def test_ls_lists_distinct_children_sorted_and_respects_path_components() -> None:
    v = kv()
    assert v.ls("/bgp/v1/host") == ["node1", "node10", "node2"]
    assert v.ls("/bgp/v1/host/node1") == ["ip_addr_v4", "peer_v4"]
    # Unlike memkv's plain string prefix, node1 does not list node10's keys.
    assert "ip_addr_v4" in v.ls("/bgp/v1/host/node1/")
    assert v.ls("/bgp/v1/host/node1/ip_addr_v4") == ["ip_addr_v4"]
    assert v.ls("/nothing/here") == []


def test_lsdir_lists_only_children_with_children() -> None:
    v = kv()
    assert v.lsdir("/bgp/v1/host/node1") == ["peer_v4"]
    assert v.lsdir("/bgp/v1") == ["global", "host"]


def test_gets_glob_star_does_not_cross_slashes_and_results_are_sorted() -> None:
    v = kv()
    got = v.gets("/bgp/v1/host/*/ip_addr_v4")
    assert [p.key for p in got] == ["/bgp/v1/host/node1/ip_addr_v4",
                                    "/bgp/v1/host/node10/ip_addr_v4",
                                    "/bgp/v1/host/node2/ip_addr_v4"]
    assert v.gets("/bgp/v1/host/*") == []
    assert [p.key for p in v.gets("/bgp/v1/host/node?/ip_addr_v4")] == [
        "/bgp/v1/host/node1/ip_addr_v4", "/bgp/v1/host/node2/ip_addr_v4"]
    assert v.getvs("/bgp/v1/host/*/ip_addr_v4") == ["10.0.0.1", "10.0.0.10", "10.0.0.2"]
    assert v.getvs("bgp/v1/host/*/ip_addr_v4") == v.getvs("/bgp/v1/host/*/ip_addr_v4")
    assert [p.key for p in v.gets("/bgp/v1/host/node[12]/ip_addr_v4")] == [
        "/bgp/v1/host/node1/ip_addr_v4", "/bgp/v1/host/node2/ip_addr_v4"]


def test_helpers() -> None:
    h = functions.helper_functions({"X": "1"})
    assert h["base"]("/a/b/c") == "c" and h["dir"]("/a/b/c") == "/a/b"
    assert h["split"]("a.b", ".") == ["a", "b"] and h["join"](["a", "b"], "_") == "a_b"
    assert h["json"]('{"a": 1}') == {"a": 1} and h["jsonArray"]("[1]") == [1]
    with pytest.raises(TemplateValueError):
        h["json"]("[1]")
    assert h["getenv"]("X") == "1" and h["getenv"]("Y", "d") == "d"
    assert h["map"]("a", 1) == {"a": 1}
    assert h["base64Decode"](h["base64Encode"]("x y")) == "x y"
    assert h["trimSuffix"]("a.cfg", ".cfg") == "a"


@pytest.mark.parametrize("value", ["10.0.0.1", "fd00::1/64", "Mesh_10_0_0_1", 64512, True])
def test_finalize_passes_plain_tokens(value: object) -> None:
    out = functions.finalize(value)
    assert out == ("true" if value is True else value)


@pytest.mark.parametrize("value", ['a"b', "x; protocol bgp evil {", "a\nb", "a b", "#x",
                                   "a}b", None, ["a"]])
def test_finalize_refuses_anything_that_could_change_bird_syntax(value: object) -> None:
    with pytest.raises(TemplateValueError):
        functions.finalize(value)


def test_bird_string_and_symbol() -> None:
    assert functions.bird_string("eth*") == '"eth*"'
    assert functions.bird_string("p@ss; {}#") == '"p@ss; {}#"'
    for bad in ('a"b', "a\nb", "a\x00b"):
        with pytest.raises(TemplateValueError):
            functions.bird_string(bad)
    assert functions.bird_symbol("bgp_a-b.c_importFilterV4") == "'bgp_a-b.c_importFilterV4'"
    for bad in ("a'b", "a b", "a;b", "x" * 65):
        with pytest.raises(TemplateValueError):
            functions.bird_symbol(bad)


def test_json_helpers_name_the_function_and_what_is_wrong() -> None:
    h = functions.helper_functions({})
    with pytest.raises(TemplateValueError, match=r"^json: value is not a JSON object$"):
        h["json"]("[1]")
    with pytest.raises(TemplateValueError, match=r"^jsonArray: value is not a JSON array$"):
        h["jsonArray"]('{"a": 1}')
    with pytest.raises(TemplateValueError, match=r"^jsonArray: not JSON: "):
        h["jsonArray"]("[1,")
    with pytest.raises(TemplateValueError, match=r"^json: not JSON: "):
        h["json"]("{")
