"""Stable findings benchmark: each seeded fault, surveyed by the ``ci`` profile under two seeds.

One fault should give one finding (or a finding and the cells it makes unreachable), with the
same id whatever the seed, so that ``--baseline`` of one seed's run exits 0 on the other's. For
each fault, ``xapi-conformance run --fault NAME --profile ci -n 1`` runs against the embedded
server with two seeds, and the second with the first's summary as its baseline. A fault is
*stable* when both runs give the same finding ids and the baseline run exits 0.

Usage:
    nice -n 10 python benchmarks/stable_findings.py --out stable.jsonl          # every fault
    nice -n 10 python benchmarks/stable_findings.py --fault start-fails --fault stale-record
    nice -n 10 python benchmarks/stable_findings.py --fault stale-record -- --time-budget 120s
    python benchmarks/stable_findings.py --table stable.jsonl                  # the table

Options after ``--`` go to each run (a time budget makes a sample quicker, and cuts what the
runs judge alike for both seeds only when the budget is generous).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from conformance.faults.catalogue import FAULTS

SEEDS = (1, 2)


@dataclass(frozen=True)
class Verdict:
    """One fault's two runs: the findings each gave, and whether the second knew them all."""

    fault: str
    area: str
    findings: tuple[tuple[str, ...], ...]
    """Per seed, the finding ids."""
    titles: dict[str, str]
    baseline_exit: int
    seconds: float

    @property
    def stable(self) -> bool:
        """Same ids under both seeds, and the second run exits 0 against the first."""
        return len(set(self.findings)) == 1 and self.baseline_exit == 0


def _run(fault: str, seed: int, report: Path, baseline: Path | None, extra: list[str]) -> int:
    command = [
        sys.executable,
        "-m",
        "conformance.runner.cli",
        "run",
        "--profile",
        "ci",
        "--fault",
        fault,
        "--seed",
        str(seed),
        "-n",
        "1",
        "--report-dir",
        str(report),
    ]
    if baseline is not None:
        command += ["--baseline", str(baseline)]
    command += extra
    return subprocess.run(command, check=False, capture_output=True, env=os.environ).returncode


def survey(fault: str, scratch: Path, extra: list[str]) -> Verdict:
    """The fault's two runs, the second against the first as its baseline."""
    started = time.monotonic()
    findings, titles, code = [], {}, 0
    for index, seed in enumerate(SEEDS):
        report = scratch / f"{fault}-{seed}"
        baseline = scratch / f"{fault}-{SEEDS[0]}" / "summary.json" if index else None
        code = _run(fault, seed, report, baseline, extra)
        data = json.loads((report / "summary.json").read_text())
        findings.append(tuple(sorted(f["id"] for f in data["findings"])))
        titles.update({f["id"]: f["title"] for f in data["findings"]})
    return Verdict(
        fault, FAULTS[fault].area, tuple(findings), titles, code, time.monotonic() - started
    )


def table(lines: list[dict[str, object]]) -> str:
    """The per-fault table in Markdown."""
    rows = [
        "| fault | area | findings (seed 1, seed 2) | stable ids |",
        "|---|---|---|---|",
    ]
    for line in lines:
        counts = ", ".join(str(len(f)) for f in line["findings"])  # type: ignore[union-attr]
        stable = len({tuple(f) for f in line["findings"]}) == 1 and line["baseline_exit"] == 0  # type: ignore[union-attr]
        rows.append(
            f"| `{line['fault']}` | {line['area']} | {counts} | {'yes' if stable else 'no'} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", action="append", help="a fault (repeatable; default: all)")
    parser.add_argument("--out", type=Path, help="append one JSON line per fault here")
    parser.add_argument("--table", type=Path, help="print the table of an --out file, then stop")
    parser.add_argument("run_args", nargs="*", help="more options for each run (after --)")
    args = parser.parse_args()
    if args.table:
        lines = [json.loads(x) for x in args.table.read_text().splitlines() if x.strip()]
        print(table(lines))
        return 0
    os.environ.setdefault("XAPI_PASSWORD", "stable-pw")
    faults = args.fault or sorted(FAULTS)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(unknown)} (serve --list-faults)")
    with tempfile.TemporaryDirectory(prefix="stable-findings-") as scratch:
        for fault in faults:
            verdict = survey(fault, Path(scratch), args.run_args)
            line = {**asdict(verdict), "stable": verdict.stable}
            print(
                f"{fault:34} {[len(f) for f in verdict.findings]} "
                f"{'stable' if verdict.stable else 'UNSTABLE'} {verdict.seconds:.0f}s",
                flush=True,
            )
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
