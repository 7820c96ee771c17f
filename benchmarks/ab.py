"""A/B measurements of single optimisations, interleaved document by document in one process.

The machine's speed drifts by tens of percent from minute to minute (other tenants), so two runs
made one after the other cannot tell a 5 % change; here both variants see every document in
turn, in a shuffled order, and each transformation is timed with `thread_time`.

    python -m benchmarks.ab rewrite path-dispatch sch-fx-en16931   # a derivation on / off
    python -m benchmarks.ab rewrite path-dispatch sch-fx-en16931 --lines 1000
    python -m benchmarks.ab parse                                  # Saxon: string / scratch file

`rewrite` compiles the derived stylesheet with and without the named rewrite, checks that both
give the same SVRL on every document, and prints the CPU per transformation of each; documents
are the corpus files the default rules apply the stylesheet to (or one generated invoice of
`--lines` lines). `parse` times Saxon's parse of every corpus invoice handed over as a string
and through the scratch file (facturflow.validation.schematron).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .run import corpus_root


def _documents(key: str, corpus: Path | None, lines: int | None) -> list[bytes]:
    from facturflow.detection import detect
    from facturflow.errors import FacturflowError
    from facturflow.rules import DEFAULT_RULE_SETS, plan

    from .generate import generate

    if lines:
        syntax = "ubl" if "ubl" in key else "cii"
        return [detect(generate(lines, syntax, seed=1)).xml]
    if corpus is None:
        raise SystemExit("no corpus (FACTURFLOW_CORPUS): give --lines N")
    out = []
    for path in sorted([*corpus.glob("ubl/*.xml"), *corpus.glob("cii/*.xml")]):
        try:
            document = detect(path)
        except FacturflowError:
            continue
        steps, _ = plan(document, DEFAULT_RULE_SETS)
        if any(s.artefact.key == key for s in steps):
            out.append(document.xml)
    return out


def _interleaved(variants: dict[str, Callable[[Any], Any]], items: list[Any],
                 rounds: int) -> dict[str, list[float]]:
    """Milliseconds per item of each variant, one list per round (items shuffled per round)."""
    rng = random.Random(1)
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        totals = dict.fromkeys(variants, 0.0)
        for item in rng.sample(items, len(items)):
            for name in rng.sample(list(variants), len(variants)):
                started = time.thread_time()
                variants[name](item)
                totals[name] += time.thread_time() - started
        for name, total in totals.items():
            per_round[name].append(total / len(items) * 1000)
    return per_round


def ab_rewrite(rewrite: str, key: str, rounds: int, lines: int | None) -> None:
    from facturflow.artefacts import builtin
    from facturflow.validation import schematron
    from facturflow.validation.derive import derive

    artefact = builtin(key)
    engine: Any = schematron._get_engine()

    def compiled(skip: tuple[str, ...]) -> Any:
        derived = derive(artefact.path, skip=skip)
        builder = engine.processor.new_document_builder()
        builder.set_base_uri(artefact.path.resolve().as_uri())
        node = builder.parse_xml(xml_text=derived.text.decode("utf-8"))
        executable = engine.xslt.compile_stylesheet(stylesheet_node=node)
        for name, path in derived.documents:
            executable.set_parameter(name, engine.processor.parse_xml(xml_file_name=str(path)))
        if rewrite not in derived.rewrites and not skip:
            raise SystemExit(f"{rewrite} does not apply to {artefact.name}")
        return executable

    def apply(executable: Any) -> Callable[[Any], str]:
        def run(node: Any) -> str:
            try:
                return str(executable.transform_to_string(xdm_node=node))
            except Exception as exc:  # the official stylesheets raise on some corpus files
                return f"error: {exc}"
        return run

    nodes = [schematron._parse_for_saxon(engine, xml)
             for xml in _documents(key, corpus_root(None), lines)]
    variants = {"with": apply(compiled(())), "without": apply(compiled((rewrite,)))}
    same = sum(variants["with"](n) == variants["without"](n) for n in nodes)
    print(f"{artefact.name}, {rewrite}: {len(nodes)} documents, identical SVRL on {same}")
    figures = _interleaved(variants, nodes, rounds)
    for name, values in figures.items():
        print(f"  {name:8s} {statistics.median(values):8.2f} ms per transformation "
              f"(rounds: {' '.join(f'{v:.2f}' for v in values)})")
    change = statistics.median(figures["with"]) / statistics.median(figures["without"]) - 1
    print(f"  change with {rewrite}: {change:+.0%}")


def ab_parse(rounds: int) -> None:
    from facturflow.validation import schematron

    engine: Any = schematron._get_engine()
    corpus = corpus_root(None)
    if corpus is None:
        raise SystemExit("no corpus (FACTURFLOW_CORPUS)")
    xmls = [x for x in _documents("sch-brfr-cii", corpus, None) + _documents("sch-brfr-ubl",
            corpus, None) if len(x) >= schematron._SCRATCH_MIN_BYTES]
    variants = {
        "string": lambda xml: engine.processor.parse_xml(xml_text=xml.decode("utf-8")),
        "file": lambda xml: schematron._parse_for_saxon(engine, xml),
    }
    figures = _interleaved(variants, xmls, rounds)
    print(f"Saxon parse of {len(xmls)} corpus invoices of "
          f"{schematron._SCRATCH_MIN_BYTES // 1024} KB and more:")
    for name, values in figures.items():
        print(f"  {name:8s} {statistics.median(values):8.3f} ms per document")
    change = statistics.median(figures["file"]) / statistics.median(figures["string"]) - 1
    print(f"  change through the scratch file: {change:+.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("rewrite", help="a derivation on / off")
    one.add_argument("rewrite")
    one.add_argument("stylesheet", help="built-in artefact key, e.g. sch-fx-en16931")
    one.add_argument("--lines", type=int, help="one generated invoice of N lines")
    one.add_argument("--rounds", type=int, default=4)
    two = sub.add_parser("parse", help="Saxon parse: string / scratch file")
    two.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    if args.what == "rewrite":
        ab_rewrite(args.rewrite, args.stylesheet, args.rounds, args.lines)
    else:
        ab_parse(args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
