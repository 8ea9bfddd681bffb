"""The typed cache over syncer updates: decoded once, kept by key and by class."""

from __future__ import annotations

import ipaddress
import json

from hypothesis import given
from hypothesis import strategies as st

from libcalico.datastore.resourcecache import Change, ResourceCache
from libcalico.datastore.snapshot import Update
from libcalico.ipam import block as ipam_block
from libcalico.ipam.records import Affinity, Handle
from libcalico.model import keys
from libcalico.model.resources import BGPPeer, IPPool

POOL_KEY = keys.resource_key("IPPool", "default-pool")
PEER_KEY = keys.resource_key("BGPPeer", "rr1")


def pool(cidr: str = "10.0.0.0/16", name: str = "default-pool") -> str:
    return json.dumps({"kind": "IPPool", "apiVersion": "projectcalico.org/v3",
                       "metadata": {"name": name}, "spec": {"cidr": cidr}})


def peer(ip: str = "192.0.2.1") -> str:
    return json.dumps({"kind": "BGPPeer", "apiVersion": "projectcalico.org/v3",
                       "metadata": {"name": "rr1"},
                       "spec": {"peerIP": ip, "asNumber": 64512}})


def test_resources_are_decoded_by_the_codec_and_kept_by_class() -> None:
    cache = ResourceCache()
    changes = cache.apply([Update(POOL_KEY, pool(), "5"), Update(PEER_KEY, peer(), "6")])
    assert [c.key for c in changes] == [POOL_KEY, PEER_KEY]
    assert [c.revision for c in changes] == ["5", "6"]
    p = changes[0].resource
    assert isinstance(p, IPPool)
    assert p.spec.cidr == ipaddress.ip_network("10.0.0.0/16")
    assert p.spec.block_size == 26  # Calico's default, filled by the codec
    assert cache.get(POOL_KEY) is p
    assert dict(cache.of_kind(IPPool)) == {POOL_KEY: p}
    assert list(cache.of_kind(BGPPeer)) == [PEER_KEY]


def test_of_kind_is_a_live_view_kept_by_apply() -> None:
    cache = ResourceCache()
    pools = cache.of_kind(IPPool)
    assert dict(pools) == {}
    cache.apply([Update(POOL_KEY, pool(), "2")])
    assert list(pools) == [POOL_KEY]
    cache.apply([Update(POOL_KEY, None, "3")])
    assert dict(pools) == {} and cache.get(POOL_KEY) is None


def test_an_unchanged_value_yields_no_change() -> None:
    cache = ResourceCache()
    cache.apply([Update(POOL_KEY, pool(), "2")])
    assert cache.apply([Update(POOL_KEY, pool(), "7")]) == ()
    changed = cache.apply([Update(POOL_KEY, pool("10.1.0.0/16"), "8")])
    assert len(changed) == 1 and changed[0].revision == "8"
    assert cache.of_kind(IPPool)[POOL_KEY].spec.cidr == ipaddress.ip_network("10.1.0.0/16")


def test_a_delete_of_an_unknown_key_yields_no_change() -> None:
    cache = ResourceCache()
    assert cache.apply([Update(POOL_KEY, None, "3")]) == ()
    cache.apply([Update(POOL_KEY, pool(), "4")])
    assert cache.apply([Update(POOL_KEY, None, "5")]) == (Change(POOL_KEY, None, "5"),)


def test_an_invalid_value_is_dropped_naming_key_field_and_reason() -> None:
    cache = ResourceCache()
    cache.apply([Update(POOL_KEY, pool(), "2")])
    (c,) = cache.apply([Update(POOL_KEY, pool("not-a-cidr"), "3")])
    assert c.resource is None and c.dropped is not None
    assert POOL_KEY in c.dropped and "spec.cidr" in c.dropped
    assert cache.get(POOL_KEY) is None and dict(cache.of_kind(IPPool)) == {}
    # The same bad value again is no news; a good one brings the key back.
    assert cache.apply([Update(POOL_KEY, pool("not-a-cidr"), "4")]) == ()
    (back,) = cache.apply([Update(POOL_KEY, pool(), "5")])
    assert isinstance(back.resource, IPPool) and back.dropped is None
    # Deleting a dropped key is reported (the consumer may hold the refusal).
    cache.apply([Update(POOL_KEY, "{", "6")])
    assert cache.apply([Update(POOL_KEY, None, "7")]) == (Change(POOL_KEY, None, "7"),)


def test_a_value_of_another_kind_than_its_key_is_dropped() -> None:
    cache = ResourceCache()
    (c,) = cache.apply([Update(POOL_KEY, peer(), "2")])
    assert c.resource is None and c.dropped and "BGPPeer" in c.dropped and POOL_KEY in c.dropped
    assert dict(cache.of_kind(BGPPeer)) == {}


def test_unknown_prefixes_pass_through_as_raw_text() -> None:
    cache = ResourceCache()
    raw = [Update("/calico/bgp/v1/global/as_num", "64512", "2"),
           Update("/calico/secrets/x", "s3cret", "3"),
           Update(keys.IPAM_CONFIG_KEY, '{"strictAffinity":false}', "4"),
           Update(keys.ipam_host_key("node1"), "{}", "5"),
           Update(f"{keys.RESOURCE_ROOT}unknownkinds/x", "{}", "6")]
    changes = cache.apply(raw)
    assert [c.resource for c in changes] == [u.value for u in raw]
    assert len(cache.of_kind(str)) == len(raw)


def test_ipam_blocks_affinities_and_handles_are_decoded_into_records() -> None:
    cidr = ipaddress.ip_network("10.0.0.0/30")
    blk = ipam_block.Block.new(cidr, "host:node1", claim_time=None, sequence_number=0)
    bkey = keys.block_key(cidr)
    akey = keys.affinity_key("node1", cidr)
    hkey = keys.handle_key("k8s-pod-network.abc")
    cache = ResourceCache()
    cache.apply([Update(bkey, ipam_block.encode(blk), "2"),
                 Update(akey, Affinity().encode(), "3"),
                 Update(hkey, Handle({"10.0.0.0/30": 1}).encode(), "4")])
    got = cache.of_kind(ipam_block.Block)[bkey]
    assert got.cidr == cidr and got.affinity == "host:node1"
    assert cache.of_kind(Affinity)[akey].confirmed
    assert cache.of_kind(Handle)[hkey].total() == 1
    (bad,) = cache.apply([Update(bkey, '{"cidr": "10.0.0.0/30", "allocations": []}', "5")])
    assert bad.resource is None and bad.dropped and bkey in bad.dropped


def test_own_decoders_by_longest_prefix() -> None:
    cache = ResourceCache({"/a/": lambda k, v: ("a", v), "/a/b/": lambda k, v: ("ab", v),
                           "/a/exact": lambda k, v: ("exact", v)})
    changes = cache.apply([Update("/a/x", "1", "1"), Update("/a/b/y", "2", "2"),
                           Update("/a/exact", "3", "3"), Update("/a/exactly", "4", "4"),
                           Update("/z", "5", "5")])
    assert [c.resource for c in changes] == [("a", "1"), ("ab", "2"), ("exact", "3"),
                                             ("exact", "4"), "5"]


_ops = st.lists(st.tuples(st.sampled_from([POOL_KEY, keys.resource_key("IPPool", "p2"),
                                           "/calico/bgp/v1/x"]),
                          st.sampled_from([None, "a", "b"])), max_size=30)


@given(_ops)
def test_the_cache_is_the_last_value_of_each_key(ops: list[tuple[str, str | None]]) -> None:
    values = {"a": pool("10.0.0.0/16"), "b": pool("not-a-cidr")}
    cache = ResourceCache()
    last: dict[str, str] = {}
    for i, (key, v) in enumerate(ops):
        text = None if v is None else values[v]
        if key.startswith("/calico/bgp/") and text is not None:
            text = v
        cache.apply([Update(key, text, str(i))])
        if text is None:
            last.pop(key, None)
        else:
            last[key] = text
    pools = cache.of_kind(IPPool)
    assert set(pools) == {k for k, t in last.items() if t == values["a"]}
    assert set(cache.of_kind(str)) == {k for k in last if k.startswith("/calico/bgp/")}
    for key in (POOL_KEY, "/calico/bgp/v1/x"):
        assert (cache.get(key) is not None) == (key in pools or key in cache.of_kind(str))
