"""IPAMClient: Calico's IPAM over the Backend protocol.

Every write is a compare-and-swap (create-if-absent, or update/delete at the revision read);
a lost swap (`Conflict`, or `AlreadyExists` on a create race) re-reads and retries, at most
`RETRIES` times; any other error surfaces at once. Blocks are claimed through a pending
affinity that is confirmed only once the block itself names this host, so a host never uses an
affinity it does not hold, and two hosts never own one block.

The implementation is split by responsibility: `store` (backend, config, pools, errors),
`claims` (blocks and affinities), `assignment`, `release`, `handles`.
"""

from __future__ import annotations

from libcalico.ipam.assignment import Assignment, Assignments, AutoAssignArgs
from libcalico.ipam.claims import EMPTY_BLOCK_MIN_RECLAIM_AGE_S
from libcalico.ipam.store import (
    RETRIES,
    BatchBackend,
    BlockLimitError,
    IPAMError,
    RetriesExhausted,
)

__all__ = [
    "EMPTY_BLOCK_MIN_RECLAIM_AGE_S",
    "RETRIES",
    "Assignment",
    "AutoAssignArgs",
    "BatchBackend",
    "BlockLimitError",
    "IPAMClient",
    "IPAMError",
    "RetriesExhausted",
]


class IPAMClient(Assignments):
    """Calico's IPAM over a Backend: auto_assign, assign_ip, release_ips, release_by_handle,
    ips_by_handle, release_affinity, release_host_affinities, remove_ipam_host, config and
    pools."""
