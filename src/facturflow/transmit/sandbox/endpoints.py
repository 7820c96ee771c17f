"""The Qonto API routes the sandbox serves: OAuth, invoices, clients, files, registrations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ..fields import read_invoice_fields
from .wire import _fail, _iso, _money, _parse_time, _Reply, _same, _sniff, _uuid7, parse_multipart

if TYPE_CHECKING:
    from .core import Sandbox


class _Request(BaseHTTPRequestHandler):
    """What a route reads of its request (set by `_Handler._handle`) and how it reads a body."""

    sandbox: Sandbox
    trace_id: str
    body: bytes
    query_all: dict[str, list[str]]
    query: dict[str, str]

    def _json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError:
            raise _fail(400, "invalid_body", "body is not JSON") from None
        if not isinstance(value, dict):
            raise _fail(400, "invalid_body", "body must be a JSON object")
        return value

    def _paginate(self, key: str, items: list[dict[str, Any]], default: int) -> tuple[int, Any]:
        try:
            page = int(self.query.get("page", "1"))
            per_page = int(self.query.get("per_page", str(default)))
        except ValueError:
            raise _fail(422, "invalid_parameter", "page and per_page must be integers",
                        parameter="page") from None
        if page < 1 or not 1 <= per_page <= 100:
            raise _fail(422, "invalid_parameter", "page >= 1 and 1 <= per_page <= 100",
                        parameter="per_page")
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        meta = {"current_page": page, "next_page": page + 1 if page < pages else None,
                "prev_page": page - 1 if page > 1 else None, "total_pages": pages,
                "total_count": total, "per_page": per_page}
        return 200, {key: chunk, "meta": meta}

class _ApiRoutes(_Request):
    """The Qonto API's routes: one `r_<name>` method per entry of the route table."""

    # -- OAuth --------------------------------------------------------------------------------
    def r_oauth_token(self) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        form = {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        header = self.headers.get("Authorization") or ""
        if header[:6].lower() == "basic ":  # client_secret_basic (RFC 6749 §2.3.1)
            try:
                pair = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except ValueError:  # bad Base64 or bytes that are not UTF-8
                raise _Reply(401, {"error": "invalid_client"}) from None
            client_id, _, client_secret = pair.partition(":")
        if client_id != sb.client_id or not _same(client_secret, sb.client_secret):
            raise _Reply(401, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = d["codes"].pop(form.get("code", ""), None)
            if not code or code["expires"] < sb.now():
                raise _Reply(400, {"error": "invalid_grant"})
            return 200, sb._new_tokens(code["scopes"])
        if grant == "refresh_token":
            # Rotation: a refresh token works once.
            old = d["refresh_tokens"].pop(form.get("refresh_token", ""), None)
            if not old:
                raise _Reply(400, {"error": "invalid_grant"})
            return 200, sb._new_tokens(old["scopes"])
        raise _Reply(400, {"error": "unsupported_grant_type"})

    # -- Business API -------------------------------------------------------------------------
    def r_organization(self) -> tuple[int, Any]:
        org = self.sandbox.state.data["org"]
        return 200, {"organization": {"id": org["id"], "slug": org["slug"],
                                      "legal_name": "Sandbox SAS", "legal_country": "FR",
                                      "bank_accounts": []}}

    def r_settings(self) -> tuple[int, Any]:
        s = self.sandbox.state.data["settings"]
        return 200, {"sending_status": s["sending_status"],
                     "receiving_status": s["receiving_status"]}

    def r_bulk_import(self) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        parts = parse_multipart(self.headers.get("Content-Type", ""), self.body)
        files = [(name, data) for field_name, name, data in parts
                 if field_name in ("client_invoices", "client_invoices[]") and name is not None]
        if not files:
            raise _fail(422, "missing_files", "field client_invoices is required",
                        pointer="/client_invoices")
        if len(files) > 5:
            raise _fail(422, "too_many_files", "at most 5 files per request",
                        pointer="/client_invoices")
        parsed = []
        for index, (name, data) in enumerate(files):  # all-or-nothing: check everything first
            pointer = f"/client_invoices/{index}"
            if len(data) > sb.config.max_file_bytes:
                raise _fail(422, "file_too_large", f"{name} exceeds 5 MB", pointer=pointer)
            kind = _sniff(data)
            if kind is None or (kind == "application/xml" and not sb.config.accept_xml):
                raise _fail(422, "unsupported_file_type",
                            f"{name}: supported formats are PDF, JPEG, PNG", pointer=pointer)
            fields = read_invoice_fields(data, name) if kind in (
                "application/pdf", "application/xml") else None
            if kind == "application/xml" and fields is None:
                raise _fail(422, "invalid_file", f"{name} is not a UBL or CII invoice",
                            pointer=pointer)
            parsed.append((name, data, fields or {}))
        out = []
        for name, data, fields in parsed:
            sha = hashlib.sha256(data).hexdigest()
            existing = d["hashes"].get(sha)
            if existing:
                out.append({"invoice_id": existing, "file_name": name})
                continue
            inv_id = _uuid7()
            currency = fields.get("currency") or "EUR"
            total, total_cents = _money(fields.get("total"), currency)
            vat, vat_cents = _money(fields.get("vat"), currency)
            now = _iso(sb.now())
            client_id = sb._client_for(fields)
            client = d["clients"].get(client_id) if client_id else None
            d["client_invoices"][inv_id] = {
                "id": inv_id, "organization_id": sb.organization_id,
                "attachment_id": sb._attachment(data, name), "number": fields.get("number"),
                "status": "unpaid", "currency": currency, "total_amount": total,
                "total_amount_cents": total_cents, "vat_amount": vat,
                "vat_amount_cents": vat_cents, "issue_date": fields.get("issue_date"),
                "due_date": fields.get("due_date"), "created_at": now, "updated_at": now,
                "finalized_at": now, "file_name": name, "imported": True,
                "client": {"id": client["id"], "name": client["name"]} if client else None,
                "_sha": sha,
            }
            d["hashes"][sha] = inv_id
            out.append({"invoice_id": inv_id, "file_name": name})
        return 200, {"client_invoices": out}

    def r_send(self, id: str) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        invoice = d["client_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "client invoice not found")
        sends = d["sends"].setdefault(id, {"calls": 0, "submissions": 0})
        sends["calls"] += 1
        if sends["submissions"]:
            return 204, None  # already submitted: harmless repeat, no resubmission
        if d["settings"]["sending_status"] != "enabled":
            raise _fail(412, sb.config.not_activated_code, "e-invoicing sending is not enabled")
        client = d["clients"].get((invoice.get("client") or {}).get("id", ""))
        if client is None or not client.get("e_invoicing_reachable"):
            raise _fail(412, sb.config.not_reachable_code,
                        "the client cannot receive e-invoices")
        sends["submissions"] += 1
        sends["sent_at"] = sb.now()
        sends["outcome"] = d["outcomes"].get(invoice.get("number") or "", sb.config.outcome)
        return 204, None

    def r_get_client_invoice(self, id: str) -> tuple[int, Any]:
        if id not in self.sandbox.state.data["client_invoices"]:
            raise _fail(404, "not_found", "client invoice not found")
        return 200, {"client_invoice": self.sandbox._invoice_view(id, True)}

    def r_list_client_invoices(self) -> tuple[int, Any]:
        """API.md §5.6: filter[status] (comma-separated or repeated), filter[created_at_from|to],
        filter[updated_at_from|to] (ISO 8601, bounds included), exclude_imported, sort_by
        created_at:asc|desc (default desc), page, per_page."""
        sb = self.sandbox
        query = parse_qs(urlsplit(self.path).query)
        items = [sb._invoice_view(i, sb.config.list_includes_events)
                 for i in sb.state.data["client_invoices"]]
        statuses = {s for v in query.get("filter[status]", []) for s in v.split(",") if s}
        if statuses:
            items = [i for i in items if i["status"] in statuses]
        for name in ("created_at", "updated_at"):
            for bound in ("from", "to"):
                key = f"filter[{name}_{bound}]"
                if key not in self.query:
                    continue
                limit = _parse_time(self.query[key], key)
                items = [i for i in items if (_parse_time(i[name], name) >= limit if bound == "from"
                                              else _parse_time(i[name], name) <= limit)]
        exclude = self.query.get("exclude_imported", "false").lower()
        if exclude not in ("true", "false", "1", "0"):
            raise _fail(422, "invalid_parameter", "exclude_imported must be true or false",
                        parameter="exclude_imported")
        if exclude in ("true", "1"):
            items = [i for i in items if not i.get("imported")]
        sort = self.query.get("sort_by", "created_at:desc")
        if sort not in ("created_at:asc", "created_at:desc"):
            raise _fail(422, "invalid_parameter", "sort_by must be created_at:asc or "
                        "created_at:desc", parameter="sort_by")
        items.sort(key=lambda i: (_parse_time(i["created_at"], "created_at"), i["id"]),
                   reverse=sort == "created_at:desc")
        return self._paginate("client_invoices", items, 100)

    def r_list_clients(self) -> tuple[int, Any]:
        items = sorted(self.sandbox.state.data["clients"].values(), key=lambda c: c["created_at"])
        return self._paginate("clients", [dict(c) for c in items], 100)

    def r_get_client(self, id: str) -> tuple[int, Any]:
        client = self.sandbox.state.data["clients"].get(id)
        if client is None:
            raise _fail(404, "not_found", "client not found")
        return 200, {"client": client}

    def r_list_supplier_invoices(self) -> tuple[int, Any]:
        items = sorted(self.sandbox.state.data["supplier_invoices"].values(),
                       key=lambda i: (i["created_at"], i["id"]))
        q = self.query_all
        wanted = {s for v in q.get("filter[status]", []) + q.get("filter[status][]", [])
                  for s in v.split(",") if s}
        if wanted:
            items = [i for i in items if i["status"] in wanted]
        sources = {s for v in q.get("filter[source]", []) + q.get("filter[source][]", [])
                   for s in v.split(",") if s}
        if sources:
            items = [i for i in items if i.get("source") in sources]
        for name, key, later in (("created_at_from", "created_at", True),
                                 ("created_at_to", "created_at", False),
                                 ("updated_at_from", "updated_at", True),
                                 ("updated_at_to", "updated_at", False)):
            raw = self.query.get(f"filter[{name}]")
            if raw:
                bound = _parse_time(raw, f"filter[{name}]")
                items = [i for i in items if (_parse_time(i[key], key) >= bound) == later
                         or _parse_time(i[key], key) == bound]
        return self._paginate("supplier_invoices", items, self.sandbox.config.supplier_per_page)

    def r_get_supplier_invoice(self, id: str) -> tuple[int, Any]:
        invoice = self.sandbox.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        return 200, {"supplier_invoice": invoice}

    def r_reject_supplier_invoice(self, id: str) -> tuple[int, Any]:
        from ..reasons import RefusalReason

        sb = self.sandbox
        invoice = sb.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        body = self._json_body()
        if invoice["status"] not in ("to_review", "to_approve", "awaiting_payment"):
            raise _fail(400, "invalid_status_transition",
                        f"a supplier invoice in status {invoice['status']} cannot be rejected")
        code, note = body.get("declined_reason_code"), body.get("declined_note")
        required = datetime.fromtimestamp(sb.now(), UTC) >= _parse_time(
            sb.config.reason_code_required_from, "reason_code_required_from")
        if not code and invoice.get("is_einvoice") and required:
            raise _fail(422, "blank", "declined_reason_code is required to reject a French "
                        "e-invoice", pointer="/declined_reason_code")
        if code and code not in {r.value for r in RefusalReason}:
            raise _fail(422, "inclusion", "declined_reason_code is not an AFNOR reason code",
                        pointer="/declined_reason_code")
        if note is not None and not isinstance(note, str):
            raise _fail(422, "invalid", "declined_note must be a string",
                        pointer="/declined_note")
        now = _iso(sb.now())
        invoice.update(status="rejected", declined_note=note, declined_reason_code=code,
                       updated_at=now)
        if invoice.get("is_einvoice"):  # the refusal travels back to the supplier as 210
            invoice["einvoicing_lifecycle_events"] = [
                *invoice.get("einvoicing_lifecycle_events", []),
                {"status_code": 210, "reason": code, "reason_message": note, "timestamp": now}]
        sb.state.data["supplier_invoices"][id] = invoice  # set again: journaled (see _Tracked)
        return 200, {"supplier_invoice": invoice}

    def r_pay_supplier_invoice(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        invoice = sb.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        body = self._json_body()
        if invoice["status"] in ("rejected", "archived", "discarded"):
            raise _fail(400, "invalid_status_transition",
                        f"a supplier invoice in status {invoice['status']} cannot be paid")
        raw = body.get("payment_date") or _iso(sb.now())[:10]
        if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise _fail(422, "invalid", "payment_date must be a date (YYYY-MM-DD)",
                        pointer="/payment_date")
        if raw > _iso(sb.now())[:10]:
            raise _fail(422, "invalid", "payment_date cannot be in the future",
                        pointer="/payment_date")
        now = _iso(sb.now())
        first = invoice["status"] != "paid"
        invoice.update(status="paid", payment_date=raw, updated_at=now)
        if first and invoice.get("is_einvoice"):  # the buyer's side reports 211
            invoice["einvoicing_lifecycle_events"] = [
                *invoice.get("einvoicing_lifecycle_events", []),
                {"status_code": 211, "reason": None, "reason_message": None, "timestamp": now}]
        sb.state.data["supplier_invoices"][id] = invoice  # set again: journaled (see _Tracked)
        return 200, {"supplier_invoice": invoice}

    def _signature(self, attachment_id: str, expires: int) -> str:
        key = self.sandbox.state.data["org"]["signing_key"].encode()
        return hmac.new(key, f"{attachment_id}:{expires}".encode(), "sha256").hexdigest()

    def r_get_attachment(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        attachment = sb.state.data["attachments"].get(id)
        if attachment is None:
            raise _fail(404, "not_found", "attachment not found")
        expires = int(sb.now() + 1800)  # signed URLs live 30 minutes (API.md §5.10)
        signature = self._signature(id, expires)
        url = f"{sb.base_url}/_files/{id}?expires={expires}&signature={signature}"
        return 200, {"attachment": {
            "id": id, "created_at": attachment["created_at"], "file_name": attachment["file_name"],
            "file_size": str(attachment["size"]), "file_content_type": attachment["content_type"],
            "url": url, "probative_attachment": {"status": "unavailable"}}}

    def r_download(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        attachment = sb.state.data["attachments"].get(id)
        try:
            expires = int(self.query.get("expires", "0"))
        except ValueError:
            expires = 0
        if attachment is None or not _same(
            self.query.get("signature", ""), self._signature(id, expires)
        ) or expires < sb.now():
            raise _Reply(403, b"<Error>AccessDenied</Error>", {"Content-Type": "application/xml"})
        raise _Reply(200, sb.state.get_file(attachment["sha"]),
                     {"Content-Type": attachment["content_type"]})

    # -- Onboarding API -----------------------------------------------------------------------
    def r_create_registration(self) -> tuple[int, Any]:
        sb = self.sandbox
        body = self._json_body()
        flow = body.get("legal_flow")
        raw_user, raw_org = body.get("partner_user"), body.get("organization")
        user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        organization: dict[str, Any] = raw_org if isinstance(raw_org, dict) else {}
        if not isinstance(flow, str) or not flow:
            raise _fail(422, "blank", "legal_flow is required", pointer="/legal_flow")
        if not user.get("email"):
            raise _fail(422, "blank", "partner_user.email is required",
                        pointer="/partner_user/email")
        if flow == "existing_company" and not re.fullmatch(
            r"\d{9}", str(organization.get("legal_number", ""))
        ):
            raise _fail(422, "invalid", "organization.legal_number must be a SIREN",
                        pointer="/organization/legal_number")
        reg_id = str(uuid.uuid4())
        now = _iso(sb.now())
        registration = {
            "_created": sb.now(), "id": reg_id, "legal_flow": flow,
            "flow": {"type": "seamless", "breakdown": []},
            "status": "pending", "redirection_link": f"{sb.base_url}/onboarding/{reg_id}",
            "partner_redirect_url": body.get("partner_redirect_url"), "created_at": now,
            "updated_at": now, "locale": body.get("locale", "fr"), "partner_user": user,
            "organization": {"id": None, "legal_number": organization.get("legal_number")},
            "stakeholders": [],
        }
        sb.state.data["registrations"][reg_id] = registration
        return 201, {"registration": sb.registration_view(reg_id)}

    def r_list_registrations(self) -> tuple[int, Any]:
        sb = self.sandbox
        items = sorted(sb.state.data["registrations"].values(), key=lambda r: r["created_at"])
        return self._paginate("registrations", [sb.registration_view(r["id"]) for r in items],
                              25)

    def r_get_registration(self, id: str) -> tuple[int, Any]:
        if id not in self.sandbox.state.data["registrations"]:
            raise _fail(404, "not_found", "registration not found")
        return 200, {"registration": self.sandbox.registration_view(id)}
