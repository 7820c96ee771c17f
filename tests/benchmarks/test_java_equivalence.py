"""Java Saxon-HE 9.9 on the compatible BR-FR UBL copy gives the official file's results.

For every corpus UBL document the default rules send to BR-FR-Flux2-Schematron-UBL.xslt, and for
probes made from corpus documents so that the rewritten templates fire (the corpus alone never
fires them), the SVRL of the Java reference running benchmarks/java_compat.py's copy must carry
the same failed asserts (count, ids, locations, tests, texts), successful reports and fired rules
as saxonche running the unmodified official file (benchmarks/equivalence.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchmarks.equivalence import check
from benchmarks.reference import SAXON_JARS
from benchmarks.run import corpus_root


def _skip_reason() -> str | None:
    if not (shutil.which("java") and shutil.which("javac")):
        return "needs a JDK (java and javac on PATH)"
    if not any(jar.exists() for jar in SAXON_JARS):
        return "needs Debian's Saxon-HE 9.9 jar (apt-get install libsaxonhe-java)"
    if corpus_root(None) is None:
        return "needs the corpus (FACTURFLOW_CORPUS or ../shared/corpus with MANIFEST.tsv)"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
def test_java_on_the_compatible_copy_matches_saxonche_on_the_official_file(
    tmp_path: Path,
) -> None:
    corpus = corpus_root(None)
    assert corpus is not None
    outcome = check(corpus, tmp_path)
    assert outcome.documents, "no corpus document goes to BR-FR UBL"
    assert outcome.rewritten_fired["probes"] > 0, "the probes never reach a rewritten template"
    assert outcome.equal, "\n".join([outcome.summary(), *outcome.problems[:10]])
