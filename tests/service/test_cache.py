"""The verdict cache behind `facturflow serve` (--cache DIR, --no-cache), over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from .conftest import FIXTURES, OPENAPI, Service, documented

XML = {"Content-Type": "application/xml"}
INVALID = (FIXTURES / "invalid" / "br-co-10-line-sum.xml").read_bytes()


def _post(service: Service, name: str = "a.xml") -> httpx.Response:
    return documented(httpx.post(service.url + f"/v1/validate?name={name}", content=INVALID,
                                 headers=XML, timeout=120))


def _findings(answer: httpx.Response) -> list[tuple[str, str, str]]:
    return [(f["rule"], f["severity"], f["message"]) for f in answer.json()["files"][0]["findings"]]


def test_the_same_invoice_twice_is_answered_from_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "verdicts"
    service = Service(["--jobs", "1", "--cache", str(folder)])
    try:
        service.wait_ready()
        first = _post(service)
        assert first.status_code == 200 and first.headers["x-facturflow-cached"] == "false"
        assert first.json()["files"][0]["cached"] is False
        assert list(folder.rglob("*.json")), "the worker stored the verdict"
        second = _post(service, "b.xml")
        assert second.status_code == 200 and second.headers["x-facturflow-cached"] == "true"
        report = second.json()["files"][0]
        assert report["cached"] is True and report["path"] == "b.xml"
        assert second.headers["x-facturflow-verdict"] == "invalid"
        assert _findings(second) == _findings(first) and _findings(first)
        assert service.metric("facturflow_verdict_cache_hits_total") == 1
        assert service.metric("facturflow_verdict_cache_misses_total") == 1
        # Other report formats carry the header too.
        sarif = httpx.post(service.url + "/v1/validate", content=INVALID,
                           headers={**XML, "Accept": "application/sarif+json"})
        assert sarif.headers["x-facturflow-cached"] == "true"
    finally:
        assert service.stop() == 0


def test_the_environment_names_the_folder_as_for_validate(tmp_path: Path) -> None:
    folder = tmp_path / "env-verdicts"
    service = Service(["--jobs", "1"], env={"FACTURFLOW_VERDICT_CACHE": str(folder)})
    try:
        service.wait_ready()
        assert _post(service).headers["x-facturflow-cached"] == "false"
        assert _post(service).headers["x-facturflow-cached"] == "true"
        assert list(folder.rglob("*.json"))
    finally:
        service.stop()


def test_no_cache_never_answers_from_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "verdicts"
    service = Service(["--jobs", "1", "--no-cache"],
                      env={"FACTURFLOW_VERDICT_CACHE": str(folder)})
    try:
        service.wait_ready()
        for _ in range(2):
            answer = _post(service)
            assert answer.headers["x-facturflow-cached"] == "false"
            assert answer.json()["files"][0]["cached"] is False
        assert not list(folder.rglob("*.json")), "--no-cache writes nothing"
        assert "facturflow_verdict_cache_hits_total" not in httpx.get(
            service.url + "/metrics").text
    finally:
        service.stop()


def test_a_corrupt_entry_is_not_trusted_and_is_rewritten(tmp_path: Path) -> None:
    folder = tmp_path / "verdicts"
    service = Service(["--jobs", "1", "--cache", str(folder)])
    try:
        service.wait_ready()
        first = _post(service)
        entries = list(folder.rglob("*.json"))
        assert len(entries) == 1
        head, _, body = entries[0].read_bytes().partition(b"\n")
        # A report claiming the invoice valid, under the entry's own header: the checksum is off.
        entries[0].write_bytes(head + b"\n" + body.replace(b'"BR-CO-10"', b'"BR-XX-00"'))
        again = _post(service)
        assert again.headers["x-facturflow-cached"] == "false"
        assert _findings(again) == _findings(first)
        third = _post(service)
        assert third.headers["x-facturflow-cached"] == "true"  # the entry was rewritten
        assert _findings(third) == _findings(first)
    finally:
        service.stop()


def test_an_unwritable_folder_is_one_warning_and_the_service_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    service = Service(["--jobs", "1", "--cache", str(blocker)])
    try:
        service.wait_ready()
        assert _post(service).headers["x-facturflow-cached"] == "false"
        assert any("warning: verdict cache:" in line for line in service.lines)
    finally:
        service.stop()


def test_the_openapi_document_gives_the_cached_header() -> None:
    headers = OPENAPI["paths"]["/v1/validate"]["post"]["responses"]["200"]["headers"]
    assert headers["X-Facturflow-Cached"]["schema"]["enum"] == ["true", "false"]
