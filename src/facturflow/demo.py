"""`make demo`: the whole pipeline on the bundled fixtures, as a user would type it.

Each step runs the real command line (`python -m facturflow ...`) and shows the command first,
so the demo doubles as a tour of the CLI. Sending goes to the built-in Qonto sandbox, which
`facturflow send` starts by itself when no Qonto configuration is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
OUT = ROOT / "out" / "demo"

# Steps: (title, arguments, exit codes that are expected for this step).
STEPS: list[tuple[str, list[str], set[int]]] = [
    ("1. Detect what each bundled invoice is",
     ["detect", "fixtures/valid"], {0}),
    ("2. Validate the valid fixtures (XSD + EN 16931/Factur-X + BR-FR + PDF checks; "
     "UBL and CII go to separate workers, each compiling one syntax's rules): one line a file",
     ["validate", "--summary", "fixtures/valid"], {0}),
    ("3. Validate broken invoices: the grouped text report (each rule once, with its count, "
     "locations and terms; fatal first), then the batch table of verdicts and rules",
     ["validate", "fixtures/invalid/br-co-10-line-sum.xml",
      "fixtures/invalid/br-fr-seller-siren-scheme.xml",
      "fixtures/invalid/pdf-xmp-level-mismatch.pdf", "fixtures/invalid/not-well-formed.xml"],
     {1, 2}),
    ("4. One run, four reports: only the invalid files on screen (-q), SARIF for code "
     "scanning, JUnit for CI test reports, HTML to open in a browser (first lines of the SARIF)",
     ["validate", "-q", "--report", "text", "--report", "sarif:out/demo/report.sarif",
      "--report", "junit:out/demo/junit.xml", "--report", "html:out/demo/report.html",
      "fixtures/invalid/br-co-10-line-sum.xml", "fixtures/invalid/pdf-xmp-level-mismatch.pdf",
      "fixtures/valid/fr-invoice-en16931.xml"], {1}),
    ("5. Convert a UBL invoice into a Factur-X PDF/A-3 (validated before it is written)",
     ["convert", "fixtures/valid/fr-invoice-ubl-en16931.xml", "-o",
      "out/demo/fr-invoice-ubl-en16931.pdf", "--to", "facturx"], {0}),
    ("6. Validate the Factur-X PDF just made",
     ["validate", "out/demo/fr-invoice-ubl-en16931.pdf"], {0}),
    ("7. Read it back as the EN 16931 model",
     ["read", "out/demo/fr-invoice-ubl-en16931.pdf", "--format", "text"], {0}),
    ("8. Send through Qonto (the built-in sandbox): validate, import, send, wait",
     ["send", "--state", "out/demo/state", "--wait", "--poll-interval", "0.2",
      "out/demo/fr-invoice-ubl-en16931.pdf", "fixtures/valid/fr-invoice-en16931.xml",
      "fixtures/invalid/br-co-10-line-sum.xml"], {1}),
    ("9. Sending again sends nothing twice (the outbox remembers)",
     ["send", "--state", "out/demo/state", "out/demo/fr-invoice-ubl-en16931.pdf",
      "fixtures/valid/fr-invoice-en16931.xml"], {0}),
    ("10. Status of everything sent, from the outbox",
     ["status", "--state", "out/demo/state"], {0}),
    ("11. The outbox: each entry, its state and its lifecycle outcome",
     ["outbox", "list", "--state", "out/demo/state"], {0}),
    ("12. A human-readable view of an invoice, words not codes (open out/demo/view.html)",
     ["render", "out/demo/fr-invoice-ubl-en16931.pdf", "-o", "out/demo/view.html",
      "--lang", "en"], {0}),
    ("13. A CDAR lifecycle message, checked against the D22B XSD and BR-FR-CDV",
     ["validate", "--summary", "fixtures/cdar/valid-deposited.xml"], {0}),
]


def _banner(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}", flush=True)


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    env = dict(os.environ)
    # The demo always uses the sandbox, even on a machine with Qonto credentials set.
    for key in list(env):
        if key.startswith("QONTO_"):
            del env[key]
    failures = 0
    for title, args, expected in STEPS:
        _banner(title)
        print("$ facturflow " + " ".join(args), flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "facturflow", *args], cwd=ROOT, env=env, check=False
        )
        if "sarif:out/demo/report.sarif" in args:
            sarif = OUT / "report.sarif"
            if sarif.is_file():
                print(f"{sarif.relative_to(ROOT)} (and out/demo/junit.xml):")
                print("\n".join(sarif.read_text(encoding="utf-8").splitlines()[:12]) + "\n  ...")
            report = OUT / "report.html"
            if report.is_file():
                print(f"HTML report (open it in a browser): {report}")
        status = "as expected" if result.returncode in expected else "UNEXPECTED"
        print(f"(exit code {result.returncode}: {status})")
        if result.returncode not in expected:
            failures += 1
    failures += serve_step(env)
    print("\nDemo finished: " + ("every step behaved as expected." if not failures
                                 else f"{failures} step(s) did not behave as expected."))
    return 1 if failures else 0


def serve_step(env: dict[str, str]) -> int:
    """Start `facturflow serve`, validate one invoice through it with curl, stop it; 1 when
    that did not go as expected."""
    import json
    import shlex
    import signal
    import time
    import urllib.request

    _banner("14. The HTTP service: start `facturflow serve`, validate one invoice with curl, "
            "stop it (SIGTERM)")
    args = ["serve", "--port", "0", "--jobs", "1"]
    print("$ facturflow " + " ".join(args) + " &", flush=True)
    service = subprocess.Popen([sys.executable, "-m", "facturflow", *args], cwd=ROOT,
                               env={**env, "FACTURFLOW_SERVE_TOKEN": ""},
                               stderr=subprocess.PIPE, text=True)
    assert service.stderr is not None
    url = ""
    for line in service.stderr:  # JSON log lines; the first says where it listens
        if '"event": "listening"' in line:
            url = json.loads(line)["url"]
            break
    if not url:
        print("(the service did not start: UNEXPECTED)")
        return 1
    ok = False
    try:
        invoice = "fixtures/valid/fr-invoice-en16931.xml"
        for _ in range(600):  # ready once its workers have compiled their stylesheets
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        command = ["curl", "-sS", "-H", "Content-Type: application/xml", "--data-binary",
                   f"@{invoice}", f"{url}/v1/validate"]
        if shutil.which("curl"):
            print("$ " + shlex.join(command), flush=True)
            answer = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
        else:  # no curl on this machine: the same request from Python
            print("(curl is not installed: the same request with urllib)")
            request = urllib.request.Request(
                f"{url}/v1/validate", data=(ROOT / invoice).read_bytes(),
                headers={"Content-Type": "application/xml"})
            with urllib.request.urlopen(request, timeout=300) as response:
                answer = response.read().decode()
        report = json.loads(answer)["files"][0]
        print(f"{invoice}: {'valid' if report['valid'] else 'INVALID'} "
              f"({report['container']}, {report['syntax']}, {report['profile']})")
        ok = report["valid"] is True
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"(the request failed: {exc})")
    finally:
        print(f"$ kill -TERM {service.pid}", flush=True)
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=120)
    ok = ok and code == 0
    print(f"(service stopped, exit code {code}: {'as expected' if ok else 'UNEXPECTED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
