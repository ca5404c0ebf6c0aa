"""Mutation benchmark: mutants of the reference model, each served as an external target and
run through the ``ci`` profile (a benchmark the suite was not tuned to; not a test).

Mutants are made mechanically from the model's source (``models/``), by four operators that
imitate the mistakes a reimplementation makes:

- ``flip``: a check turned around (``==``/``!=``, ``<``/``<=``, ``in``/``not in``, ``is``/``is
  not``, an ``if`` negated);
- ``param``: an error's parameters perturbed (``XenAPIError(code, a, b)`` loses its last
  parameter, or its first two swap);
- ``drop``: a field update dropped (one entry of the changes ``update_vm``/``update``/``replace``
  write);
- ``result``: a successful result's value swapped for the empty string (``done(world, v)``).

Each mutant is a copy of ``models/`` with one change, put first on the server's ``PYTHONPATH``
(the suite's run keeps the honest model). The server is ``xapi-conformance serve`` with an
account per role; the run is ``xapi-conformance run --target URL --profile ci`` with those
accounts, bounded by ``--time-budget``. A mutant is *found* when the run exits 1; a mutant the
server cannot even start with is *stillborn* and left out. Survivors are listed with their change:
those a client could observe are blind spots, the others equivalent mutants.

Usage:
    python benchmarks/mutation.py --list                       # the mutants, per file and kind
    python benchmarks/mutation.py --sample 40 --seed 1 -j 2 --budget 60s --out mutation.jsonl
    python benchmarks/mutation.py --mutant misc.py:param:12 --budget 180s  # one mutant again
    nice -n 10 python benchmarks/mutation.py --sample 30 --seed 3 --budget none --max-load 8 \
        --out whole.jsonl --resume             # each mutant judged by a whole ci run
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SKIPPED = frozenset(
    {"catalogue_data.py", "__init__.py", "coverage.py", "releases.py", "schema.py", "hidden.py"}
)
"""Model files that are data or reference tables, not behaviour (their mutants mostly break
the import or change what the catalogue declares)."""
ROLES = ("pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only")
PASSWORD = "mutation-pw"
RUN_LIMIT = 3600
"""Seconds a mutant's run may take before it is judged an error (a whole ci run takes about
five minutes on a quiet 2-core machine, more than half an hour at load 15)."""

_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_UPDATERS = frozenset({"update_vm", "update", "replace"})


@dataclass(frozen=True)
class Mutant:
    """One change to one model file: the ``index``-th site of operator ``kind`` in it."""

    file: str
    kind: str
    index: int
    line: int
    change: str


@dataclass(frozen=True)
class Verdict:
    """What the ``ci`` run made of a mutant."""

    mutant: Mutant
    outcome: str  # found, survived, stillborn, error
    exit_code: int
    seconds: float
    finding: str
    left_out: int = 0
    """Tests of the run whose cells or examples the budget cut short (a survivor with some
    was not judged by the whole profile)."""
    commit: str = ""
    """The suite's commit that judged it."""


# ---- the operators: each yields (line, description, mutate) per site -------------------------

Site = tuple[int, str, Callable[[], None]]


def _flip_sites(tree: ast.Module) -> Iterator[Site]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIPS:
            yield _flip(node)
        elif isinstance(node, ast.If):
            yield _negate(node)


def _flip(node: ast.Compare) -> Site:
    old = node.ops[0]
    new = _FLIPS[type(old)]()

    def mutate() -> None:
        node.ops = [new]

    return node.lineno, f"{type(old).__name__} -> {type(new).__name__}", mutate


def _negate(node: ast.If) -> Site:
    def mutate() -> None:
        node.test = ast.UnaryOp(ast.Not(), node.test)

    return node.lineno, "if negated", mutate


def _param_sites(tree: ast.Module) -> Iterator[Site]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) == "XenAPIError" and len(node.args) > 1:
            call = node
            yield node.lineno, "last error parameter dropped", lambda c=call: _drop_last(c)
            if len(node.args) > 2:
                yield node.lineno, "first two error parameters swapped", lambda c=call: _swap(c)


def _drop_last(call: ast.Call) -> None:
    call.args = call.args[:-1]


def _swap(call: ast.Call) -> None:
    call.args = [call.args[0], call.args[2], call.args[1], *call.args[3:]]


def _drop_sites(tree: ast.Module) -> Iterator[Site]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _name(node.func) in _UPDATERS):
            continue
        for keyword in node.keywords:
            if keyword.arg is not None:
                yield node.lineno, f"update of {keyword.arg} dropped", _dropper(node, keyword)
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                for key in arg.keys:
                    if isinstance(key, ast.Constant):
                        yield node.lineno, f"update of {key.value} dropped", _entry(arg, key)


def _dropper(call: ast.Call, keyword: ast.keyword) -> Callable[[], None]:
    def mutate() -> None:
        call.keywords = [k for k in call.keywords if k is not keyword]

    return mutate


def _entry(mapping: ast.Dict, key: ast.expr) -> Callable[[], None]:
    def mutate() -> None:
        index = mapping.keys.index(key)
        del mapping.keys[index], mapping.values[index]

    return mutate


def _result_sites(tree: ast.Module) -> Iterator[Site]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) == "done" and len(node.args) == 2:
            value = node.args[1]
            if not (isinstance(value, ast.Constant) and value.value == ""):
                yield node.lineno, "result swapped for ''", _emptied(node)


def _emptied(call: ast.Call) -> Callable[[], None]:
    def mutate() -> None:
        call.args = [call.args[0], ast.Constant("")]

    return mutate


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


OPERATORS: dict[str, Callable[[ast.Module], Iterator[Site]]] = {
    "flip": _flip_sites,
    "param": _param_sites,
    "drop": _drop_sites,
    "result": _result_sites,
}


# ---- generating mutants ----------------------------------------------------------------------


def model_files() -> list[Path]:
    """The model files whose behaviour is mutated."""
    return sorted(p for p in MODELS.glob("*.py") if p.name not in SKIPPED)


def mutants() -> list[Mutant]:
    """Every mutant of every model file, in a stable order."""
    found = []
    for path in model_files():
        tree = ast.parse(path.read_text())
        for kind, sites in OPERATORS.items():
            for index, (line, change, _mutate) in enumerate(sites(tree)):
                found.append(Mutant(path.name, kind, index, line, change))
    return found


def mutated_source(mutant: Mutant) -> str:
    """The source of ``mutant.file`` with the mutant's one change."""
    tree = ast.parse((MODELS / mutant.file).read_text())
    site = list(OPERATORS[mutant.kind](tree))[mutant.index]
    site[2]()
    return ast.unparse(ast.fix_missing_locations(tree))


# ---- running one mutant ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _environment() -> dict[str, str]:
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD}
    for role in ROLES:
        env[_variable(role)] = f"{role}-pw"
    return env


def _variable(role: str) -> str:
    return "MUTATION_" + role.upper().replace("-", "_")


def _serve(overlay: Path, port: int, serving: Sequence[str]) -> subprocess.Popen[bytes]:
    accounts = overlay / "accounts"
    accounts.write_text("".join(f"m-{r}:{r}:env:{_variable(r)}\n" for r in ROLES))
    paths = [str(overlay), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**_environment(), "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "conformance.runner.cli", "serve", "--port", str(port)]
    command += ["--password-env", "XAPI_PASSWORD", "--accounts-file", str(accounts), *serving]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=overlay
    )


def _run(
    url: str, report_dir: Path, seed: int, budget: str, areas: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conformance.runner.cli", "run", "--target", url]
    command += ["--profile", "ci", "--seed", str(seed), "--report-dir", str(report_dir)]
    command += ["--max-findings", "1"]
    if budget != "none":
        command += ["--time-budget", budget]
    if areas:
        command += ["-k", areas]
    for role in ROLES:
        command += ["--role-account", f"{role}=m-{role}:{_variable(role)}"]
    return subprocess.run(
        command, env=_environment(), capture_output=True, text=True, check=False, timeout=RUN_LIMIT
    )


def run_mutant(
    mutant: Mutant, seed: int, budget: str, areas: str = "", serving: Sequence[str] = ()
) -> Verdict:
    """Serve ``mutant`` (with the ``serve`` options ``serving``) and run the ``ci`` profile
    against it (only ``areas``, a ``-k`` expression, when given)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-") as directory:
        overlay = Path(directory)
        shutil.copytree(MODELS, overlay / "models")
        (overlay / "models" / mutant.file).write_text(mutated_source(mutant))
        port = _free_port()
        server = _serve(overlay, port, serving)
        try:
            if not _wait_listening(port, server, 60):
                return Verdict(mutant, "stillborn", -1, time.monotonic() - started, "")
            url = f"http://127.0.0.1:{port}/"
            result = _run(url, overlay / "report", seed, budget, areas)
        except subprocess.TimeoutExpired as expired:
            ended = f"the run did not end within {expired.timeout:.0f} s"
            return Verdict(mutant, "error", -1, time.monotonic() - started, ended)
        finally:
            server.terminate()
            server.wait(10)
        outcome = {0: "survived", 1: "found"}.get(result.returncode, "error")
        lines = (result.stdout + result.stderr).splitlines()
        mark = " F-" if result.returncode == 1 else "verdict"
        finding = next((ln.strip() for ln in lines if mark in ln), "")
        seconds = time.monotonic() - started
        cut = _left_out(overlay / "report")
        return Verdict(mutant, outcome, result.returncode, seconds, finding, cut)


def _left_out(report_dir: Path) -> int:
    """How many tests the run's budget cut short, as its summary.json records."""
    try:
        summary = json.loads((report_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return 0
    budget = summary.get("budget") if isinstance(summary, dict) else None
    return len(budget.get("left_out", ())) if isinstance(budget, dict) else 0


def _judged_before(out: Path) -> set[str]:
    """The mutants (``file:kind:index``) whose verdicts ``out`` already holds."""
    if not out.exists():
        return set()
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {f"{r['mutant']['file']}:{r['mutant']['kind']}:{r['mutant']['index']}" for r in records}


def _commit() -> str:
    """The suite's commit (short), or "" outside a git checkout."""
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def _wait_for_load(limit: float) -> None:
    """Wait while the machine's 1-minute load is at ``limit`` or above (0: never wait); a
    benchmark on a shared machine yields to the others' work."""
    while limit and os.getloadavg()[0] >= limit:
        time.sleep(30)


# ---- the command -----------------------------------------------------------------------------


def _table(verdicts: list[Verdict]) -> str:
    counts: dict[str, Counter[str]] = {}
    for verdict in verdicts:
        counts.setdefault(verdict.mutant.file, Counter())[verdict.outcome] += 1
    lines = [f"{'model file':<16} found / tried   survived  error  stillborn"]
    for file, count in sorted(counts.items()):
        tried = count["found"] + count["survived"] + count["error"]
        lines.append(
            f"{file:<16} {count['found']:>5} / {tried:<7} {count['survived']:>8}  "
            f"{count['error']:>5}  {count['stillborn']:>9}"
        )
    total = Counter(v.outcome for v in verdicts)
    tried = total["found"] + total["survived"] + total["error"]
    lines.append(f"{'all':<16} {total['found']:>5} / {tried:<7} {total['survived']:>8}")
    lines += [
        f"survived: {v.mutant.file}:{v.mutant.kind}:{v.mutant.index} (line {v.mutant.line}) "
        f"{v.mutant.change}" + (f"; budget cut {v.left_out} test(s) short" if v.left_out else "")
        for v in verdicts
        if v.outcome == "survived"
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Generate, sample, serve and judge mutants; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="count the mutants and stop")
    parser.add_argument("--sample", type=int, default=40, help="mutants to run (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="sampling and run seed")
    parser.add_argument(
        "--budget",
        default="60s",
        help="each run's --time-budget; none for the whole profile, unbounded",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=0.0,
        metavar="LOAD",
        help="start each mutant only while the machine's 1-minute load is below LOAD",
    )
    parser.add_argument("-j", type=int, default=1, help="mutants run at once")
    parser.add_argument("--out", type=Path, help="append each verdict as a JSON line")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="leave out the mutants whose verdicts --out already holds (a long sample resumed)",
    )
    parser.add_argument(
        "--mutant",
        action="append",
        default=[],
        metavar="FILE:KIND:INDEX",
        help="run this mutant (repeatable; e.g. a survivor again with a larger budget)",
    )
    parser.add_argument(
        "-k",
        dest="areas",
        default="",
        metavar="AREAS",
        help="run only these areas (the run's -k): a survivor again where it should be found",
    )
    parser.add_argument(
        "--latency",
        metavar="PROFILE",
        help="serve each mutant with this latency profile (serve --latency): operations stay "
        "in flight for their delay, so mutants of what may overlap can show",
    )
    parser.add_argument(
        "--latency-scale", metavar="F", help="serve --latency-scale (with --latency)"
    )
    args = parser.parse_args(argv)
    serving = [*(["--latency", args.latency] if args.latency else [])]
    serving += ["--latency-scale", args.latency_scale] if args.latency_scale else []
    every = mutants()
    if args.list:
        for (file, kind), count in sorted(Counter((m.file, m.kind) for m in every).items()):
            print(f"{file:<16} {kind:<7} {count}")
        print(f"{len(every)} mutants")
        return 0
    named = {f"{m.file}:{m.kind}:{m.index}": m for m in every}
    chosen = [named[name] for name in args.mutant] or random.Random(args.seed).sample(
        every, min(args.sample, len(every))
    )
    if args.resume and args.out:
        done = _judged_before(args.out)
        chosen = [m for m in chosen if f"{m.file}:{m.kind}:{m.index}" not in done]
    verdicts = []
    commit = _commit()

    def judged(mutant: Mutant) -> Verdict:
        _wait_for_load(args.max_load)
        verdict = run_mutant(mutant, args.seed, args.budget, args.areas, serving)
        return replace(verdict, commit=commit)

    with ThreadPoolExecutor(args.j) as pool:
        for verdict in pool.map(judged, chosen):
            verdicts.append(verdict)
            record = {**asdict(verdict), "mutant": asdict(verdict.mutant)}
            print(json.dumps(record), file=sys.stderr, flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(record) + "\n")
    print(_table(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
