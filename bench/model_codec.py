"""Resource codec throughput: validate + default + encode (what every write costs) and
decode of a stored value (what every read costs), beside the physical limit measured in the
same run: the stdlib JSON parse/serialise of the same bytes.

    python bench/model_codec.py
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from libcalico.model import codec

POOL = ('{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"pool-1",'
        '"uid":"3f8b2c1e-5d4a-4b6e-9c7d-1a2b3c4d5e6f","creationTimestamp":"2026-08-22T10:00:00Z"},'
        '"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Never","ipipMode":"Always",'
        '"natOutgoing":true,"blockSize":26,"nodeSelector":"all()",'
        '"allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}')
WEP = ('{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":'
       '"node1-k8s-nginx--7d8b49557c--x2k4j-eth0","namespace":"default","uid":"u",'
       '"creationTimestamp":"2026-08-22T10:00:00Z","labels":{"app":"nginx",'
       '"projectcalico.org/namespace":"default","projectcalico.org/orchestrator":"k8s",'
       '"projectcalico.org/serviceaccount":"default"}},"spec":{"orchestrator":"k8s",'
       '"node":"node1","containerID":"6f1c0d9e8b7a","pod":"nginx-7d8b49557c-x2k4j",'
       '"endpoint":"eth0","serviceAccountName":"default","ipNetworks":["10.244.0.0/32"],'
       '"profiles":["kns.default","ksa.default.default"],"interfaceName":"cali76c0a28a3a3",'
       '"mac":"9a:1b:2c:3d:4e:5f"}}')


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def main() -> None:
    for name, text in (("IPPool", POOL), ("WorkloadEndpoint", WEP)):
        res = codec.loads(text)
        assert codec.dumps(res) == text
        doc = json.loads(text)
        raw_read = rate(lambda t=text: json.loads(t))  # type: ignore[misc]
        read = rate(lambda t=text: codec.loads(t))  # type: ignore[misc]
        raw_write = rate(lambda d=doc: json.dumps(d, separators=(",", ":")))  # type: ignore[misc]
        write = rate(lambda r=res: codec.dumps(codec.validate(r)))  # type: ignore[misc]
        print(f"{name:17s} read (loads+validate) {read:9.0f}/s  raw json.loads {raw_read:9.0f}/s"
              f"  ratio {raw_read / read:5.1f}x")
        print(f"{name:17s} write (validate+dumps) {write:8.0f}/s  raw json.dumps {raw_write:9.0f}/s"
              f"  ratio {raw_write / write:5.1f}x")
        print(f"{name:17s} per object: read {1e6 / read:.0f} us, write {1e6 / write:.0f} us")


if __name__ == "__main__":
    main()
