"""`make test` gives the same result on every fresh machine and at every run: the environment is
pinned (constraints.txt, installed by `make install`, refreshed by `make lock`) and the property
tests run derandomized, while `make test-random` explores with a printed, replayable seed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^=\s]+)$")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_constraints_pin_every_dependency_within_its_open_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"]]
    for text in extras["test"]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "facturflow":  # the test set takes these extras
            assert requirement.extras <= extras.keys(), requirement.extras - extras.keys()
            requirements += [r for extra in sorted(requirement.extras) for r in extras[extra]]
        else:
            requirements.append(text)
    pins = _pins()
    assert "facturflow" not in pins  # the package itself is installed from the checkout
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]} outside {text!r}: run make lock"
        )
    # The package's own ranges stay open: pinning is the lock file's job.
    assert not any("==" in text for text in project["dependencies"] if "factur-x" not in text)


def _make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Variables of a calling make (make test SEED=... passes MAKEFLAGS) must not leak in.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "SEED"}}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_install_installs_the_pinned_versions_and_make_lock_resolves_afresh() -> None:
    install = [line for line in _make("-B", "install").splitlines() if "pip install" in line]
    assert len(install) == 2
    assert all("-c constraints.txt" in line for line in install)
    lock = _make("lock")
    assert "pip install --quiet -e '.[test]'" in lock and "-c constraints.txt" not in lock
    assert "pip freeze --all --exclude-editable" in lock and "constraints.txt" in lock


def test_make_test_random_runs_the_property_tests_with_one_printed_seed() -> None:
    chosen = _make("test-random", "SEED=1234")
    assert "-m property --hypothesis-profile=random --hypothesis-seed=1234" in chosen
    assert "make test-random SEED=1234" in chosen
    fresh = _make("test-random")
    seeds = set(re.findall(r"seed[= ](\d+)", fresh))
    assert len(seeds) == 1, fresh  # the seed run is the seed printed for replay
    assert f"--hypothesis-seed={seeds.pop()}" in fresh


def test_the_default_profile_is_derandomized_without_example_database() -> None:
    assert settings.default.database is None  # no run depends on what earlier runs found
    if settings.get_current_profile_name() == "random":  # pytest --hypothesis-profile=random
        assert not settings.default.derandomize
    else:
        assert settings.get_current_profile_name() == "derandomized"
        assert settings.default.derandomize


def _examples(*options: str) -> list[str]:
    """The examples hypothesis tries for one property test, in order, in a fresh process."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "tests/hostile/test_properties.py::test_detect_on_any_bytes",
            "--hypothesis-verbosity=verbose",
            *options,
        ],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "CI"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    examples = re.findall(r"data=(b.*?),\n\)", result.stdout)
    assert len(examples) > 10, result.stdout[-2000:]
    return examples


def test_derandomized_runs_repeat_and_a_seed_replays_a_random_run() -> None:
    assert _examples() == _examples()
    random = ("--hypothesis-profile=random", "--hypothesis-seed=7")
    assert _examples(*random) == _examples(*random)
    assert _examples(*random) != _examples("--hypothesis-profile=random", "--hypothesis-seed=8")


def test_hypothesis_tests_and_only_they_are_marked_property() -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"]
    result = subprocess.run(
        [*command, "-m", "property", "tests/hostile/test_properties.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    collected = set(re.findall(r"::(\w+)", result.stdout))
    assert "test_detect_returns_a_document_or_an_input_error" in collected
    assert "test_detect_on_any_bytes" in collected
    assert "test_what_surrounds_the_root_reaches_saxon" not in collected


def test_the_version_is_set_in_one_place() -> None:
    import importlib.metadata

    import facturflow

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("facturflow") == facturflow.__version__
