"""The suite against its own server as an external target, in every configuration of facts.

On an external target the suite cannot see guest drivers, DMC licensing or the pool's size; the
model must accept every answer xapi could give. This runs ``run --target URL --profile ci`` against
an embedded server in each configuration (default, no guest agent, DMC restricted, one host, and
their combinations) over several seeds, and prints one line per run: the verdict (it must be
``conforms`` everywhere), the examples and steps, and the time taken.

    python benchmarks/fact_matrix.py                  # 6 configurations x seeds 1 2
    python benchmarks/fact_matrix.py --seeds 1 2 3 --profile dev

Exit status 1 if any run did not conform.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.server.config import ServerConfig
from conformance.server.process import start_in_thread

PASSWORD = "fact-matrix-pw"

CONFIGS: dict[str, ServerConfig] = {
    "default": ServerConfig(password=PASSWORD),
    "no-guest-agent": ServerConfig(password=PASSWORD, guest_agent=False),
    "restrict-dmc": ServerConfig(password=PASSWORD, restrict_dmc=True),
    "hosts-1": ServerConfig(password=PASSWORD, hosts=1),
    "restrict-dmc+hosts-1+no-guest-agent": ServerConfig(
        password=PASSWORD, restrict_dmc=True, hosts=1, guest_agent=False
    ),
    "no-guest-agent+hosts-1": ServerConfig(password=PASSWORD, guest_agent=False, hosts=1),
}


def run_once(config: ServerConfig, seed: int, profile: str, workers: str) -> dict[str, object]:
    """One run against a fresh server in ``config``: its summary's figures and its duration."""
    server = start_in_thread(config)
    report = Path(tempfile.mkdtemp(prefix="fact-matrix-"))
    started = time.monotonic()
    try:
        command = [sys.executable, "-m", "conformance.runner.cli", "run", "--target", server.url]
        command += ["--profile", profile, "--seed", str(seed), "-n", workers]
        subprocess.run(
            [*command, "--report-dir", str(report)],
            check=False,
            capture_output=True,
            env={**os.environ, "XAPI_PASSWORD": PASSWORD},
        )
    finally:
        server.stop()
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    return {
        "verdict": summary["verdict"],
        "examples": summary["examples"],
        "steps": summary["steps"],
        "error": summary.get("error", ""),
        "seconds": round(time.monotonic() - started, 1),
        "report": str(report),
    }


def main() -> int:
    """Run the matrix and print it; exit 1 if any run did not conform."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("-n", dest="workers", default="0", help="workers per run (default 0)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    failed = 0
    for name in args.configs:
        for seed in args.seeds:
            row = run_once(CONFIGS[name], seed, args.profile, args.workers)
            failed += row["verdict"] != "conforms"
            print(
                f"{name:38} seed {seed}: {row['verdict']:9} {row['examples']:>5} examples "
                f"{row['steps']:>6} steps {row['seconds']:>7} s  {row['error'] or ''}"
                + ("" if row["verdict"] == "conforms" else f"  ({row['report']})"),
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
