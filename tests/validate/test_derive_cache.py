"""The on-disk cache of derived stylesheets: same result as deriving, never stale or torn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facturflow.artefacts import builtin
from facturflow.validation import derive_cache
from facturflow.validation.derive import Derived, derive


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACTURFLOW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "derived"


def _no_derivation(path: Path) -> Derived:
    raise AssertionError(f"derived again: {path}")


def _same(a: Derived, b: Derived) -> bool:
    return (a.text, a.rewrites, a.documents, a.source_sha256) == (
        b.text,
        b.rewrites,
        b.documents,
        b.source_sha256,
    )


def test_a_cached_stylesheet_is_the_derived_one_and_is_not_derived_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = builtin("sch-fx-en16931").path
    first = derive_cache.cached_derive(path)
    assert _same(first, derive(path)) and first.documents
    assert len(list(cache.glob("*.xslt"))) == 1
    monkeypatch.setattr(derive_cache, "derive", _no_derivation)
    assert _same(derive_cache.cached_derive(path), first)


def test_a_corrupted_entry_is_a_miss_and_is_replaced(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = builtin("sch-brfr-cii").path
    good = derive_cache.cached_derive(path)
    (entry,) = cache.glob("*.xslt")
    data = bytearray(entry.read_bytes())
    data[-50] ^= 0x01
    entry.write_bytes(bytes(data))
    assert _same(derive_cache.cached_derive(path), good)
    entry.write_bytes(entry.read_bytes()[:1000])  # torn write
    assert _same(derive_cache.cached_derive(path), good)
    monkeypatch.setattr(derive_cache, "derive", _no_derivation)
    assert _same(derive_cache.cached_derive(path), good)  # the replaced entry is sound


@pytest.mark.parametrize("head", [b"[]", b"1", b'"text"', b"null"])
def test_an_entry_whose_head_is_not_a_json_object_is_a_miss(cache: Path, head: bytes) -> None:
    path = builtin("sch-brfr-cii").path
    good = derive_cache.cached_derive(path)
    (entry,) = cache.glob("*.xslt")
    entry.write_bytes(head + b"\n" + good.text)
    assert _same(derive_cache.cached_derive(path), good)


def test_a_changed_stylesheet_gets_its_own_entry(cache: Path, tmp_path: Path) -> None:
    official = builtin("sch-brfr-cii").path
    copy = tmp_path / official.name
    shutil.copyfile(official, copy)
    before = derive_cache.cached_derive(copy)
    copy.write_bytes(copy.read_bytes().replace(b"BR-FR-01_BT-1", b"BR-FR-01X_BT-1", 1))
    after = derive_cache.cached_derive(copy)
    assert after.source_sha256 != before.source_sha256
    assert b"BR-FR-01X" in after.text and _same(after, derive(copy))
    assert len(list(cache.glob("*.xslt"))) == 2


def test_the_cache_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTURFLOW_CACHE_DIR", "off")
    assert derive_cache.cache_dir() is None
    path = builtin("sch-brfr-ubl").path
    assert _same(derive_cache.cached_derive(path), derive(path))


def test_an_unwritable_cache_only_costs_the_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FACTURFLOW_CACHE_DIR", str(blocker))
    path = builtin("sch-brfr-ubl").path
    assert _same(derive_cache.cached_derive(path), derive(path))


def test_every_module_of_the_derive_package_is_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewrite edited in any module of the package gets new entries, not a stale one."""
    import facturflow.validation.derive as package

    modules = sorted(Path(package.__file__).parent.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "lookups.py", "xpath.py"}
    assert derive_cache._code_files() == modules
    copies = []
    for module in modules:
        shutil.copy(module, tmp_path / module.name)
        copies.append(tmp_path / module.name)
    monkeypatch.setattr(derive_cache, "_code_files", lambda: copies)
    before = derive_cache._digest_of_loaded_code()
    assert before == derive_cache._code_digest()  # the key of the code on disk
    with (tmp_path / "lookups.py").open("a") as stream:
        stream.write("# edited\n")
    assert derive_cache._digest_of_loaded_code() != before
