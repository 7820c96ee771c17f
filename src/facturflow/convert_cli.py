"""`facturflow convert`: one file, or every invoice of a folder on a process pool.

Exit codes (see facturflow.exitcodes): 0 every conversion succeeded; 1 at least one was refused
(invalid output or dropped business terms, or a --scheduler worker died on it twice:
LAYER-FAILED); 2 a usage error (an output whose extension contradicts --to, an unreadable --pdf,
an output that cannot be written, an empty or unknown --rules, a bad --as-of) or an input that
cannot be read (also one over --max-size or --max-nodes); 3 a malformed rules calendar, a French
rules build not installed, or a --scheduler that cannot be used; 130 Ctrl-C (the conversions
finished by then are listed; each output is whole or absent).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from . import exitcodes
from .cli import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_UNREADABLE,
    cluster_errors,
    cluster_executor,
    note_local_only,
    rule_selection,
)
from .inputs import cli_limits, limit_options
from .outputs import write_bytes_atomically
from .progress import collect_until_interrupted
from .rules import RuleSelection
from .xmlsafe import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .detection import Source

Status = Literal["converted", "refused", "unreadable", "unwritable"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one input (picklable, sent back from the workers)."""

    source: str
    target: str | None
    status: Status
    message: str = ""
    dropped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Options:
    to: str
    profile: str | None
    pdf: bytes | None
    lossy: bool
    lang: str
    rules: RuleSelection | None = None
    limits: Limits = DEFAULT_LIMITS


def _convert_one(source: str, target: str, options: _Options) -> Outcome:
    """Convert `source` and write `target`; never raises for a bad input (it is an Outcome)."""
    outcome, data = converted(source, source, options)
    return written(outcome, data, target)


def converted(name: str, source: Source, options: _Options) -> tuple[Outcome, bytes | None]:
    """Convert `source` (a path, or the bytes of the file `name`) without writing it: the
    Outcome (its target still unset) and the output's bytes when converted. The entry point of
    a batch worker, local or on a cluster (facturflow.cluster)."""
    from .conversion import convert
    from .errors import ConversionError, FacturflowError, InputError

    try:
        result = convert(
            source,
            to=options.to,  # type: ignore[arg-type]
            profile=options.profile,
            pdf=options.pdf,
            lossy=options.lossy,
            lang=options.lang,  # type: ignore[arg-type]
            rules=options.rules,
            limits=options.limits,
        )
    except InputError as exc:
        return Outcome(name, None, "unreadable", exc.message), None
    except ConversionError as exc:
        return Outcome(name, None, "refused", exc.message), None
    except FacturflowError as exc:
        return Outcome(name, None, "refused", exc.message), None
    except Exception as exc:  # one broken input must not sink the batch
        message = f"internal error: {type(exc).__name__}: {exc}"
        return Outcome(name, None, "refused", message), None
    return Outcome(name, None, "converted", "", result.dropped, result.warnings), result.data


def written(outcome: Outcome, data: bytes | None, target: str) -> Outcome:
    """A converted outcome once its output is written to `target` (whole, atomically)."""
    if outcome.status != "converted" or data is None:
        return outcome
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, data)  # never half an invoice, never over a device
    except OSError as exc:
        return dataclasses.replace(
            outcome, status="unwritable", message=f"cannot write {target}: {exc.strerror or exc}",
            dropped=(), warnings=(),
        )
    return dataclasses.replace(outcome, target=target)


def not_converted(name: str, message: str) -> tuple[Outcome, bytes | None]:
    """The outcome of an input whose conversion could not finish (its worker died twice)."""
    return Outcome(name, None, "refused", f"LAYER-FAILED: {message}"), None


def _convert_star(job: tuple[str, str, _Options]) -> Outcome:
    return _convert_one(*job)


def _suffix(to: str) -> str:
    return ".pdf" if to == "facturx" else ".xml"


def plan_targets(
    source: Path, output: Path, to: str, *, folder: bool = False
) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a folder maps file by file, keeping sub-folders.

    Two inputs of a folder that would map to one output (`x.xml` and `x.pdf` both to `x.pdf`)
    keep their whole name instead (`x.xml.pdf`, `x.pdf.pdf`), so that no output is lost; an
    output that would still be shared, or that is one of the inputs, is a usage error.
    """
    from .inputs import expand_inputs

    if source.is_dir():
        inputs = list(expand_inputs([source]))
        pairs = [(path, (output / path.relative_to(source)).with_suffix(_suffix(to)))
                 for path in inputs]
        shared = Counter(target for _, target in pairs)
        pairs = [
            (path, target.with_name(path.name + _suffix(to)) if shared[target] > 1 else target)
            for path, target in pairs
        ]
        _refuse_clashes(pairs, inputs)
        return pairs
    if folder or output.is_dir():
        return [(source, output / (source.stem + _suffix(to)))]
    return [(source, output)]


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the batch and reports what
    # finished; a worker would only die with a traceback on the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's "SIGTERM as Ctrl-C"


def _refuse_clashes(pairs: list[tuple[Path, Path]], inputs: list[Path]) -> None:
    by_target: dict[Path, list[Path]] = {}
    for path, target in pairs:
        by_target.setdefault(target.resolve(), []).append(path)
    for target, sources in by_target.items():
        if len(sources) > 1:
            raise click.UsageError(
                f"{', '.join(map(str, sources))} would all be written to {target}; rename one"
            )
    resolved_inputs = {path.resolve() for path in inputs}
    for path, target in pairs:
        if target.resolve() in resolved_inputs and target.resolve() != path.resolve():
            raise click.UsageError(
                f"converting {path} would overwrite the input {target}; choose another --output"
            )


def infer_target(output: Path, to: str | None, *, folder: bool) -> str:
    """The target syntax: --to, checked against the output file's extension, or inferred from
    it (.pdf means Factur-X; .xml needs --to cii or --to ubl)."""
    if folder or output.is_dir():
        return to or "facturx"
    suffix = output.suffix.lower()
    if to is None:
        if suffix == ".pdf":
            return "facturx"
        if suffix == ".xml":
            raise click.UsageError(
                f"--output {output} is XML: say which with --to cii or --to ubl "
                "(or write a .pdf for Factur-X)"
            )
        raise click.UsageError(
            f"cannot tell the target syntax from --output {output}: give --to "
            "(facturx writes .pdf, cii and ubl write .xml)"
        )
    if suffix != _suffix(to):
        raise click.UsageError(
            f"--to {to} writes a {_suffix(to)} file, but --output is {output}; "
            f"name it {output.with_suffix(_suffix(to)).name} or change --to"
        )
    return to


def check_visual(visual: Path) -> bytes:
    """The bytes of the --pdf visual, or a usage error naming it when it is not a usable PDF."""
    from .errors import FacturflowError
    from .facturx import unembedded_fonts

    try:
        data = visual.read_bytes()
        unembedded_fonts(data)  # parses every page: a broken PDF fails here, not mid-batch
    except OSError as exc:
        raise click.UsageError(f"--pdf {visual}: cannot read it: {exc.strerror or exc}") from None
    except FacturflowError as exc:
        raise click.UsageError(f"--pdf {visual} is not a usable PDF: {exc.message}") from None
    return data


def _run(jobs_list: list[tuple[str, str, _Options]], jobs: int) -> Iterator[Outcome]:
    """Outcomes in input order. On Ctrl-C, the files not started are cancelled, the ones being
    converted finish (their output is written whole), all finished ones are yielded, and the
    KeyboardInterrupt goes on to the caller."""
    if jobs == 1 or len(jobs_list) <= 1:
        for job in jobs_list:
            yield _convert_star(job)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(jobs_list)), mp_context=context, initializer=_ignore_sigint
    )
    futures = [pool.submit(_convert_star, job) for job in jobs_list]
    given = 0
    try:
        for future in futures:
            outcome = future.result()
            given += 1
            yield outcome
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)  # the running conversions finish and are reported below
        for future in futures[given:]:
            if future.done() and not future.cancelled() and future.exception() is None:
                yield future.result()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_on(
    executor: Any, jobs_list: list[tuple[str, str, _Options]], *, ship_bytes: bool | None = None
) -> Iterator[Outcome]:
    """Outcomes in input order, converted on `executor` (a dask.distributed Client or a
    concurrent.futures.Executor; see facturflow.cluster) and written here as they come."""
    from .cluster import Runner

    if not jobs_list:
        return
    options = jobs_list[0][2]
    runner = Runner(executor, converted, not_converted, options, limits=options.limits,
                    ship_bytes=ship_bytes)
    results = runner.run([source for source, _, _ in jobs_list])
    for (_, target, _), (outcome, data) in zip(jobs_list, results, strict=False):
        yield written(outcome, data, target)


@click.command("convert")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--output", "-o", "output_text", required=True, type=click.Path(),
              help="Output file, or folder (an existing one, or a path ending in '/'; "
                   "required when SOURCE is a folder). Missing folders are created.")
@click.option("--to", "to", type=click.Choice(["cii", "ubl", "facturx"]), default=None,
              help="Target syntax (default: from the --output extension, .pdf = facturx; "
                   "facturx for a folder). Must agree with a file --output's extension.")
@click.option("--profile", type=click.Choice(["en16931", "extended-ctc-fr"]), default=None,
              help="Target profile (default: the input's own when the target has it, "
                   "else en16931).")
@click.option("--pdf", "visual", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A PDF to wrap (Factur-X); default: render the invoice page.")
@click.option("--lang", type=click.Choice(["fr", "en"]), default="fr", show_default=True,
              help="Language of the rendered page.")
@click.option("--lossy", is_flag=True,
              help="Convert even when business terms would be dropped; list each one.")
@click.option("--rules", default=None, metavar="LIST",
              help="Rule sets the output is checked with, as in `validate --rules` ('+NAME' "
                   "adds to the default). Default: XSD, EN 16931, the target's profile rules, "
                   "and the French, XRechnung or Peppol rules when the invoice is in scope.")
@click.option("--french-rules", type=click.Choice(["fatal", "warning"]), default=None,
              help="Build of the French rules (BR-FR), as in `validate`.")
@click.option("--as-of", metavar="DATE", default=None,
              help="Apply the French rules build in force on DATE (YYYY-MM-DD), as in `validate`.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes for a folder (default: all cores).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", envvar="FACTURFLOW_SCHEDULER",
              default=None,
              help="Convert on the dask.distributed cluster of this scheduler instead of local "
                   "worker processes (pip install 'facturflow[dask]'); the outputs are written "
                   "here. Also $FACTURFLOW_SCHEDULER.")
@click.option("--ship-bytes/--shared-paths", "ship_bytes", default=None,
              help="With --scheduler: send the inputs' bytes to the workers, or only their "
                   "paths (the workers see this file system). Default: a probe decides.")
@limit_options
def convert_command(
    source: Path,
    output_text: str,
    to: str | None,
    profile: str | None,
    visual: Path | None,
    lang: str,
    lossy: bool,
    rules: str | None,
    french_rules: str | None,
    as_of: str | None,
    jobs: int | None,
    scheduler: str | None = None,
    ship_bytes: bool | None = None,
    max_size: int | None = None,
    max_nodes: int | None = None,
) -> None:
    """Convert an invoice (or every invoice in a folder) to CII, UBL or Factur-X PDF/A-3.

    Each output is validated before it is written (with the rules `validate` would choose, or
    --rules); a conversion that would be invalid or drop business terms fails (unless --lossy
    for dropped terms) and is listed in the summary, each failing rule marked as a source defect
    (it fails on the input too) or a conversion defect (on the output only).
    """
    note_local_only(scheduler, "jobs")
    try:
        selection = (
            rule_selection(rules, [], french_rules, as_of)
            if rules is not None or french_rules is not None or as_of is not None
            else None
        )
        _convert(source, output_text, to, profile, visual, lang, lossy, jobs, selection,
                 (scheduler, ship_bytes), cli_limits(max_size, max_nodes))
    except KeyboardInterrupt:  # before the batch started: nothing to report
        click.echo("interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)


def _convert(
    source: Path,
    output_text: str,
    to: str | None,
    profile: str | None,
    visual: Path | None,
    lang: str,
    lossy: bool,
    jobs: int | None,
    rules: RuleSelection | None = None,
    cluster: tuple[str | None, bool | None] = (None, None),
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    output = Path(output_text)
    if source.is_dir() and output.exists() and not output.is_dir():
        raise click.UsageError(f"{output} is a file; a folder SOURCE needs a folder --output")
    # 'out/' names a folder to create, whatever its name looks like.
    folder = source.is_dir() or output_text.endswith(("/", os.sep))
    to = infer_target(output, to, folder=folder)
    if visual is not None and to != "facturx":
        raise click.UsageError("--pdf only applies to --to facturx")
    if visual is not None and source.is_dir():
        raise click.UsageError("--pdf wraps one visual around one invoice; SOURCE is a folder")
    pairs = plan_targets(source, output, to, folder=folder)
    if not pairs:
        raise click.UsageError(f"no invoice files (.xml, .pdf) found in {source}")
    for src, dst in pairs:
        if dst.exists() and dst.resolve() == src.resolve():
            raise click.UsageError(f"{dst} would overwrite its own input; choose another --output")
    options = _Options(
        to=to,
        profile=profile,
        pdf=check_visual(visual) if visual is not None else None,
        lossy=lossy,
        lang=lang,
        rules=rules,
        limits=limits,
    )
    work = [(str(src), str(dst), options) for src, dst in pairs]
    cores = os.cpu_count() or 1
    with cluster_executor(cluster[0]) as executor, cluster_errors():
        outcomes, interrupted = collect_until_interrupted(
            _run(work, jobs or cores) if executor is None
            else run_on(executor, work, ship_bytes=cluster[1]),
            len(work),
            "converting",
        )
    code = report_outcomes(outcomes)
    if interrupted:
        click.echo(f"interrupted: {len(outcomes)} of {len(work)} inputs processed", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    sys.exit(code)


def report_outcomes(outcomes: list[Outcome]) -> int:
    """Print what was written and a summary of failures (stderr); return the exit code."""
    for outcome in outcomes:
        if outcome.status == "converted":
            click.echo(f"{outcome.source} -> {outcome.target}")
            if outcome.dropped:
                click.echo(f"  dropped business terms: {', '.join(outcome.dropped)}")
            for warning in outcome.warnings:
                click.echo(f"  warning: {warning}", err=True)
    failed = [o for o in outcomes if o.status != "converted"]
    converted = len(outcomes) - len(failed)
    if len(outcomes) > 1 or failed:
        click.echo(f"converted {converted} of {len(outcomes)}; {len(failed)} failed", err=True)
    for outcome in failed:
        click.echo(f"  {outcome.source}: {outcome.status}: {outcome.message}", err=True)
    if any(o.status in ("unreadable", "unwritable") for o in outcomes):
        return EXIT_UNREADABLE
    return EXIT_INVALID if failed else EXIT_OK
