"""Every endpoint of `facturflow serve`, over real HTTP, against the CLI's own answers."""

from __future__ import annotations

import json
import subprocess
import sys
from xml.etree import ElementTree

import httpx
from openapi_spec_validator import validate as validate_spec

from .conftest import FIXTURES, OPENAPI, REPO, Service, documented

XML = {"Content-Type": "application/xml"}
PDF = {"Content-Type": "application/pdf"}
VALID_CII = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()
VALID_UBL = (FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml").read_bytes()
VALID_PDF = (FIXTURES / "valid" / "fr-invoice-en16931.pdf").read_bytes()
INVALID = (FIXTURES / "invalid" / "br-co-10-line-sum.xml").read_bytes()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *args], capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, timeout=300,
    )


def test_validate_answers_the_json_report_with_the_verdict(service: Service) -> None:
    valid = documented(httpx.post(service.url + "/v1/validate", content=VALID_CII, headers=XML))
    assert valid.status_code == 200 and valid.headers["x-facturflow-verdict"] == "valid"
    assert valid.headers["content-type"].startswith("application/json")
    assert valid.json()["files"][0]["valid"] is True
    invalid = documented(httpx.post(service.url + "/v1/validate?name=mine.xml", content=INVALID,
                                    headers=XML))
    assert invalid.status_code == 200 and invalid.headers["x-facturflow-verdict"] == "invalid"
    report = invalid.json()["files"][0]
    assert report["path"] == "mine.xml" and report["valid"] is False
    rules = {f["rule"] for f in report["findings"]}
    assert "BR-CO-10" in rules
    pdf = documented(httpx.post(service.url + "/v1/validate", content=VALID_PDF, headers=PDF))
    assert pdf.status_code == 200 and pdf.json()["files"][0]["container"] == "pdf"


def test_validate_findings_are_the_clis(service: Service) -> None:
    served = httpx.post(service.url + "/v1/validate", content=INVALID, headers=XML).json()
    cli = json.loads(_cli("validate", "--format", "json",
                          str(FIXTURES / "invalid" / "br-co-10-line-sum.xml")).stdout)
    assert [(f["rule"], f["severity"]) for f in served["files"][0]["findings"]] == [
        (f["rule"], f["severity"]) for f in cli["files"][0]["findings"]
    ]


def test_accept_picks_the_report_format(service: Service) -> None:
    url = service.url + "/v1/validate"
    sarif = documented(httpx.post(url, content=INVALID,
                                  headers={**XML, "Accept": "application/sarif+json"}))
    assert sarif.headers["content-type"].startswith("application/sarif+json")
    assert sarif.json()["version"] == "2.1.0"
    junit = documented(httpx.post(url, content=INVALID,
                                  headers={**XML, "Accept": "application/xml"}))
    assert junit.headers["content-type"].startswith("application/xml")
    assert ElementTree.fromstring(junit.content).tag in ("testsuites", "testsuite")
    html = documented(httpx.post(url, content=INVALID,
                                 headers={**XML, "Accept": "text/html;q=0.9, */*;q=0.1"}))
    assert html.headers["content-type"].startswith("text/html")
    assert b"BR-CO-10" in html.content and b"<html" in html.content.lower()
    refused = documented(httpx.post(url, content=INVALID,
                                    headers={**XML, "Accept": "image/png"}))
    assert refused.status_code == 406 and refused.json()["error"] == "NotAcceptable"


def test_rule_selection_by_query(service: Service) -> None:
    url = service.url + "/v1/validate"
    only_xsd = httpx.post(url + "?rules=xsd", content=INVALID, headers=XML).json()
    assert only_xsd["files"][0]["valid"] is True  # BR-CO-10 is a Schematron rule
    assert [layer["name"] for layer in only_xsd["files"][0]["layers"]] == ["xml", "xsd"]
    unknown = documented(httpx.post(url + "?rules=nope", content=INVALID, headers=XML))
    cli = _cli("validate", "--rules", "nope", str(FIXTURES / "invalid" / "br-co-10-line-sum.xml"))
    assert unknown.status_code == 400 and cli.returncode == 2
    body = unknown.json()
    assert body["error"] == "UnknownRuleSetError" and body["exit_code"] == 2
    # The CLI's message, naming the parameter rather than the option.
    assert cli.stderr.strip() == "error: --" + body["message"]
    typo = documented(httpx.post(url + "?rule=xsd", content=INVALID, headers=XML))
    assert typo.status_code == 400 and "'rule'" in typo.json()["message"]


def test_detect(service: Service) -> None:
    answer = documented(httpx.post(service.url + "/v1/detect?name=a.pdf", content=VALID_PDF,
                                   headers=PDF))
    cli = json.loads(_cli("detect", "--format", "json",
                          str(FIXTURES / "valid" / "fr-invoice-en16931.pdf")).stdout)[0]
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in ("container", "syntax", "profile")} == {
        k: cli[k] for k in ("container", "syntax", "profile")}
    assert body["path"] == "a.pdf"


def test_read_gives_the_model_as_read_does(service: Service) -> None:
    answer = documented(httpx.post(service.url + "/v1/read", content=VALID_UBL, headers=XML))
    cli = _cli("read", "--format", "json", str(FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml"))
    assert answer.status_code == 200
    assert answer.json() == json.loads(cli.stdout)


def test_convert(service: Service) -> None:
    url = service.url + "/v1/convert"
    pdf = documented(httpx.post(url + "?to=facturx", content=VALID_UBL, headers=XML,
                                timeout=300))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    # The result is a valid Factur-X, as the service itself says.
    check = httpx.post(service.url + "/v1/validate", content=pdf.content, headers=PDF)
    assert check.headers["x-facturflow-verdict"] == "valid"
    cii = documented(httpx.post(url + "?to=cii", content=VALID_UBL, headers=XML, timeout=300))
    assert cii.status_code == 200 and b"CrossIndustryInvoice" in cii.content
    missing = documented(httpx.post(url, content=VALID_UBL, headers=XML))
    assert missing.status_code == 400 and "to" in missing.json()["message"]
    wrong = documented(httpx.post(url + "?to=pdf", content=VALID_UBL, headers=XML))
    assert wrong.status_code == 400
    rules = documented(httpx.post(url + "?to=cii&rules=nope", content=VALID_UBL, headers=XML))
    assert rules.status_code == 400 and rules.json()["error"] == "UnknownRuleSetError"
    unreadable = documented(httpx.post(url + "?to=cii", content=b"<a/>", headers=XML,
                                       timeout=300))
    assert unreadable.status_code == 422
    assert unreadable.json()["error"] == "NotAnInvoiceError"


def test_artefacts_lists_rule_sets_and_hashes(service: Service) -> None:
    answer = documented(httpx.get(service.url + "/v1/artefacts", timeout=120))
    assert answer.status_code == 200
    body = answer.json()
    assert "en16931" in body["rule_sets"] and body["problems"] == []
    cli = json.loads(_cli("artefacts", "--format", "json").stdout)
    assert body["artefacts"] == cli["artefacts"]
    assert all(len(row["sha256"]) == 64 for row in body["artefacts"])


def test_probes_and_metrics(service: Service) -> None:
    assert documented(httpx.get(service.url + "/healthz")).json()["status"] == "ok"
    assert documented(httpx.get(service.url + "/readyz")).json()["status"] == "ready"
    httpx.post(service.url + "/v1/validate", content=VALID_CII, headers=XML)
    metrics = documented(httpx.get(service.url + "/metrics"))
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    for name in ("facturflow_http_requests_total{",
                 "facturflow_http_request_duration_seconds_bucket{",
                 'facturflow_verdicts_total{verdict="valid"}',
                 "facturflow_worker_restarts_total ", "facturflow_queue_depth ",
                 "facturflow_in_flight "):
        assert name in text, name
    counted = 'facturflow_http_requests_total{endpoint="/v1/validate",method="POST",status="200"}'
    assert counted in text
    assert service.metric('facturflow_verdicts_total{verdict="valid"}') >= 1


def test_access_log_is_json_without_content_or_query(service: Service) -> None:
    httpx.post(service.url + "/v1/validate?name=secret-name.xml", content=VALID_CII, headers=XML)
    entries = [e for e in service.events("request") if e["path"] == "/v1/validate"]
    assert entries, service.lines[-5:]
    entry = entries[-1]
    assert {"method", "path", "status", "duration_ms", "bytes_in", "bytes_out", "verdict"} <= set(
        entry)
    assert entry["verdict"] in ("valid", "invalid") and entry["bytes_in"] == len(VALID_CII)
    log = "".join(service.lines)
    assert "secret-name" not in log and "Atelier" not in log  # no query, no invoice content


def test_openapi_document_is_valid_and_matches_the_routes(service: Service) -> None:
    validate_spec(OPENAPI)
    served = documented(httpx.get(service.url + "/openapi.json")).json()
    assert served == OPENAPI
    from starlette.routing import Route

    from facturflow.service.app import RESPONSES, Settings, create_app

    app = create_app(Settings())
    routes = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
              for m in (r.methods or ()) if m != "HEAD"}
    documented_ops = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert routes == documented_ops
    for path, ops in RESPONSES.items():
        for method, statuses in ops.items():
            assert sorted(OPENAPI["paths"][path][method.lower()]["responses"]) == sorted(
                str(s) for s in statuses), (path, method)


def test_unknown_route_and_method_are_json(service: Service) -> None:
    missing = httpx.get(service.url + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    wrong = httpx.get(service.url + "/v1/validate")
    assert wrong.status_code == 405 and wrong.json()["error"] == "MethodNotAllowed"
