"""A three-member etcd cluster on loopback: killing the leader (kill -9) in the middle of a
stream of writes loses no acknowledged write and no watch event."""

from __future__ import annotations

import json
import threading

from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.syncer import Syncer, SyncStatus
from libcalico.errors import AlreadyExists, Unavailable
from tests.fixtures.etcd import EtcdFactory, EtcdServer
from tests.fixtures.syncer import Recorder

PREFIX = "/calico/resources/v3/projectcalico.org/workloadendpoints/"
WRITES = 150
KILL_AFTER = 50


def leader_of(members: list[EtcdServer]) -> EtcdServer:
    for m in members:
        status = json.loads(m.ctl("endpoint", "status", "-w", "json"))[0]["Status"]
        if status["header"]["member_id"] == status["leader"]:
            return m
    raise AssertionError("no leader among the members")


def test_killing_the_leader_loses_no_write_and_no_event(etcd_factory: EtcdFactory) -> None:
    members = etcd_factory.cluster(3)
    leader = leader_of(members)
    # The leader first: the client and the syncer's watches start out on it.
    endpoints = [leader.endpoint] + [m.endpoint for m in members if m is not leader]
    b = EtcdBackend(endpoints, timeout=10.0)
    rec = Recorder()
    syncer = Syncer(b, [PREFIX], rec, backoff_initial=0.05, backoff_max=0.5)
    syncer.start()
    acked: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    killed = threading.Event()
    retries = [0]

    def write_all() -> None:
        writer = EtcdBackend(endpoints, timeout=10.0)
        try:
            for i in range(WRITES):
                key = f"{PREFIX}ns/wep-{i:04d}"
                unsure = False
                for _ in range(100):
                    try:
                        kv = writer.create(key, json.dumps({"n": i}))
                        rev = kv.revision
                        break
                    except Unavailable:
                        unsure, retries[0] = True, retries[0] + 1  # may or may not be applied
                    except AlreadyExists:
                        # Only this writer writes this key: an earlier "unavailable" attempt
                        # was applied after all.
                        assert unsure, f"{key} existed before any attempt"
                        got = writer.get(key)
                        assert got.value == json.dumps({"n": i})
                        rev = got.revision
                        break
                else:
                    raise AssertionError(f"{key}: no write went through")
                with lock:
                    acked[key] = rev
                if i == KILL_AFTER:
                    killed.wait(60)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    try:
        rec.wait_status(SyncStatus.IN_SYNC)
        t = threading.Thread(target=write_all)
        t.start()
        rec.wait(lambda: len(acked) > KILL_AFTER // 2, "first writes")
        leader.kill()  # kill -9 while writes are in flight
        killed.set()
        t.join(300)
        assert not t.is_alive() and not errors, errors
        assert len(acked) == WRITES

        survivors = [m for m in members if m is not leader]
        assert leader_of(survivors) in survivors

        # No acknowledged write lost: each is in etcd, at its acknowledged revision.
        listing = b.list(PREFIX)
        stored = {kv.key: kv.revision for kv in listing.kvs}
        assert stored == acked

        # No watch event lost or repeated: the syncer delivered every acknowledged revision
        # exactly once, in order.
        rec.wait(lambda: set(acked.values()) <= {u.revision for u in rec.updates},
                 "every write through the syncer")
        revisions = [int(u.revision) for u in rec.updates]  # etcd's: decimal
        assert revisions == sorted(revisions)
        assert len(revisions) == len(set(revisions))
        assert {u.key: u.revision for u in rec.updates} == acked
        assert rec.state == {kv.key: (kv.value, kv.revision) for kv in listing.kvs}
    finally:
        killed.set()
        syncer.stop()
        b.close()
