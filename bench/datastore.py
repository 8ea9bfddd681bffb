"""Datastore benchmark. Run: `python bench/datastore.py [--objects N]` (default 10,000).

Starts its own etcd on loopback (data in /dev/shm when there is one, so that disk fsync noise
does not drown the client's cost) and removes it at the end, even on failure.

For N objects, in the same run and against the same etcd:

- the raw pyetcd client (`pyetcd.client().transaction`, the same create-if-absent
  transaction Calico issues; `list(get_prefix(prefix))` for the list): the reference;
  the bare range RPC with the key-values left unread is printed too, as the floor;
- `EtcdBackend` (libcalico.datastore.etcd): `create(key, value)` and `list(prefix)`;
- the watch: replaying the N creates from history, EtcdWatchStream vs pyetcd's
  `watch_prefix`; and a Syncer from start to IN_SYNC (list + diff + delivery) vs a raw list;
  and the same over the N typed BGPPeers with every batch applied to a ResourceCache
  (libcalico.datastore.resourcecache: each value decoded by the codec, kept by key and class);
- the typed layer (libcalico.client.Client + libcalico.model.codec): each BGPPeer decoded
  from its document, validated, encoded and created with `Client.apply`; `Client.list`
  decoding and validating every object.

Prints objects per second for writes and latency for a list of all N, each beside the raw
client's figure as a ratio. Goal: within 2x of the raw client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import orjson  # noqa: E402
import pyetcd  # noqa: E402

from libcalico.client import Client  # noqa: E402
from libcalico.datastore.etcd import EtcdBackend  # noqa: E402
from libcalico.datastore.resourcecache import ResourceCache  # noqa: E402
from libcalico.datastore.syncer import (  # noqa: E402
    StatusChanged,
    Syncer,
    SyncEvent,
    SyncStatus,
    Updates,
)
from libcalico.model import codec, keys  # noqa: E402
from libcalico.model.resources import BGPPeer  # noqa: E402
from tests.fixtures.etcd import EtcdFactory  # noqa: E402

VALUE = ('{"kind":"BGPPeer","apiVersion":"projectcalico.org/v3","metadata":{"name":"%s",'
         '"uid":"9f0c6d5e-0d1c-4c1e-9a43-6c1d2f3e4a5b","creationTimestamp":'
         '"2026-01-01T00:00:00Z"},"spec":{"peerIP":"192.0.2.1","asNumber":64512}}')


def peer_doc(i: int) -> dict[str, object]:
    return {
        "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
        "metadata": {"name": f"typed-{i}"},
        "spec": {"peerIP": f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
                 "asNumber": 64512 + i % 1000},
    }


def interleaved_rates(n: int, rounds: int, fns: list[Callable[[int], object]]) -> list[float]:
    """Objects per second for each `fns[j](i)`, i in range(n), run in `rounds` interleaved
    chunks (j = 0, 1, 2, 0, 1, 2, ...) so that load from other processes falls on all alike."""
    spent = [0.0] * len(fns)
    chunk = -(-n // rounds)
    for start in range(0, n, chunk):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            for i in range(start, min(n, start + chunk)):
                fn(i)
            spent[j] += time.perf_counter() - t0
    return [n / t for t in spent]


def interleaved_latency(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median seconds per call of each fn, calls interleaved, after one warm-up each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--list-runs", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved write chunks")
    args = ap.parse_args()
    n = args.objects

    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="bench-etcd-", dir=shm if shm.is_dir() else None))
    factory = EtcdFactory(root)
    try:
        srv = factory.new("bench", extra_args=["--quota-backend-bytes", str(4 << 30)])
        host, port = srv.endpoint.removeprefix("http://").rsplit(":", 1)
        raw = pyetcd.client(host=host, port=int(port), timeout=30)
        backend = EtcdBackend([srv.endpoint], timeout=30)
        client = Client(backend)
        t = raw.transactions

        raw_prefix = "/bench/raw/"
        be_prefix = "/bench/backend/"
        typed_prefix = keys.resource_prefix("BGPPeer")

        def raw_create(i: int) -> None:
            key = f"{raw_prefix}peer-{i}"
            ok, _ = raw.transaction(
                compare=[t.version(key) == 0],
                success=[t.put(key, VALUE % f"peer-{i}")],
                failure=[t.get(key)],
            )
            assert ok

        first_rev: list[int] = []  # for the raw client's watch (etcd's own int revisions)

        def backend_create(i: int) -> None:
            kv = backend.create(f"{be_prefix}peer-{i}", VALUE % f"peer-{i}")
            if i == 0:
                first_rev.append(int(kv.revision))

        docs = [peer_doc(i) for i in range(n)]

        def typed_apply(i: int) -> None:
            client.apply(codec.decode(docs[i], f"BGPPeer typed-{i}"))

        # Warm up each path (channels, caches) outside the measurement.
        raw.put("/bench/warm", "x")
        backend.apply("/bench/warm", "x")

        print(f"datastore benchmark: {n} objects, etcd {srv.endpoint}, data in {root}")
        before_creates = backend.revision()  # the backend's watch replays what follows it
        raw_w, be_w, typed_w = interleaved_rates(
            n, args.rounds, [raw_create, backend_create, typed_apply])

        def raw_list(prefix: str) -> Callable[[], object]:
            # pyetcd's list API: every key-value materialised, as a caller needs them.
            def go() -> None:
                assert len(list(raw.get_prefix(prefix))) == n
            return go

        def raw_response_only() -> None:
            # The floor: the range RPC alone, values left unread inside the protobuf.
            assert raw.get_prefix_response(be_prefix).count == n

        def be_list() -> None:
            assert len(backend.list(be_prefix).kvs) == n

        def typed_list() -> None:
            assert len(client.list("BGPPeer")) == n

        def raw_list_json() -> None:
            resp = raw.get_prefix_response(typed_prefix)
            assert len([json.loads(kv.value) for kv in resp.kvs]) == n

        def raw_list_orjson() -> None:
            # The parse floor of any typed list: the fastest JSON parser (the one the codec
            # uses), nothing checked or built.
            resp = raw.get_prefix_response(typed_prefix)
            assert len([orjson.loads(kv.value) for kv in resp.kvs]) == n

        raw_l, be_l, floor_l, raw_tl, typed_l, raw_jl, raw_ol = interleaved_latency(
            [raw_list(be_prefix), be_list, raw_response_only, raw_list(typed_prefix),
             typed_list, raw_list_json, raw_list_orjson], args.list_runs)

        def raw_replay() -> None:
            events, cancel = raw.watch_prefix(be_prefix, start_revision=first_rev[0])
            for seen, _ in enumerate(events, 1):
                if seen == n:
                    break
            cancel()

        def be_replay() -> None:
            with backend.watch(be_prefix, before_creates) as stream:
                for seen, _ in enumerate(stream, 1):
                    if seen == n:
                        break

        sync_times: list[float] = []

        def syncer_start() -> None:
            # Timed from start() to the sink seeing IN_SYNC with all N updates; stop() after.
            got = threading.Event()
            count = [0]

            def sink(ev: SyncEvent) -> None:
                if isinstance(ev, Updates):
                    count[0] += len(ev.updates)
                elif isinstance(ev, StatusChanged) and ev.status is SyncStatus.IN_SYNC:
                    got.set()

            syncer = Syncer(backend, [be_prefix], sink)
            t0 = time.perf_counter()
            syncer.start()
            assert got.wait(120) and count[0] == n
            sync_times.append(time.perf_counter() - t0)
            syncer.stop()

        cache_times: list[float] = []

        def cache_start() -> None:
            # Timed from start() to the sink seeing IN_SYNC with all N typed BGPPeers in the
            # cache (the sink applies each batch in the dispatcher thread).
            got = threading.Event()
            cache = ResourceCache()

            def sink(ev: SyncEvent) -> None:
                if isinstance(ev, Updates):
                    cache.apply(ev.updates)
                elif isinstance(ev, StatusChanged) and ev.status is SyncStatus.IN_SYNC:
                    got.set()

            syncer = Syncer(backend, [typed_prefix], sink)
            t0 = time.perf_counter()
            syncer.start()
            assert got.wait(120) and len(cache.of_kind(BGPPeer)) == n
            cache_times.append(time.perf_counter() - t0)
            syncer.stop()

        raw_r, be_r, _, raw_l2, _, raw_tl2, raw_ol2 = interleaved_latency(
            [raw_replay, be_replay, syncer_start, raw_list(be_prefix), cache_start,
             raw_list(typed_prefix), raw_list_orjson], args.list_runs)
        sync_l = statistics.median(sync_times[1:])  # the first was the warm-up
        cache_l = statistics.median(cache_times[1:])

        print()
        print(f"{'writes (create-if-absent txn)':40} {'objects/s':>10} {'raw pyetcd':>11} "
              f"{'ratio':>6}")
        print(f"{'  EtcdBackend.create':40} {be_w:10.0f} {raw_w:11.0f} {raw_w / be_w:5.2f}x")
        print(f"{'  Client.apply (decode+validate+CAS)':40} {typed_w:10.0f} {raw_w:11.0f} "
              f"{raw_w / typed_w:5.2f}x")
        print()
        print(f"{f'list of {n} (median of {args.list_runs})':40} {'ms':>10} {'raw pyetcd':>11} "
              f"{'ratio':>6}")
        print(f"{'  EtcdBackend.list':40} {be_l * 1e3:10.1f} {raw_l * 1e3:11.1f} "
              f"{be_l / raw_l:5.2f}x")
        print(f"{'    (range RPC only, kvs not read)':40} {floor_l * 1e3:10.1f} "
              f"{raw_l * 1e3:11.1f} {floor_l / raw_l:5.2f}x")
        print(f"{'  Client.list (decode+validate)':40} {typed_l * 1e3:10.1f} "
              f"{raw_tl * 1e3:11.1f} {typed_l / raw_tl:5.2f}x")
        print(f"{'    (raw pyetcd + json.loads each value)':40} {raw_jl * 1e3:10.1f} "
              f"{raw_tl * 1e3:11.1f} {raw_jl / raw_tl:5.2f}x")
        print(f"{'    (raw pyetcd + orjson.loads each value)':40} {raw_ol * 1e3:10.1f} "
              f"{raw_tl * 1e3:11.1f} {raw_ol / raw_tl:5.2f}x")
        print()
        print(f"{f'watch/sync of {n} (median of {args.list_runs})':40} {'ms':>10} "
              f"{'raw pyetcd':>11} {'ratio':>6}")
        print(f"{'  EtcdBackend.watch replaying history':40} {be_r * 1e3:10.1f} "
              f"{raw_r * 1e3:11.1f} {be_r / raw_r:5.2f}x")
        print(f"{'  Syncer start to IN_SYNC (vs raw list)':40} {sync_l * 1e3:10.1f} "
              f"{raw_l2 * 1e3:11.1f} {sync_l / raw_l2:5.2f}x")
        print(f"{'  Syncer+ResourceCache to IN_SYNC (typed)':40} {cache_l * 1e3:10.1f} "
              f"{raw_tl2 * 1e3:11.1f} {cache_l / raw_tl2:5.2f}x")
        print(f"{'    (raw pyetcd + orjson.loads each value)':40} {raw_ol2 * 1e3:10.1f} "
              f"{raw_tl2 * 1e3:11.1f} {raw_ol2 / raw_tl2:5.2f}x")
        print()
        print("ratio = time per object (or per list) relative to the raw pyetcd client; "
              "goal <= 2x")
        raw.close()
        backend.close()
    finally:
        factory.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
