"""facturflow benchmarks (issue 5): `make bench`, or `python -m benchmarks.run [--quick]`.

Each target prints facturflow's figure, the reference's figure, their ratio, and the command lines
that produced them. Targets: batch, cold, large, memory, convert, send, dask (see
benchmarks/README.md).
Benchmarks measure; they never assert (nothing here is a unit test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .generate import generate
from .java_compat import java_stylesheets
from .reference import (
    InteractiveReference,
    JavaResult,
    ReferenceUnavailable,
    run_measured,
    run_reference,
)

TARGETS = ("batch", "cold", "large", "memory", "convert", "send", "dask")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Config:
    quick: bool
    corpus: Path | None
    workdir: Path
    jobs: int = 2
    java: bool = True
    sizes: tuple[int, ...] = ()
    rounds: int | None = None  # batch: alternated rounds (default 5, --quick 2)
    results: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ helpers


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(ours: float | None, ref: float | None) -> str:
    if not ours or not ref:
        return "n/a"
    return f"{ours / ref:.2f}"


def cmdline(cmd: Sequence[str], max_args: int = 12) -> str:
    shown = [str(c) for c in cmd]
    if len(shown) > max_args:
        extra = len(shown) - max_args
        shown = [*shown[:max_args], f"... (+{extra} more files)"]
    return "$ " + " ".join(shlex.quote(c) if " " not in c else c for c in shown)


def facturflow_cli() -> list[str]:
    script = Path(sys.executable).parent / "facturflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "facturflow"]


def corpus_root(arg: str | None) -> Path | None:
    candidates = [arg, os.environ.get("FACTURFLOW_CORPUS"), str(REPO.parent / "shared" / "corpus")]
    for c in candidates:
        if c and (Path(c) / "MANIFEST.tsv").is_file():
            return Path(c)
    return None


@dataclass(frozen=True)
class BatchDoc:
    path: Path
    syntax: str
    stylesheets: tuple[Path, ...]  # the Schematron XSLTs facturflow applies by default


def batch_documents(cfg: Config) -> list[BatchDoc]:
    """Corpus XML invoices (UBL and CII) with the stylesheets the default rules apply to each."""
    if cfg.corpus is None:
        paths = []
        for i, (n, syntax) in enumerate([(n, s) for n in (5, 20, 60) for s in ("ubl", "cii")]):
            p = cfg.workdir / f"gen-{syntax}-{n}.xml"
            p.write_bytes(generate(n, syntax, seed=i))
            paths.append(p)
    else:
        paths = sorted([*cfg.corpus.glob("ubl/*.xml"), *cfg.corpus.glob("cii/*.xml")])
        if cfg.quick:
            paths = paths[::20]
    return plan_documents(paths)


def plan_documents(paths: Sequence[Path]) -> list[BatchDoc]:
    """The XML invoices (UBL and CII) among `paths`, with the stylesheets the default rules apply
    to each (the others are left out)."""
    from facturflow.detection import detect
    from facturflow.errors import FacturflowError
    from facturflow.rules import DEFAULT_RULE_SETS, plan

    docs = []
    for p in paths:
        try:
            d = detect(p)
        except FacturflowError:
            continue
        if d.syntax not in ("cii", "ubl-invoice", "ubl-creditnote"):
            continue
        steps, _ = plan(d, DEFAULT_RULE_SETS)
        sheets = tuple(s.artefact.path for s in steps if s.layer == "schematron")
        docs.append(BatchDoc(p, "ubl" if d.syntax.startswith("ubl") else "cii", sheets))
    return docs


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc/PID/stat (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_of_this_and_children() -> float:
    """This process's CPU, its live children's, and its reaped children's (a worker replaced
    during a pass is counted once: alive at the start, reaped at the end)."""
    import multiprocessing
    import resource

    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.process_time() + reaped.ru_utime + reaped.ru_stime
            + sum(_proc_cpu(c.pid) for c in multiprocessing.active_children() if c.pid))


def _library_pass(runs: list[tuple[Any, list[str]]]) -> tuple[float, float]:
    """(wall, CPU of this process and its workers) of one pass of BatchValidator runs."""
    cpu0, wall0 = _cpu_of_this_and_children(), time.perf_counter()
    for validator, names in runs:
        for _ in validator.validate_many(names):
            pass
    return time.perf_counter() - wall0, _cpu_of_this_and_children() - cpu0


def java_or_reason(fn: Callable[[], JavaResult]) -> tuple[JavaResult | None, str | None]:
    try:
        return fn(), None
    except ReferenceUnavailable as exc:
        return None, str(exc)


def java_note(result: JavaResult | None) -> str:
    if result is None:
        return ""
    skipped = ", ".join(Path(p).name for p in result.compile_errors)
    return (
        f"reference applies the same XSLTs minus those Saxon-HE {result.raw['saxon']} cannot "
        f"compile ({skipped or 'none'}), without XSD validation; BR-FR UBL through its "
        f"Saxon-9.9-compatible copy (benchmarks/java_compat.py; `python -m benchmarks.equivalence`"
        f" compares its SVRL with the official file's)"
    )


# ------------------------------------------------------------------------------------ targets


def target_batch(cfg: Config) -> None:
    docs = batch_documents(cfg)
    n = len(docs)
    say(f"== 1. batch throughput: {n} invoices ({'corpus XML' if cfg.corpus else 'generated'}), "
        f"default rules, {cfg.jobs} workers ==")
    repeat = 2
    out = cfg.workdir / "batch.json"
    cli = [*facturflow_cli(), "validate", "--jobs", str(cfg.jobs), "--format", "json", "-o",
           str(out), *[str(d.path) for d in docs]]
    cli_walls, cli_cpus = [], []
    for _ in range(repeat):
        m = run_measured(cli)
        if m.code not in (0, 1):
            say(f"  facturflow CLI failed (exit {m.code}): {m.stderr[-300:]}")
            break
        cli_walls.append(m.wall)
        cli_cpus.append(m.cpu)
    cli_wall = statistics.median(cli_walls) if cli_walls else None
    cli_cpu = statistics.median(cli_cpus) if cli_cpus else None
    # The same command given the batch 1 + `repeat` times: the difference from one pass is what
    # a pass costs once the workers are warm, through the user's own command (validate_many's
    # pool, syntax affinity, JSON report), parent process and workers' CPU all counted.
    multi = [*cli[: len(cli) - n], *[str(d.path) for d in docs] * (1 + repeat)]
    marginal_wall = marginal_cpu = None
    if cli_wall is not None and cli_cpu is not None:
        m = run_measured(multi)
        if m.code in (0, 1):
            marginal_wall = (m.wall - cli_wall) / repeat
            marginal_cpu = (m.cpu - cli_cpu) / repeat
    # Warm library batches, side by side with the reference: facturflow's BatchValidator (the
    # library's kept workers, syntax affinity) and the Java harness, one pass each in turn, so
    # that both see the same machine (its speed drifts with the other load on the cores).
    names = [str(d.path) for d in docs]
    rounds = cfg.rounds or (2 if cfg.quick else 5)
    interactive: InteractiveReference | None = None
    reason: str | None = "disabled (--no-java)"
    if cfg.java:
        try:
            interactive = InteractiveReference(
                [(d.path, java_stylesheets(d.stylesheets)) for d in docs], threads=cfg.jobs,
                warmup_seconds=10.0 if cfg.quick else 60.0, min_warmup_passes=3,
                workdir=cfg.workdir)
            reason = None
        except ReferenceUnavailable as exc:
            reason = str(exc)
    java: JavaResult | None = None
    try:
        from facturflow import BatchValidator

        # Like for like with the reference: it runs every default stylesheet too (BR-FR UBL, which
        # Saxon-HE 9.9 cannot compile, through its compatible copy), so there is no separate
        # "same XSLTs" run any more.
        with BatchValidator(jobs=cfg.jobs) as everything:
            runs: dict[str, list[tuple[Any, list[str]]]] = {
                "default": [(everything, names)],
            }
            # Warm-up: a worker compiles a stylesheet when it first meets a document that needs
            # it, and which worker gets which document varies from pass to pass: three passes.
            for _ in range(3):
                for name in runs:
                    _library_pass(runs[name])
            figures: dict[str, list[tuple[float, float]]] = {"default": [], "java": []}
            for r in range(rounds):
                order = ["java", "default"]
                for name in order[r % 2:] + order[: r % 2]:
                    if name == "java":
                        if interactive is not None:
                            figures["java"].append(interactive.one_pass())
                    else:
                        figures[name].append(_library_pass(runs[name]))
        if interactive is not None:
            java = interactive.finish()
    finally:
        if interactive is not None:
            interactive.close()  # never leave a JVM behind, whatever failed

    def med(name: str, at: int) -> float | None:
        values = [f[at] for f in figures[name]]
        return statistics.median(values) if values else None

    def round_ratios(name: str, at: int) -> list[float]:
        return [ours[at] / ref[at] for ours, ref in zip(figures[name], figures["java"],
                                                          strict=False) if ref[at]]

    warm_full, warm_full_cpu = med("default", 0), med("default", 1)
    ref, ref_cpu = med("java", 0), med("java", 1)
    say("  (wall = elapsed time; cpu = CPU seconds of all processes and threads doing the work,")
    say("   the figure that other load on the shared cores does not inflate)")
    say(f"  facturflow CLI, fresh process (spawn, compile, validate, JSON): wall "
        f"{fmt_s(cli_wall)} ({n / cli_wall if cli_wall else 0:.1f} invoices/s), cpu "
        f"{fmt_s(cli_cpu)}, median of {len(cli_walls)}")
    say(f"    {cmdline(cli)}")
    if marginal_wall is not None and marginal_cpu is not None:
        say(f"  facturflow CLI, marginal pass once warm (the batch given {1 + repeat} times, minus "
            f"once; syntax affinity): wall {fmt_s(marginal_wall)} "
            f"({n / marginal_wall:.1f} invoices/s), cpu {fmt_s(marginal_cpu)}")
    say(f"  facturflow BatchValidator, {cfg.jobs} warmed workers (syntax affinity), default "
        f"rules: wall {fmt_s(warm_full)} ({n / warm_full if warm_full else 0:.1f} invoices/s), "
        f"cpu {fmt_s(warm_full_cpu)} (workers and parent process), median of {rounds}")
    say("    $ python -m benchmarks.run --only batch   (benchmarks/run.py: _library_pass)")
    if java:
        say(f"  reference Java Saxon-HE {java.raw['saxon']}, {java.raw['threads']} threads, one "
            f"JVM warmed {java.raw['warmup_passes']} passes / {java.raw['warmup_transforms']} "
            f"transforms ({java.raw['warmup_seconds']:.0f} s): wall {fmt_s(ref)} "
            f"({n / ref if ref else 0:.1f} invoices/s), cpu {fmt_s(ref_cpu)}, median of "
            f"{len(java.raw['pass_seconds'])}, passes alternated with facturflow's"
            f"; peak RSS {java.raw['peak_rss_mb']:.0f} MB")
        say(f"    {cmdline(java.command.split())}")
        sheets = {s.name for d in docs for s in d.stylesheets}
        refused = {Path(p).name for p in java.compile_errors}
        say(f"    the reference runs {'all' if not refused else len(sheets - refused)} of the "
            f"{len(sheets)} default XSLTs ({', '.join(sorted(sheets - refused))}), as facturflow "
            f"does")
        say(f"    note: {java_note(java)}")
        if java.raw["runtime_errors"]:
            say(f"    reference runtime errors: {len(java.raw['runtime_errors'])}")
    else:
        say(f"  reference: not available: {reason}")
    say(f"  ratio facturflow/reference (target <= 1.0, aim 0.5), wall (cpu), of the medians: "
        f"warm default rules {ratio(warm_full, ref)} ({ratio(warm_full_cpu, ref_cpu)}); CLI "
        f"marginal pass "
        f"{ratio(marginal_wall, ref)} ({ratio(marginal_cpu, ref_cpu)}); CLI cold incl. start-up "
        f"{ratio(cli_wall, ref)} ({ratio(cli_cpu, ref_cpu)})")
    if java:
        wall_r, cpu_r = round_ratios("default", 0), round_ratios("default", 1)
        say("    per round, default rules: wall " + " ".join(f"{x:.2f}" for x in wall_r)
            + "; cpu " + " ".join(f"{x:.2f}" for x in cpu_r))
    cfg.results["batch"] = {
        "documents": n, "cli_seconds": cli_wall, "cli_cpu_seconds": cli_cpu,
        "warm_default_seconds": warm_full, "warm_default_cpu_seconds": warm_full_cpu,
        "cli_marginal_pass_seconds": marginal_wall, "cli_marginal_pass_cpu_seconds": marginal_cpu,
        "rounds": figures,
        "java": java.raw if java else None,
        "java_command": java.command if java else None, "cli_command": cli[:8],
    }


def _cold_docs(cfg: Config) -> list[Path]:
    if cfg.corpus:
        names = ["ubl/afnor-z14v13-UC1_F202500003_00-INV_20250701_UBL_EN16931.xml",
                 "cii/afnor-z14v13-UC1_F202500003_00-INV_20250701_CII_EN16931.xml"]
        found = [cfg.corpus / n for n in names if (cfg.corpus / n).is_file()]
        if found:
            return found
    out = []
    for syntax in ("ubl", "cii"):
        p = cfg.workdir / f"cold-{syntax}.xml"
        p.write_bytes(generate(10, syntax))
        out.append(p)
    return out


def target_cold(cfg: Config) -> None:
    say("== 2. cold start: `facturflow validate one.xml` as a fresh process (target < 1.5 s) ==")
    runs = 3 if cfg.quick else 7
    cfg.results["cold"] = {}
    from facturflow.detection import detect
    from facturflow.rules import DEFAULT_RULE_SETS, plan

    for doc in _cold_docs(cfg):
        cmd = [*facturflow_cli(), "validate", str(doc)]
        # A fresh derived-stylesheet cache per document: the first run fills it (the cost a
        # machine pays once per factur-x/facturflow version), the others load from it.
        cache = cfg.workdir / f"cold-cache-{doc.stem}"
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "FACTURFLOW_CACHE_DIR": str(cache)}
        first = run_measured(cmd, env=env)
        serial_cmd = [*facturflow_cli(), "validate", "--jobs", "1", str(doc)]
        walls, cpus, serial_walls, serial_cpus = [], [], [], []
        for _ in range(runs):
            # Alternate the two ways so that load changes hit both alike.
            m = run_measured(cmd, env=env)
            s = run_measured(serial_cmd, env=env)
            if m.code not in (0, 1) or s.code not in (0, 1):
                errors = (m.stderr + s.stderr)[-300:]
                say(f"  facturflow failed (exit {m.code}, {s.code}): {errors}")
                break
            walls.append(m.wall)
            cpus.append(m.cpu)
            serial_walls.append(s.wall)
            serial_cpus.append(s.cpu)
        ours = statistics.median(walls) if walls else None
        ours_cpu = statistics.median(cpus) if cpus else None
        java: JavaResult | None = None
        reason: str | None = "disabled (--no-java)"
        if cfg.java:
            steps, _ = plan(detect(doc), DEFAULT_RULE_SETS)
            sheets = java_stylesheets([s.artefact.path for s in steps if s.layer == "schematron"])
            java, reason = java_or_reason(partial(
                run_reference, [(doc, sheets)], threads=1, warmup_seconds=0,
                min_warmup_passes=0, repeat=1, workdir=cfg.workdir, timeout=600))
        ref = java.raw["process_wall_seconds"] if java else None
        ref_cpu = java.raw["process_cpu_seconds"] if java else None
        say(f"  {doc.name}")
        say(f"    facturflow: wall {fmt_s(ours)} median of {len(walls)} "
            f"(min {fmt_s(min(walls)) if walls else 'n/a'}, max "
            f"{fmt_s(max(walls)) if walls else 'n/a'}); cpu {fmt_s(ours_cpu)}")
        say(f"      {cmdline(cmd)}")
        say(f"    facturflow on one worker (--jobs 1, no split): wall "
            f"{fmt_s(statistics.median(serial_walls) if serial_walls else None)}, cpu "
            f"{fmt_s(statistics.median(serial_cpus) if serial_cpus else None)}")
        say(f"    facturflow first run, empty derived cache: wall {fmt_s(first.wall)}, "
            f"cpu {fmt_s(first.cpu)}")
        if java:
            say(f"    reference (fresh JVM: compile + one validation, 1 run): wall {fmt_s(ref)}, "
                f"cpu {fmt_s(ref_cpu)}")
            say(f"      {cmdline(java.command.split())}")
            say(f"      note: {java_note(java)}")
        else:
            say(f"    reference: not available: {reason}")
        say(f"    ratio wall {ratio(ours, ref)}, cpu {ratio(ours_cpu, ref_cpu)}")
        cfg.results["cold"][doc.name] = {"facturflow_runs": walls, "facturflow_cpu": cpus,
                                         "one_worker_runs": serial_walls,
                                         "one_worker_cpu": serial_cpus,
                                         "first_run_empty_cache": [first.wall, first.cpu],
                                         "java_seconds": ref, "java_cpu_seconds": ref_cpu}


def _loglog_slope(points: list[tuple[int, float]]) -> float | None:
    pts = [(math.log(n), math.log(t)) for n, t in points if n >= 100 and t > 0]
    if len(pts) < 2:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def target_large(cfg: Config) -> None:
    import facturflow

    sizes = cfg.sizes or ((10, 100, 500) if cfg.quick else (10, 100, 500, 1000, 2000, 4000))
    java_max = 500 if cfg.quick else 4000  # Java takes minutes per pass on the largest CII
    say(f"== 3. large invoices: {', '.join(map(str, sizes))} lines, default rules, one warmed "
        f"process (target < 10 s at 4,000 lines, at most linear) ==")
    cfg.results["large"] = {}
    for syntax in ("ubl", "cii"):
        facturflow.validate(generate(3, syntax))  # compile the stylesheets first
        points: list[tuple[int, float]] = []
        ref_points: list[tuple[int, float]] = []
        rows = []
        for n in sizes:
            data = generate(n, syntax)
            path = cfg.workdir / f"large-{syntax}-{n}.xml"
            path.write_bytes(data)
            reps = 3 if n <= 500 else 1
            walls, cpus = [], []
            report = None
            for _ in range(reps):
                t0, c0 = time.perf_counter(), time.process_time()
                report = facturflow.validate(data)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            ours = min(walls)
            ours_cpu = min(cpus)
            points.append((n, ours_cpu))
            assert report is not None
            per_layer = {lr.artefact: lr.seconds for lr in report.layers if lr.seconds}
            ref = ref_cpu = None
            if cfg.java and n <= java_max:
                from facturflow.detection import detect as detect_document
                from facturflow.rules import DEFAULT_RULE_SETS, plan

                steps, _ = plan(detect_document(path), DEFAULT_RULE_SETS)
                sheets = java_stylesheets(
                    [s.artefact.path for s in steps if s.layer == "schematron"])
                # Warm the JVM on this very file (at least one pass, up to a few seconds).
                java, _reason = java_or_reason(partial(
                    run_reference, [(path, sheets)], threads=1,
                    warmup_seconds=3.0 if cfg.quick else 10.0, min_warmup_passes=1, repeat=1,
                    workdir=cfg.workdir, timeout=1800))
                ref = java.best_pass_seconds if java else None
                ref_cpu = java.median_pass_cpu_seconds if java else None
                if ref_cpu:
                    ref_points.append((n, ref_cpu))
            bad = [f.rule for f in report.findings if f.fatal]
            rows.append((n, len(data), ours, ours_cpu, ref, ref_cpu, report.ok, bad, per_layer))
        say(f"  {syntax.upper()}: lines, size, facturflow wall/cpu (min of runs), reference wall/"
            f"cpu (Java warmed on the same file), cpu ratio, facturflow cpu ms per line")
        for n, size, ours, ours_cpu, ref, ref_cpu, ok, bad, per_layer in rows:
            layers = ", ".join(f"{k.split('.')[0][:18]} {fmt_s(v)}" for k, v in per_layer.items())
            say(f"    {n:>5} {size / 1e6:6.2f} MB  {fmt_s(ours):>8} / {fmt_s(ours_cpu):>8}  ref "
                f"{fmt_s(ref):>8} / {fmt_s(ref_cpu):>8}  ratio {ratio(ours_cpu, ref_cpu):>5}  "
                f"{ours_cpu * 1000 / n:6.2f} ms/line"
                f"{'' if ok else '  NOT VALID: ' + ','.join(bad[:5])}  [wall: {layers}]")
        slope = _loglog_slope(points)
        ref_slope = _loglog_slope(ref_points)
        ours_exp = "n/a (needs two sizes >= 100)" if slope is None else f"{slope:.2f}"
        ref_exp = f", reference {ref_slope:.2f}" if ref_slope else ""
        say(f"    growth exponent of cpu time (log-log fit, >= 100 lines; 1 = linear): facturflow "
            f"{ours_exp}{ref_exp}")
        say(f"    $ python -m benchmarks.generate --lines N --syntax {syntax} -o big.xml && "
            f"{' '.join(facturflow_cli())} validate big.xml")
        # The user's command on the largest file: a fresh process that compiles its stylesheets
        # and, for one file, runs them on two workers at once (validate/split.py).
        biggest = cfg.workdir / f"large-{syntax}-{max(sizes)}.xml"
        cli = run_measured([*facturflow_cli(), "validate", str(biggest)], timeout=1800)
        cli_serial = run_measured(
            [*facturflow_cli(), "validate", "--jobs", "1", str(biggest)], timeout=1800
        )
        say(f"    CLI, fresh process, {max(sizes)} lines (compiling included): wall "
            f"{fmt_s(cli.wall)}, cpu {fmt_s(cli.cpu)} (exit {cli.code}); on one worker "
            f"(--jobs 1): wall {fmt_s(cli_serial.wall)}, cpu {fmt_s(cli_serial.cpu)}")
        cfg.results["large"][f"{syntax}_cli"] = {
            "lines": max(sizes), "seconds": cli.wall, "cpu_seconds": cli.cpu, "exit": cli.code,
            "one_worker_seconds": cli_serial.wall, "one_worker_cpu_seconds": cli_serial.cpu,
        }
        cfg.results["large"][syntax] = {
            "rows": [{"lines": r[0], "bytes": r[1], "seconds": r[2], "cpu_seconds": r[3],
                      "java_seconds": r[4], "java_cpu_seconds": r[5], "valid": r[6],
                      "layers": r[8]} for r in rows],
            "exponent": slope, "java_exponent": ref_slope,
        }


def target_memory(cfg: Config) -> None:
    count = 300 if cfg.quick else 10_000
    # Typical invoices (under 60 KB), so that 10,000 validations fit in a run of minutes, from
    # every syntax in turn: a batch worker compiles the stylesheets of both UBL and CII, and
    # taking the first N files in path order would have measured a CII-only worker.
    typical = [d for d in batch_documents(cfg) if d.path.stat().st_size < 60_000]
    syntaxes = sorted({d.syntax for d in typical})
    by_syntax = [[d.path for d in typical if d.syntax == s] for s in syntaxes]
    mixed = [p for group in itertools.zip_longest(*by_syntax) for p in group if p is not None]
    docs = mixed[:10] if cfg.quick else mixed[:50]
    say(f"== 4. memory: {count} validations over {len(docs)} invoices of both syntaxes, in one "
        f"process, then on batch workers (target < 400 MB per worker, no growth) ==")
    cmd = [sys.executable, "-m", "benchmarks.memory", str(count), *map(str, docs)]
    m = run_measured(cmd, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = m.wall
    if m.code != 0:
        say(f"  failed (exit {m.code}): {m.stderr[-500:]}")
        return
    data = json.loads(m.stdout.strip().splitlines()[-1])
    say(f"  facturflow: peak RSS {data['peak_rss_mb']:.0f} MB; RSS after the first round "
        f"{data['rss_after_first_round_mb']:.0f} MB, after {count} validations "
        f"{data['rss_end_mb']:.0f} MB (growth {data['growth_mb']:+.1f} MB), {wall:.0f} s")
    say("    RSS at checkpoints: " + ", ".join(
        f"{s['validations']}:{s['rss_mb']:.0f}" for s in data["samples"]))
    say(f"    {cmdline(cmd)}")
    # The batch case: validate_many's workers, each kept to one syntax (pool affinity).
    pool_cmd = [sys.executable, "-m", "benchmarks.memory", "--pool", str(cfg.jobs), str(count),
                *map(str, docs)]
    pm = run_measured(pool_cmd, env={**os.environ, "PYTHONPATH": str(REPO)})
    pool_data = None
    if pm.code != 0:
        say(f"  batch workers: failed (exit {pm.code}): {pm.stderr[-500:]}")
    else:
        pool_data = json.loads(pm.stdout.strip().splitlines()[-1])
        say(f"  facturflow batch workers (validate_many, {cfg.jobs} jobs, syntax affinity): peak "
            f"RSS per worker {pool_data['peak_rss_mb']:.0f} MB (workers: " + ", ".join(
                f"{w['peak_rss_mb']:.0f}" for w in pool_data["workers"]) + f"); growth "
            f"{pool_data['growth_mb']:+.1f} MB, {pm.wall:.0f} s")
        say(f"    {cmdline(pool_cmd)}")
    java = cfg.results.get("batch", {}).get("java")
    if java:
        ref_mb = java["peak_rss_mb"]
        say(f"  reference: the Java batch run (2 threads, one JVM, -Xmx2g) peaked at "
            f"{ref_mb:.0f} MB RSS; ratio {ratio(data['peak_rss_mb'], ref_mb)}")
    else:
        say("  reference: Java's peak RSS comes from the batch target (run it in the same call)")
    cfg.results["memory"] = {**data, "command": cmd[:4], "pool": pool_data}


def target_convert(cfg: Config) -> None:
    say("== 5. conversion throughput UBL -> Factur-X PDF (target >= 15 invoices/s on 2 cores) ==")
    try:
        import facturflow.conversion  # noqa: F401
    except ImportError:
        say("  not available: facturflow.convert does not exist yet")
        cfg.results["convert"] = None
        return
    from .convert_bench import run_convert

    cfg.results["convert"] = run_convert(cfg.workdir, cfg.quick, cfg.jobs, say)


def target_send(cfg: Config) -> None:
    say("== 6. send-stage overhead against the sandbox on loopback (target < 10 ms/invoice) ==")
    try:
        import facturflow.transmit.sandbox  # noqa: F401
    except ImportError:
        say("  not available: facturflow.transmit.sandbox does not exist yet")
        cfg.results["send"] = None
        return
    from .send_bench import run_send

    cfg.results["send"] = run_send(cfg.workdir, cfg.quick, say)


def target_dask(cfg: Config) -> None:
    say("== 7. batch on a Dask LocalCluster of 1 and 2 workers vs the local pool (target: the "
        "2-worker cluster within 15 % of the local pool on 2 cores) ==")
    from .dask_bench import run_dask

    docs = batch_documents(cfg)
    files = [d.path for d in docs]
    if cfg.corpus is not None and not cfg.quick:
        files = files[::2]  # a few hundred invoices: both syntaxes, every size of the corpus
    cfg.results["dask"] = run_dask(files, cfg.jobs, say)


RUNNERS: dict[str, Callable[[Config], None]] = {
    "batch": target_batch,
    "cold": target_cold,
    "large": target_large,
    "memory": target_memory,
    "convert": target_convert,
    "send": target_send,
    "dask": target_dask,
}


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="facturflow benchmarks (issue 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default=",".join(TARGETS), help=f"comma list of {TARGETS}")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: FACTURFLOW_CORPUS"
                        " or ../shared/corpus; generated invoices when absent)")
    parser.add_argument("--no-java", action="store_true", help="skip the Java reference runs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sizes", default="", help="line counts for 'large', e.g. 10,1000,4000")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--rounds", type=int, default=None,
                        help="batch: rounds of alternated passes (default 5; 2 with --quick)")
    args = parser.parse_args(argv)
    # These targets time validation itself: `facturflow validate`'s verdict cache (on by default)
    # would answer every run after the first (benchmarks/verdict_cache.py measures the cache).
    os.environ["FACTURFLOW_VERDICT_CACHE"] = "off"
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in RUNNERS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    with tempfile.TemporaryDirectory(prefix="facturflow-bench-") as tmp:
        cfg = Config(quick=args.quick, corpus=corpus_root(args.corpus), workdir=Path(tmp),
                     jobs=args.jobs, java=not args.no_java, rounds=args.rounds,
                     sizes=tuple(int(x) for x in args.sizes.split(",") if x.strip()))
        say(f"facturflow benchmarks ({'quick' if cfg.quick else 'full'}) on {machine()}")
        say(f"corpus: {cfg.corpus or 'absent (generated invoices)'}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for name in chosen:
            t0 = time.perf_counter()
            RUNNERS[name](cfg)
            say(f"   ({name} took {time.perf_counter() - t0:.0f} s)")
            say()
        if args.json:
            args.json.write_text(json.dumps(cfg.results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
