"""resources.read_modify_write, shared by `label` and `patch`: a lost compare-and-swap reads
again and retries; one that keeps losing fails in calicoctl's words; nothing else is retried."""

from __future__ import annotations

import dataclasses

import pytest

from calicoctl import resources
from calicoctl.context import Failed
from libcalico.client import Client
from libcalico.datastore.memory import MemoryBackend
from libcalico.model import resources as r
from libcalico.model.resources import Resource


def _client() -> Client:
    client = Client(MemoryBackend())
    client.create(r.Profile(r.Metadata("p"), r.ProfileSpec()))
    return client


def _labelled(res: Resource, value: str) -> Resource:
    return resources.with_metadata(res, labels={**res.metadata.labels, "k": value})


def test_a_concurrent_write_is_retried_on_the_fresh_copy() -> None:
    client = _client()
    calls: list[str] = []

    def change(current: Resource) -> Resource:
        if not calls:  # someone else writes between our read and our update
            client.update(_labelled(current, "theirs"))
        calls.append(current.metadata.labels.get("k", ""))
        return _labelled(current, "ours")

    resources.read_modify_write(client, "Profile", "p", None, change, "Failed to label")
    assert calls == ["", "theirs"]
    assert client.get("Profile", "p").metadata.labels == {"k": "ours"}


def test_a_write_that_keeps_losing_fails_after_the_attempts() -> None:
    client = _client()
    calls = 0

    def change(current: Resource) -> Resource:
        nonlocal calls
        calls += 1
        client.update(_labelled(current, f"theirs-{calls}"))
        return _labelled(current, "ours")

    with pytest.raises(Failed, match=r"Failed to label: \[update conflict: Profile\(p\) kept "
                                     r"changing\]"):
        resources.read_modify_write(client, "Profile", "p", None, change, "Failed to label")
    assert calls == resources.UPDATE_ATTEMPTS
    assert client.get("Profile", "p").metadata.labels == {"k": f"theirs-{calls}"}


def test_missing_resource_and_own_failures_are_not_retried() -> None:
    client = _client()
    with pytest.raises(Failed, match=r"Failed to x: \[resource does not exist: Profile\(ns/q\)\]"):
        resources.read_modify_write(client, "Profile", "q", "ns", lambda c: c, "Failed to x")
    calls = 0

    def refuse(current: Resource) -> Resource:
        nonlocal calls
        calls += 1
        raise Failed("Failed to x: no")

    with pytest.raises(Failed, match=r"^Failed to x: no$"):
        resources.read_modify_write(client, "Profile", "p", None, refuse, "Failed to x")
    assert calls == 1
    assert dataclasses.asdict(client.get("Profile", "p").metadata)["labels"] == {}
