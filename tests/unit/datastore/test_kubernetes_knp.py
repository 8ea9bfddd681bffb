"""kubernetes_knp: which keys are Kubernetes policies, composite revisions, and the merged
watch (events stamped with both halves; a Compacted half is Compacted of the whole)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from libcalico.datastore import kubernetes_knp as kknp
from libcalico.datastore.api import EventType, KVPair, Listing, WatchEvent
from libcalico.datastore.kubernetes_mergedwatch import MergedWatchStream
from libcalico.errors import Compacted, ValidationError
from libcalico.model import keys


class _Fake:
    def __init__(self, events: list[WatchEvent], then: BaseException | None = None) -> None:
        self.events = events
        self.then = then
        self.closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        yield from self.events
        if self.then is not None:
            raise self.then

    def close(self) -> None:
        self.closed = True


def test_keys_and_revisions() -> None:
    assert kknp.is_knp_key(keys.resource_key("NetworkPolicy", "knp.default.web", "ns1"))
    assert kknp.target(keys.resource_key("NetworkPolicy", "knp.default.web", "ns1")) == \
        ("ns1", "web")
    assert not kknp.is_knp_key(keys.resource_key("NetworkPolicy", "web", "ns1"))
    assert not kknp.is_knp_key(keys.resource_key("NetworkPolicy", "knp.default.", "ns1"))
    assert not kknp.is_knp_key(keys.resource_key("GlobalNetworkPolicy", "knp.default.web"))
    assert kknp.covers(keys.resource_prefix("NetworkPolicy") + "ns1/")
    assert not kknp.covers(keys.resource_prefix("GlobalNetworkPolicy"))
    assert kknp.split_revision("") == ("", "") == kknp.split_revision("0")
    assert kknp.split_revision(kknp.join_revisions("5", "7")) == ("5", "7")
    with pytest.raises(ValidationError):
        kknp.split_revision("12")


def test_merge_listings_sorted_with_composite_revision() -> None:
    p = keys.resource_prefix("NetworkPolicy") + "ns1/"
    crds = Listing((KVPair(p + "z", "{}", "3"),), "9")
    merged = kknp.merge_listings(crds, [KVPair(p + "knp.default.a", "{}", "4"),
                                        KVPair(keys.resource_prefix("NetworkPolicy")
                                               + "ns2/knp.default.b", "{}", "5")], "8", p)
    assert [kv.key for kv in merged.kvs] == [p + "knp.default.a", p + "z"]
    assert merged.revision == "9/8"


def test_merged_watch_stamps_both_halves() -> None:
    a = _Fake([WatchEvent(EventType.PUT, "/k/a", "1", "11")])
    b = _Fake([WatchEvent(EventType.DELETE, "/k/b", None, "21")])
    fakes = [a, b]
    stream = MergedWatchStream([lambda rev: fakes[0], lambda rev: fakes[1]],
                                    ["10", "20"], "10/20", kknp.join_revisions, "t")
    got = {ev.key: ev.revision for ev in stream}
    assert set(got) == {"/k/a", "/k/b"}
    assert "11/21" in got.values()
    assert got["/k/a"] in ("11/20", "11/21") and got["/k/b"] in ("10/21", "11/21")
    assert stream.progress is None


def test_merged_watch_compacted_half_is_compacted() -> None:
    a = _Fake([], Compacted("10"))
    b_blocks = _Blocking()
    stream = MergedWatchStream([lambda rev: a, lambda rev: b_blocks], ["10", "20"],
                                    "10/20", kknp.join_revisions, "t")
    with pytest.raises(Compacted):
        list(stream)
    assert b_blocks.closed


class _Blocking:
    """A stream that yields nothing until closed."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        self._done.wait()
        return iter(())

    def close(self) -> None:
        self.closed = True
        self._done.set()
