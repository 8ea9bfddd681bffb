"""Run inside a namespace by test_ifacemon.py: drive interface changes and check that the
map the monitor builds from events equals a fresh full listing after each step."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from felix.drivers.ifacemon import InterfaceMonitor
from felix.drivers.netlink import IpBatchNetlink, Link

STEPS = [
    "ip link add caliaaaa0000001 type veth peer name peer1",
    "ip link set caliaaaa0000001 up; ip link set peer1 up",
    "ip addr add 10.9.0.1/24 dev caliaaaa0000001",
    "ip link set caliaaaa0000001 mtu 1400",
    "ip link set caliaaaa0000001 down",
    "ip addr del 10.9.0.1/24 dev caliaaaa0000001",
    "ip link set caliaaaa0000001 up",
    "ip link add vxlan.calico type vxlan id 4096 dstport 4789 nolearning",
    "ip link set vxlan.calico up; ip addr add 10.65.0.1/32 dev vxlan.calico",
    "ip link set caliaaaa0000001 name calibbbb0000002",
    "ip link del calibbbb0000002",
]


def main() -> None:
    nl = IpBatchNetlink()
    latest: list[dict[str, Link]] = []
    got = threading.Event()

    def sink(links: dict[str, Link]) -> None:
        latest.append(links)
        got.set()

    mon = InterfaceMonitor(nl, sink, refresh=3600.0)
    mon.start()
    results = []
    try:
        got.wait(10)
        for step in STEPS:
            subprocess.run(step, shell=True, check=True)
            want = nl.list_links()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (not latest or latest[-1] != want):
                time.sleep(0.05)
                want = nl.list_links()
            ok = bool(latest) and latest[-1] == want
            diff = "" if ok else (f"monitor={latest[-1] if latest else None!r} "
                                  f"listing={want!r}")
            results.append({"step": step, "ok": ok, "diff": diff[:2000]})
        results.append({"step": "full listings during the run", "ok": True,
                        "diff": str(mon.map.needs_full)})
    finally:
        mon.stop()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
