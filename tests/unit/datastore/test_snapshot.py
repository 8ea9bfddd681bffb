"""The pure diff a syncer emits after a (re)list, and its status rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libcalico.datastore.api import KVPair
from libcalico.datastore.snapshot import SyncStatus, Update, diff, overall_status

W, R, S = SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC


def test_initial_listing_is_all_puts() -> None:
    updates, cache = diff({}, [KVPair("/a", "1", "2"), KVPair("/b", "2", "3")], "3")
    assert updates == (Update("/a", "1", "2"), Update("/b", "2", "3"))
    assert cache == {"/a": ("1", "2"), "/b": ("2", "3")}


def test_unchanged_keys_are_not_repeated() -> None:
    known = {"/a": ("1", "2"), "/b": ("2", "3")}
    updates, _ = diff(known, [KVPair("/a", "1", "2"), KVPair("/b", "2", "3")], "10")
    assert updates == ()


def test_changed_new_and_vanished_keys() -> None:
    known = {"/a": ("1", "2"), "/b": ("2", "3"), "/c": ("3", "4")}
    updates, cache = diff(known, [KVPair("/a", "1", "2"), KVPair("/b", "9", "7"),
                                  KVPair("/d", "4", "8")], "9")
    assert updates == (Update("/b", "9", "7"), Update("/d", "4", "8"), Update("/c", None, "9"))
    assert cache == {"/a": ("1", "2"), "/b": ("9", "7"), "/d": ("4", "8")}


def test_rewrite_with_same_value_is_an_update() -> None:
    # Same value, new mod revision: the consumer's resource_version must move on.
    updates, _ = diff({"/a": ("1", "2")}, [KVPair("/a", "1", "5")], "5")
    assert updates == (Update("/a", "1", "5"),)


_caches = st.dictionaries(
    st.sampled_from([f"/k/{i}" for i in range(8)]),
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 50).map(str)),
)


@given(_caches, _caches)
def test_applying_the_diff_reaches_the_listing(
    old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]
) -> None:
    kvs = [KVPair(k, v, r) for k, (v, r) in sorted(new.items())]
    updates, cache = diff(old, kvs, "99")
    state = dict(old)
    for u in updates:
        if u.value is None:
            del state[u.key]
        else:
            state[u.key] = (u.value, u.revision)
    assert state == new == cache
    assert len({u.key for u in updates}) == len(updates)


def test_status_rule() -> None:
    assert overall_status([R, R], contacted=False) is W
    assert overall_status([R, S], contacted=True) is R
    assert overall_status([S, S], contacted=True) is S
    assert overall_status([W, S], contacted=True) is W
    assert overall_status([W, R], contacted=True) is W
