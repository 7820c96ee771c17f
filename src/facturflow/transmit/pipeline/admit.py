"""Admission: the organisation, the pre-flight checks, and a source admitted to the outbox."""

from __future__ import annotations

from pathlib import Path

from ..errors import (
    AuthenticationError,
    NotFoundError,
    OrganisationUnknownError,
    PermissionDeniedError,
    QontoError,
    ValidationRejectedError,
)
from ..outbox import sha256
from ..qonto import (
    QontoClient,
)
from ..store import (
    OutboxStore,
)
from .lookup import _QontoNumbers, _twin_refusal, _unchecked
from .options import Outcome, SendOptions
from .sources import Rejected, _read, prepare


def _organization(client: QontoClient) -> str:
    """The organisation the outbox is keyed by: Qonto's id, and nothing else.

    Keying by anything else (the API key's login, the host) would give the same organisation
    a second, empty outbox, the state loss that sends invoices twice. An outage (5xx, no
    answer, 429 after the retries) propagates as what it is.
    """
    try:
        org = client.organization()
    except AuthenticationError:
        raise
    except (PermissionDeniedError, NotFoundError, ValidationRejectedError) as exc:
        raise OrganisationUnknownError(
            f"cannot read the organisation from Qonto (GET /v2/organization: {exc.message}); "
            "facturflow keys its record of sent invoices by the organisation's id and sends "
            "nothing without it: give the credentials the organization.read scope (OAuth) or use "
            "the organisation's API key, then run again"
        ) from exc
    ident = org.get("id")
    if not isinstance(ident, str) or not ident:
        raise OrganisationUnknownError(
            "Qonto's answer to GET /v2/organization has no organisation id; facturflow keys its "
            "record of sent invoices by it and sends nothing without it")
    return ident


def _sending_disabled(client: QontoClient) -> str | None:
    """The reason sending cannot work, or None (unknown counts as allowed: send will tell)."""
    try:
        settings = client.einvoicing_settings()
    except AuthenticationError:
        raise
    except QontoError:
        return None  # not knowable now (scope, outage): send_by_einvoice's 412 will tell
    if settings.sending_enabled:
        return None
    return f"e-invoicing sending is {settings.sending_status} for this organisation (pre-flight)"


class _Reachability:
    """Whether a buyer can receive e-invoices, when Qonto already knows the buyer as a client."""

    def __init__(self, client: QontoClient) -> None:
        self._client = client
        self._by_siren: dict[str, bool] | None = None

    def unreachable(self, siren: str | None) -> bool:
        if not siren:
            return False
        if self._by_siren is None:
            self._by_siren = {}
            try:
                for c in self._client.iter_clients():
                    key = c.get("siren") or str(c.get("e_invoicing_address") or "")[:9]
                    if key and isinstance(c.get("e_invoicing_reachable"), bool):
                        self._by_siren[str(key)] = bool(c["e_invoicing_reachable"])
            except AuthenticationError:
                raise
            except QontoError:
                self._by_siren = {}  # cannot be known now: send_by_einvoice's 412 will say
        return self._by_siren.get(siren) is False


def _admit(path: str, outbox: OutboxStore, options: SendOptions, reachable: _Reachability,
           blocked: set[str], claimed: set[str], numbers: _QontoNumbers | None = None,
           adopted: set[str] | None = None,
           adoptions: dict[str, tuple[str, bool]] | None = None) -> Outcome | str:
    """Put one input in the outbox (or find it there); an Outcome when it goes no further."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # SQLite and Qonto's upload both need the name as UTF-8 text
        return Outcome(path, "rejected", "the file name is not valid UTF-8: rename the file")
    try:
        data = _read(Path(path), options.limits)
    except OSError as exc:
        return Outcome(path, "rejected", f"cannot read: {exc.strerror or exc}")
    except Rejected as exc:
        return Outcome(path, "rejected", exc.reason)
    source_sha = sha256(data)
    # A verdict depends on the rules applied and on what is uploaded: both are in the key.
    variant = f"{options.upload}:{options.rules or 'default'}"
    known = outbox.lookup_source(source_sha, variant)
    if known is not None and known.verdict == "rejected":
        return Outcome(path, "rejected", known.reason)
    item = outbox.get(known.upload_sha256) if known and known.upload_sha256 else None
    if item is None:
        try:
            prepared = prepare(path, data, options.upload, options.rules, options.limits)
        except Rejected as exc:
            if exc.final:
                outbox.record_rejected(source_sha, variant, path, exc.reason)
            return Outcome(path, "rejected", exc.reason, findings=exc.findings)
        item = outbox.record_validated(
            source_sha=source_sha, source_path=path, upload_format=variant,
            file_name=prepared.file_name, upload=prepared.upload,
            invoice_number=prepared.invoice_number, buyer_siren=prepared.buyer_siren,
            content=prepared.content,
        )
    sha = item.upload_sha256
    if item.invoice_id is None and item.invoice_number:
        # The same invoice in other bytes (another format, a re-export) must not go out twice,
        # and another invoice under the same number must not go out at all.
        refusal = _twin_refusal(item.invoice_number, sha, item.content_fields,
                                outbox.by_number(item.invoice_number), claimed)
        if refusal is None and numbers is not None:
            # No record here: Qonto may still have it (a lost or other state folder).
            try:
                verdict = numbers.verdict(item.invoice_number, item.content_fields)
            except (AuthenticationError, PermissionDeniedError):
                raise
            except QontoError as exc:
                verdict = _unchecked(item.invoice_number, exc)
            if isinstance(verdict, str):
                refusal = verdict
            elif verdict is not None:
                invoice, submitted = verdict
                outbox.mark_adopted(sha, str(invoice["id"]), sent=submitted)
                if submitted and adopted is not None:
                    adopted.add(sha)
                item = outbox.get(sha) or item
                if item.invoice_id is None and adoptions is not None:
                    # A shared outbox refused it: another sender holds the invoice (its import
                    # is what Qonto has). Adopted when this run gets the claim, if still due.
                    adoptions[sha] = (str(invoice["id"]), submitted)
        if refusal is not None:
            blocked.add(sha)
            outbox.mark_failed([sha], refusal)
            return sha
    claimed.add(sha)
    if item.state != "sent" and item.invoice_id is None and reachable.unreachable(
        item.buyer_siren
    ):
        blocked.add(sha)
        outbox.mark_failed([sha], f"recipient {item.buyer_siren} is not reachable on "
                           "e-invoicing (pre-flight)")
    return sha
