"""Saxon in real process setups: forked children, threads, batches, address-space limits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from facturflow import validate, validate_many

from .helpers import FIXTURES, VALID_CII, VALID_UBL


def test_validation_works_in_a_forked_child_after_the_parent_used_saxon() -> None:
    assert validate(VALID_CII).ok
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ok = validate(VALID_UBL).ok
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0


def test_validation_from_several_threads() -> None:
    paths = [VALID_CII, VALID_UBL] * 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: validate(p).ok, paths))
    assert all(results)


def test_batch_keeps_input_order_and_reports_every_file() -> None:
    paths = sorted(FIXTURES.rglob("*.xml"))
    reports = list(validate_many(paths, jobs=2))
    assert [r.path for r in reports] == [str(p) for p in paths]
    assert sum(r.error is not None for r in reports) == 2


def _run_with_rlimit(soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({soft}, {hard}))
        from facturflow import validate
        report = validate({str(VALID_CII)!r})
        failed = [f.message for f in report.findings if f.rule == "LAYER-FAILED"]
        print("OK" if report.ok else "FAILED:" + " | ".join(failed))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_a_low_hard_address_space_limit_fails_closed_with_a_clear_cause() -> None:
    limit = 4 * 1024**3
    result = _run_with_rlimit(limit, limit)
    assert result.returncode == 0, result.stderr  # no abort of the whole process
    assert result.stdout.startswith("FAILED:") and "RLIMIT_AS" in result.stdout


def test_a_low_soft_limit_is_raised_for_saxon() -> None:
    import resource

    result = _run_with_rlimit(4 * 1024**3, resource.RLIM_INFINITY)
    assert result.stdout.strip() == "OK", result.stdout + result.stderr


def test_a_file_over_the_time_limit_is_stopped_and_the_batch_goes_on(tmp_path: Path) -> None:
    # A rule pack whose stylesheet loops for a long time stands in for a pathological document.
    pack = tmp_path / "slow"
    pack.mkdir()
    (pack / "rulepack.toml").write_text(
        'name = "slow"\n[[schematron]]\nfile = "slow.xslt"\nsyntaxes = ["ubl-invoice"]\n'
    )
    (pack / "slow.xslt").write_text(
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><out><xsl:value-of select="sum(for $i in 1 to 300000, '
        '$j in 1 to 300000 return ($i * $j) mod 7)"/></out></xsl:template></xsl:stylesheet>'
    )
    started = time.monotonic()
    reports = list(
        validate_many(
            [VALID_CII, VALID_UBL, VALID_CII], rules="xsd", rule_packs=[pack], jobs=2, timeout=8
        )
    )
    assert time.monotonic() - started < 120
    assert [r.ok for r in reports] == [True, False, True]
    # Invalid (a fatal LAYER-FAILED finding), not unreadable: the CLI exits 1 for it.
    assert reports[1].error is None
    assert [f.rule for f in reports[1].fatal] == ["LAYER-FAILED"]
    assert "did not finish within 8 s" in reports[1].fatal[0].message
