"""The Java reference run: Debian's Saxon-HE applying the official stylesheets in one warmed-up JVM.

Benchmark-only. `benchmarks/java/SaxonBench.java` is compiled at run time into a cache directory
keyed by the source's sha256 (no class files are committed). The Saxon jar comes from Debian's
libsaxonhe-java, installed with apt-get when absent (root only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "java" / "SaxonBench.java"
SAXON_JARS = (Path("/usr/share/java/Saxon-HE.jar"),)


class ReferenceUnavailable(RuntimeError):
    """The Java reference cannot run here (no JDK, no Saxon-HE jar); the reason is the message."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facturflow-bench" / "java"


def saxon_jar(install: bool = True) -> Path:
    for jar in SAXON_JARS:
        if jar.exists():
            return jar
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "libsaxonhe-java"],
            check=False,
            env=env,
            capture_output=True,
        )
        for jar in SAXON_JARS:
            if jar.exists():
                return jar
    raise ReferenceUnavailable("Saxon-HE jar not found (apt-get install libsaxonhe-java)")


def compiled_classes(jar: Path) -> Path:
    """Compile SaxonBench.java once per source version; returns the class directory."""
    javac = shutil.which("javac")
    if not javac or not shutil.which("java"):
        raise ReferenceUnavailable("no JDK (java/javac) on PATH")
    digest = hashlib.sha256(SOURCE.read_bytes() + str(jar.resolve()).encode()).hexdigest()[:16]
    out = cache_dir() / digest
    if (out / "SaxonBench.class").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [javac, "-nowarn", "-cp", str(jar), "-d", str(tmp), str(SOURCE)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ReferenceUnavailable(f"javac failed: {proc.stderr[-500:]}")
    # Atomic publish: concurrent runs never see half-written classes.
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@dataclass(frozen=True)
class JavaResult:
    raw: dict[str, Any]
    command: str

    @property
    def best_pass_seconds(self) -> float:
        return float(min(self.raw["pass_seconds"]))

    @property
    def median_pass_cpu_seconds(self) -> float:
        cpus = sorted(self.raw["pass_cpu_seconds"])
        return float(cpus[len(cpus) // 2])

    @property
    def compile_errors(self) -> dict[str, str]:
        errors: dict[str, str] = self.raw["compile_errors"]
        return errors


def harness_command(
    jobs: Sequence[tuple[Path, Sequence[Path]]], jobs_file: Path, heap: str, args: list[str]
) -> list[str]:
    """Write the jobs file; the java command line running the harness on it with `args`."""
    jar = saxon_jar()
    classes = compiled_classes(jar)
    jobs_file.write_text(
        "".join(f"{doc}\t{','.join(str(s) for s in sheets)}\n" for doc, sheets in jobs),
        encoding="utf-8",
    )
    return ["java", f"-Xmx{heap}", "-cp", f"{jar}{os.pathsep}{classes}", "SaxonBench",
            str(jobs_file), *args]


def run_reference(
    jobs: Sequence[tuple[Path, Sequence[Path]]],
    *,
    threads: int = 2,
    warmup_seconds: float = 30.0,
    min_warmup_passes: int = 2,
    repeat: int = 3,
    workdir: Path,
    heap: str = "2g",
    timeout: float | None = None,
) -> JavaResult:
    """Run the harness on (document, stylesheets) jobs; one JVM, `threads` worker threads."""
    cmd = harness_command(
        jobs, workdir / "java-jobs.tsv", heap,
        [str(threads), str(warmup_seconds), str(min_warmup_passes), str(repeat)],
    )
    m = run_measured(cmd, timeout=timeout)
    wall, code, peak_mb, stdout, stderr = m.wall, m.code, m.peak_rss_mb, m.stdout, m.stderr
    if code != 0:
        raise ReferenceUnavailable(f"java harness failed (exit {code}): {stderr[-800:]}")
    raw = json.loads(stdout.strip().splitlines()[-1])
    raw["process_wall_seconds"] = wall
    raw["peak_rss_mb"] = peak_mb
    raw["process_cpu_seconds"] = m.cpu
    return JavaResult(raw=raw, command=" ".join(cmd))


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    cpu: float  # user + system seconds of the process (all its threads)
    code: int
    peak_rss_mb: float
    stdout: str
    stderr: str


class InteractiveReference:
    """The harness in "stdin" mode: warmed once, then one timed pass per `one_pass()` call, so
    that the caller can interleave its own runs between the reference's (the machine's speed
    drifts; a ratio of runs made side by side is steadier than one of runs minutes apart)."""

    def __init__(
        self,
        jobs: Sequence[tuple[Path, Sequence[Path]]],
        *,
        threads: int,
        warmup_seconds: float,
        min_warmup_passes: int,
        workdir: Path,
        heap: str = "2g",
    ) -> None:
        self.command = harness_command(
            jobs, workdir / "java-jobs-interactive.tsv", heap,
            [str(threads), str(warmup_seconds), str(min_warmup_passes), "0", "stdin"],
        )
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the harness
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1,
        )
        self.warm = self._line()

    def _line(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read().decode("utf-8", "replace")[-800:]
            raise ReferenceUnavailable(f"java harness ended (exit {self._proc.returncode}): {tail}")
        data: dict[str, Any] = json.loads(line)
        return data

    def one_pass(self) -> tuple[float, float]:
        """(wall, CPU seconds of the whole JVM) of one pass over the batch."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("pass\n")
        self._proc.stdin.flush()
        data = self._line()
        return float(data["wall"]), float(data["cpu"])

    def finish(self) -> JavaResult:
        """End the harness; its summary (compile errors, runtime errors, every pass)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("end\n")
        self._proc.stdin.flush()
        raw = self._line()
        _, status, usage = os.wait4(self._proc.pid, 0)  # the JVM's peak RSS, as run_measured
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        raw["peak_rss_mb"] = usage.ru_maxrss / 1024.0
        self._stderr.close()
        return JavaResult(raw=raw, command=" ".join(self.command))

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def run_measured(
    cmd: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> Measured:
    """Run a command and measure it: wall and CPU time, exit code, peak RSS, output.

    os.wait4 gives the peak RSS of exactly this child (not of every child ever waited for).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            code=proc.returncode,
            peak_rss_mb=usage.ru_maxrss / 1024.0,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
