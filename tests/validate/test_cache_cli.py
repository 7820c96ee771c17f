"""The verdict cache on the command line: `validate --cache DIR / --no-cache`,
FACTURFLOW_VERDICT_CACHE, the JSON `cached` field and the text summary, a folder that cannot be
written, and `facturflow cache info|clear|prune`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow.cli import main

from .helpers import FIXTURES, VALID_CII, VALID_UBL

INVALID = FIXTURES / "invalid" / "br-co-10-line-sum.xml"


def run(
    *args: str | Path, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin.decode() if stdin is not None else None,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )


def files_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    files = json.loads(result.stdout)["files"]
    assert isinstance(files, list)
    return files


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("??/*.json"))


def test_a_rerun_is_answered_from_the_cache_with_the_same_report(tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    args = ("validate", "--format", "json", "--cache", cache, VALID_CII, INVALID, VALID_UBL)
    cold, warm = run(*args), run(*args)
    assert cold.returncode == warm.returncode == 1, cold.stderr + warm.stderr
    assert warm.stderr == ""
    first, second = files_of(cold), files_of(warm)
    assert [f["cached"] for f in first] == [False, False, False]
    assert [f["cached"] for f in second] == [True, True, True]
    for a, b in zip(first, second, strict=True):
        a.pop("cached"), b.pop("cached")
        assert a == b  # path, verdict, layers, findings, rule sets, selection: identical
    assert len(entries(cache)) == 3
    # the text report says which files came from the cache
    text = run("validate", "--summary", "--cache", cache, VALID_CII, INVALID)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"{VALID_CII}: VALID") and "[cached]" in lines[0]
    assert "[cached]" in lines[1] and "BR-CO-10" in lines[1]
    assert lines[-1].endswith("; 2 from the verdict cache")


def test_a_renamed_copy_is_a_hit_named_as_given(tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    assert run("validate", "--cache", cache, INVALID).returncode == 1
    copy = tmp_path / "renamed.xml"
    shutil.copyfile(INVALID, copy)
    result = run("validate", "--format", "json", "--cache", cache, copy)
    (report,) = files_of(result)
    assert report["cached"] is True and report["path"] == str(copy)
    # standard input: the copy the CLI makes is keyed by content, the report says <stdin>
    piped = run(
        "validate", "--format", "json", "--cache", cache, "-", stdin=INVALID.read_bytes()
    )
    (from_stdin,) = json.loads(piped.stdout)["files"]
    assert from_stdin["cached"] is True and from_stdin["path"] == "<stdin>"


def test_no_cache_and_the_environment(tmp_path: Path) -> None:
    folder = tmp_path / "from-env"
    env = {"FACTURFLOW_VERDICT_CACHE": str(folder)}
    no_cache = run("validate", "--format", "json", "--no-cache", VALID_UBL, env=env)
    assert no_cache.returncode == 0 and files_of(no_cache)[0]["cached"] is False
    assert entries(folder) == []  # neither read nor written
    assert run("validate", VALID_UBL, env=env).returncode == 0
    assert len(entries(folder)) == 1  # the environment's folder by default
    again = run("validate", "--format", "json", VALID_UBL, env=env)
    assert files_of(again)[0]["cached"] is True
    ignored = run("validate", "--format", "json", "--no-cache", VALID_UBL, env=env)
    assert files_of(ignored)[0]["cached"] is False
    off = run("validate", "--format", "json", VALID_UBL, env={"FACTURFLOW_VERDICT_CACHE": "off"})
    assert files_of(off)[0]["cached"] is False
    # --cache wins over the environment's "off"
    named = run(
        "validate", "--format", "json", "--cache", folder, VALID_UBL,
        env={"FACTURFLOW_VERDICT_CACHE": "off"},
    )
    assert files_of(named)[0]["cached"] is True


def test_an_unwritable_cache_folder_is_one_warning_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run("validate", "--cache", blocker / "verdicts", VALID_CII)
    assert result.returncode == 0, result.stderr
    assert "VALID" in result.stdout
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith("warning: verdict cache: cannot write ")
    assert warning[0].endswith("validating without it") and "Traceback" not in result.stderr
    # a file named as the folder: the same, in words
    named_file = run("validate", "--cache", blocker, VALID_CII)
    assert named_file.returncode == 0
    assert named_file.stderr == (
        f"warning: verdict cache: {blocker} is not a folder; validating without it\n"
    )


def test_cache_info_clear_and_prune(tmp_path: Path) -> None:
    folder = tmp_path / "verdicts"
    runner = CliRunner()
    empty = runner.invoke(main, ["cache", "info", "--format", "json", "--cache", str(folder)])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.output)["entries"] == 0
    from facturflow import VerdictCache, validate

    cache = VerdictCache(folder)
    for index in range(3):
        copy = tmp_path / f"copy{index}.xml"
        copy.write_bytes(VALID_CII.read_bytes() + b"\n" * (index + 1))
        validate(copy, cache=cache)
    info = runner.invoke(main, ["cache", "info", "--cache", str(folder)])
    assert info.exit_code == 0 and f"{folder}: 3 entries" in info.output
    pruned = runner.invoke(main, ["cache", "prune", "--max-size", "1", "--cache", str(folder)])
    assert pruned.exit_code == 0, pruned.output
    assert "3 entries removed, 0 kept" in pruned.output
    for index in range(2):
        validate(tmp_path / f"copy{index}.xml", cache=cache)
    cleared = runner.invoke(main, ["cache", "clear", "--cache", str(folder)])
    assert cleared.exit_code == 0 and "2 entries removed" in cleared.output
    assert entries(folder) == []
    bad = runner.invoke(main, ["cache", "prune", "--max-size", "lots", "--cache", str(folder)])
    assert bad.exit_code == 2 and "--max-size" in bad.output
    # the default folder comes from the environment
    env_info = runner.invoke(
        main, ["cache", "info", "--format", "json"],
        env={"FACTURFLOW_VERDICT_CACHE": str(folder)},
    )
    assert json.loads(env_info.output)["folder"] == str(folder)


def test_a_warm_run_starts_no_worker_and_compiles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "verdicts"
    files = [VALID_CII, VALID_UBL, INVALID]
    assert run("validate", "--cache", cache, *files).returncode == 1  # cold, in its own process
    from facturflow.validation import pool, schematron

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm run started a worker or compiled a stylesheet")

    monkeypatch.setattr(pool.WorkerPool, "_new_slot", refuse)
    monkeypatch.setattr(schematron, "_compile", refuse)
    for jobs in ("1", "2"):
        args = ["validate", "--jobs", jobs, "--format", "json", "--cache", str(cache)]
        result = CliRunner().invoke(main, [*args, *map(str, files)])
        assert result.exit_code == 1, result.output
        assert [f["cached"] for f in json.loads(result.output)["files"]] == [True, True, True]


def test_a_cache_folder_shared_with_other_files_loses_none_of_them(tmp_path: Path) -> None:
    """`--cache DIR` naming a folder that holds other things (a project, a home folder):
    validate's prune, `cache prune` and `cache clear` remove only the cache's own files, not
    the files of two-letter subfolders (js/, db/, go/) nor anything else there."""
    folder = tmp_path / "project"
    others = [folder / "js" / "app.js", folder / "db" / "notes.txt", folder / "ab" / "x.json",
              folder / "ab" / ("ab" + "0" * 62 + ".json.bak")]
    for other in others:
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text("keep me\n")
        os.utime(other, (1_000_000, 1_000_000))  # older than any left-over temporary file
    result = run("validate", "--cache", folder, "--format", "json", INVALID)
    assert result.returncode == 1, result.stderr
    assert len(entries(folder)) - 1 == 1  # the entry written (ab/x.json aside)
    result = run("cache", "prune", "--cache", folder, "--max-size", "1")
    assert result.returncode == 0 and "1 entry removed" in result.stdout, result.stdout
    run("validate", "--cache", folder, "--format", "json", INVALID)
    result = run("cache", "info", "--cache", folder, "--format", "json")
    assert json.loads(result.stdout)["entries"] == 1
    result = run("cache", "clear", "--cache", folder)
    assert result.returncode == 0 and "1 entry removed" in result.stdout, result.stdout
    assert [other.read_text() for other in others] == ["keep me\n"] * len(others)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_cache_that_fails_mid_run_is_the_documented_warning_line(
    jobs: str, tmp_path: Path
) -> None:
    """The folder passes the check before the run, then an entry cannot be written (a full
    disk, here a shard that is a file): the same one-line warning as an unwritable folder
    (once per process at most), not Python's two-line warning naming facturflow's source."""
    folder = tmp_path / "cache"
    folder.mkdir()
    for shard in range(256):  # every entry's shard folder is a file: no entry can be stored
        (folder / f"{shard:02x}").write_text("")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(3):
        (inputs / f"{index}.xml").write_bytes(VALID_CII.read_bytes() + b"\n" * (index + 1))
    result = run("validate", "--jobs", jobs, "--cache", folder, "--summary", inputs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("VALID") == 3
    lines = result.stderr.strip().splitlines()
    assert lines and len(lines) <= int(jobs) + 1, result.stderr
    for line in lines:
        assert line.startswith("warning: verdict cache: cannot write "), result.stderr
        assert line.endswith("; validating without it"), result.stderr
    assert "CacheWarning" not in result.stderr and ".py:" not in result.stderr


def test_clear_and_prune_that_cannot_remove_entries_say_so(tmp_path: Path) -> None:
    """A cache whose entries cannot be removed (a read-only mount, another user's folder):
    `cache clear` used to say '0 entries removed' and exit 0 with every entry still there.
    Now one line saying how many could not be removed and why, exit 2."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    as_root = os.geteuid() == 0
    if as_root:  # root writes any folder: a read-only file system refuses even root
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                 capture_output=True, check=False)
        if mounted.returncode:
            pytest.skip("running as root where a tmpfs cannot be mounted")
    try:
        folder = mount / "cache"
        run("validate", "--cache", folder, "--format", "json", INVALID)
        (entry,) = entries(folder)
        if as_root:
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        else:
            entry.parent.chmod(0o500)
        for args in (("cache", "clear"), ("cache", "prune", "--max-size", "1")):
            result = run(*args, "--cache", folder)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            line = result.stderr.strip()
            assert len(line.splitlines()) == 1 and "1 entry could not be removed" in line, line
            assert entry.exists()
    finally:
        if as_root:
            subprocess.run(["umount", str(mount)], check=False)
        else:
            for shard in folder.iterdir():
                shard.chmod(0o700)


def test_cache_commands_on_a_file_say_it_is_not_a_folder(tmp_path: Path) -> None:
    """`cache info|clear|prune --cache FILE` used to report '0 entries' and exit 0, as if the
    cache were empty: one line saying it is not a folder, exit 2 (as documented for a folder
    that cannot be read)."""
    afile = tmp_path / "afile"
    afile.write_text("not a cache\n")
    for args in (("info",), ("clear",), ("prune",), ("info", "--format", "json")):
        result = run("cache", *args, "--cache", afile)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr == f"error: {afile}: is not a folder\n" and result.stdout == ""
    assert afile.read_text() == "not a cache\n"
    # a folder that does not exist yet is an empty cache, not an error
    assert run("cache", "info", "--cache", tmp_path / "none").returncode == 0
