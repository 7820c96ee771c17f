"""The Dockerfile is the one the README shows, and its commands are the service's."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

from .conftest import REPO

README = (REPO / "docs" / "serve.md").read_text(encoding="utf-8")
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def _instructions(text: str) -> list[str]:
    """Instructions without comments, continuation lines joined, spaces normalised."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [" ".join(line.split()) for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _readme_dockerfile() -> str:
    blocks = re.findall(r"```dockerfile\n(.*?)```", README, re.S)
    assert len(blocks) == 1, "the README shows one Dockerfile"
    return blocks[0]


def _instruction(name: str) -> str:
    found = [line for line in _instructions(DOCKERFILE) if line.startswith(name + " ")]
    assert len(found) == 1, name
    return found[0][len(name) + 1:]


def test_the_readme_shows_the_dockerfile_as_it_is() -> None:
    assert _instructions(_readme_dockerfile()) == _instructions(DOCKERFILE)
    assert _instruction("FROM").startswith("python:") and "slim" in _instruction("FROM")


def test_what_the_dockerfile_copies_exists() -> None:
    for line in _instructions(DOCKERFILE):
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert "'.[serve]'" in _instruction("RUN") and "-c constraints.txt" in _instruction("RUN")


def test_the_readme_commands_build_and_run_this_image() -> None:
    build = re.findall(r"^docker build .*$", README, re.M)
    run = re.findall(r"^docker run .*$", README, re.M)
    assert build == ["docker build -t facturflow ."]
    assert len(run) == 1
    words = shlex.split(run[0])
    port = _instruction("EXPOSE")
    published = words[words.index("-p") + 1]
    assert published.startswith("127.0.0.1:") and published.endswith(f":{port}")
    assert words[words.index("-e") + 1] == "FACTURFLOW_SERVE_TOKEN"
    assert f"http://127.0.0.1:{port}/readyz" in _instruction("HEALTHCHECK")
    entrypoint = json.loads(_instruction("ENTRYPOINT"))
    assert entrypoint[:2] == ["facturflow", "serve"]
    assert entrypoint[entrypoint.index("--port") + 1] == port


def test_the_entrypoint_with_the_readmes_options_is_a_valid_serve_needing_a_token() -> None:
    entrypoint = json.loads(_instruction("ENTRYPOINT"))
    extra = shlex.split(re.findall(r"^docker run .*$", README, re.M)[0].split(" facturflow ", 1)[1])
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", *entrypoint[1:], *extra], capture_output=True,
        text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "FACTURFLOW_SERVE_TOKEN": ""},
    )
    # Off loopback inside the container: refused without the token, as the README says.
    assert result.returncode == 3, result.stderr
    assert "FACTURFLOW_SERVE_TOKEN" in result.stderr
