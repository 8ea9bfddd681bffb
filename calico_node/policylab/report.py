"""The policy lab's result document and the `--expect` comparison (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from calico_node.policylab.labfile import LabFile

PURE = True

Matrix = Mapping[str, Mapping[str, bool | None]]


def probe_result(port: int, protocol: str, reachable: Matrix) -> dict[str, Any]:
    return {"port": port, "protocol": protocol,
            "reachable": {a: dict(row) for a, row in reachable.items()}}


def document(sctp_unavailable: bool, steps: Sequence[tuple[str, Sequence[dict[str, Any]]]]
             ) -> dict[str, Any]:
    return {"sctp_unavailable": sctp_unavailable,
            "steps": [{"name": name, "probes": list(probes)} for name, probes in steps]}


def differences(lab: LabFile, result: Mapping[str, Any]) -> list[str]:
    """One readable line per pair whose reachability is not the file's `expected` (probes
    without `expected` are not compared; a pair missing from `expected` is not compared)."""
    out: list[str] = []
    for step, got in zip(lab.steps, result["steps"], strict=True):
        for probe, pgot in zip(step.probes, got["probes"], strict=True):
            if probe.expected is None:
                continue
            where = f"step {step.name!r}, {probe.protocol}/{probe.port}"
            for src, row in sorted(probe.expected.items()):
                for dst, want in sorted(row.items()):
                    have = pgot["reachable"].get(src, {}).get(dst)
                    if have is None:
                        out.append(f"{where}: {src} -> {dst}: not probed "
                                   f"({probe.protocol} unavailable), expected "
                                   f"{_word(want)}")
                    elif have != want:
                        out.append(f"{where}: {src} -> {dst}: {_word(have)}, expected "
                                   f"{_word(want)}")
    return out


def _word(ok: bool) -> str:
    return "reachable" if ok else "not reachable"


def table(pods: Sequence[str], reachable: Matrix) -> str:
    """A small matrix for the log: rows are clients, columns servers."""
    w = max(len(p) for p in pods)
    lines = [" " * (w + 1) + " ".join(f"{p:>{w}}" for p in pods)]
    for a in pods:
        cells = []
        for b in pods:
            v = reachable.get(a, {}).get(b)
            cells.append(f"{'.' if a == b else '-' if v is None else 'ok' if v else 'X':>{w}}")
        lines.append(f"{a:<{w}} " + " ".join(cells))
    return "\n".join(lines)
