"""Handles: the count of addresses each handle holds per block, kept by compare-and-swap."""

from __future__ import annotations

from libcalico.datastore.api import KVPair
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam.records import Handle
from libcalico.ipam.store import RETRIES, IPAMStore, RetriesExhausted
from libcalico.model import keys


class HandleOps(IPAMStore):
    def _adjust_handle(self, handle_id: str, cidr: str, delta: int) -> None:
        key = keys.handle_key(handle_id)
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(key)
            except NotFound:
                if delta <= 0:
                    return
                try:
                    self.backend.create(key, Handle({cidr: delta}).encode())
                    return
                except AlreadyExists:
                    continue
            h = Handle.decode(kv.value, key).adjusted(cidr, delta)
            try:
                if h.block:
                    self.backend.update(key, h.encode(), kv.revision)
                else:
                    self.backend.delete(key, kv.revision)
                return
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _drop_handle_block(self, handle_id: str, cidr: str) -> None:
        key = keys.handle_key(handle_id)
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(key)
            except NotFound:
                return
            h = Handle.decode(kv.value, key)
            if cidr not in h.block:
                return
            try:
                self._adjust_handle_at(kv, h.adjusted(cidr, -h.block[cidr]))
                return
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _adjust_handle_at(self, kv: KVPair, h: Handle) -> None:
        if h.block:
            self.backend.update(kv.key, h.encode(), kv.revision)
        else:
            self.backend.delete(kv.key, kv.revision)

