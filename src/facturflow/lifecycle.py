"""The French e-invoicing lifecycle ("cycle de vie", codes 200-214) and what facturflow makes of it.

Every invoice sent through a PA collects lifecycle events, each a code of the reform:

    code  French                    English                   set by     mandatory  final
    200   Déposée                   Submitted                 issuer     yes        no
    201   Émise par la plateforme   Issued by the platform    issuer     no         no
    202   Reçue par la plateforme   Received by the platform  recipient  no         no
    203   Mise à disposition        Made available            recipient  no         no
    204   Prise en charge           Taken over                recipient  no         no
    205   Approuvée                 Approved                  recipient  no         yes: approved
    206   Approuvée partiellement   Partially approved        recipient  no         yes: approved
    207   En litige                 Disputed                  recipient  no         no
    208   Suspendue                 Suspended                 recipient  no         no
    209   Complétée                 Completed                 issuer     no         no
    210   Refusée                   Refused                   recipient  yes        yes: refused
    211   Paiement transmis         Payment sent              recipient  no         yes: paid
    212   Encaissée                 Payment received          issuer     yes        yes: paid
    213   Rejetée                   Rejected                  platform   yes        yes: rejected
    214   Visée                     Endorsed                  recipient  no         no

"set by" is the side whose platform emits the code: the issuer's PA or the issuer (200, 201,
209, 212), the recipient's PA or the recipient (202-208, 210, 211, 214), or either platform
when it rejects the file on technical grounds (213). The four statuses the reform makes
mandatory to report are Déposée, Refusée, Encaissée and Rejetée. `meaning(code)` gives one line
on each (MEANINGS); `describe_status(value, lang)` is how every command prints a status (a code,
an event or Qonto's einvoicing_status): the label with the code, e.g. "205 Approuvée".

Which outcomes are final (what `facturflow send --wait` waits for) is facturflow's choice, as
the reform does not define "final"; it is the point where the issuer knows what became of the
invoice and nothing more is expected from it:

- **approved** (205, 206): the recipient accepted the invoice (206: part of it); payment may
  follow but is the buyer's business, not the transmission's.
- **refused** (210): the recipient refused it; a corrected invoice must be issued.
- **rejected** (213): a platform rejected it (format, duplicate, unknown recipient...).
- **paid** (211, 212): payment sent or received, which implies acceptance even when no 205
  was reported.
- **not delivered** / **submission failed**: Qonto's `einvoicing_status` says so
  (`not_delivered`, `submission_failed`), events or not.

Not final: 200-204 (on its way, or received but not yet acted upon), 207 En litige and
208 Suspendue (the recipient will decide later), 209 Complétée (the issuer completed a
suspended invoice: the recipient decides again) and 214 Visée (an endorsement on the way to
approval). An invoice whose latest event is one of these is pending, even if Qonto's
`einvoicing_status` already says `approved`: how Qonto maps codes to that status is not
documented (API.md §6.2, §10 Q5), the codes are the reform's and more precise. A status of
`approved` with no event at all counts as approved.

The latest event (by timestamp, then code) decides, so a dispute after an approval (205 then
207) is pending again, and a payment after an approval (205 then 212) is paid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Literal

Lang = Literal["fr", "en"]
Direction = Literal["issuer", "recipient", "platform"]
FinalKind = Literal["approved", "refused", "rejected", "paid", "not_delivered",
                    "submission_failed"]
# Final outcomes that mean the invoice did not get through: `send --wait` exits 1 on them.
NEGATIVE: frozenset[str] = frozenset({"refused", "rejected", "not_delivered",
                                      "submission_failed"})


class LifecycleCode(IntEnum):
    """The lifecycle codes of the French e-invoicing reform."""

    DEPOSEE = 200
    EMISE = 201
    RECUE = 202
    MISE_A_DISPOSITION = 203
    PRISE_EN_CHARGE = 204
    APPROUVEE = 205
    APPROUVEE_PARTIELLEMENT = 206
    EN_LITIGE = 207
    SUSPENDUE = 208
    COMPLETEE = 209
    REFUSEE = 210
    PAIEMENT_TRANSMIS = 211
    ENCAISSEE = 212
    REJETEE = 213
    VISEE = 214


@dataclass(frozen=True)
class CodeInfo:
    """What one code means: labels, who sets it, whether the reform requires it, its outcome."""

    fr: str
    en: str
    direction: Direction
    mandatory: bool
    final: FinalKind | None
    einvoicing_status: str  # API.md §6.2's suggested mapping to Qonto's einvoicing_status
    meaning: str = ""  # one line, in English (MEANINGS)


C = LifecycleCode
CODES: Mapping[LifecycleCode, CodeInfo] = {
    C.DEPOSEE: CodeInfo("Déposée", "Submitted", "issuer", True, None, "submitted"),
    C.EMISE: CodeInfo("Émise par la plateforme", "Issued by the platform", "issuer", False,
                      None, "submitted"),
    C.RECUE: CodeInfo("Reçue par la plateforme", "Received by the platform", "recipient",
                      False, None, "submitted"),
    C.MISE_A_DISPOSITION: CodeInfo("Mise à disposition", "Made available", "recipient", False,
                                   None, "submitted"),
    C.PRISE_EN_CHARGE: CodeInfo("Prise en charge", "Taken over", "recipient", False, None,
                                "submitted"),
    C.APPROUVEE: CodeInfo("Approuvée", "Approved", "recipient", False, "approved", "approved"),
    C.APPROUVEE_PARTIELLEMENT: CodeInfo("Approuvée partiellement", "Partially approved",
                                        "recipient", False, "approved", "approved"),
    C.EN_LITIGE: CodeInfo("En litige", "Disputed", "recipient", False, None, "submitted"),
    C.SUSPENDUE: CodeInfo("Suspendue", "Suspended", "recipient", False, None, "submitted"),
    C.COMPLETEE: CodeInfo("Complétée", "Completed", "issuer", False, None, "approved"),
    C.REFUSEE: CodeInfo("Refusée", "Refused", "recipient", True, "refused", "declined"),
    C.PAIEMENT_TRANSMIS: CodeInfo("Paiement transmis", "Payment sent", "recipient", False,
                                  "paid", "approved"),
    C.ENCAISSEE: CodeInfo("Encaissée", "Payment received", "issuer", True, "paid", "approved"),
    C.REJETEE: CodeInfo("Rejetée", "Rejected", "platform", True, "rejected",
                        "submission_failed"),
    C.VISEE: CodeInfo("Visée", "Endorsed", "recipient", False, None, "approved"),
}

# One line each: what the code tells the issuer.
MEANINGS: Mapping[LifecycleCode, str] = {
    C.DEPOSEE: "The invoice was deposited on the issuer's platform.",
    C.EMISE: "The issuer's platform issued it onto the network.",
    C.RECUE: "The recipient's platform received it.",
    C.MISE_A_DISPOSITION: "The recipient's platform made it available to the recipient.",
    C.PRISE_EN_CHARGE: "The recipient took it over for processing.",
    C.APPROUVEE: "The recipient approved the invoice.",
    C.APPROUVEE_PARTIELLEMENT: "The recipient approved part of the invoice.",
    C.EN_LITIGE: "The recipient disputes the invoice; a decision will follow.",
    C.SUSPENDUE: "The recipient suspended it, waiting for something from the issuer.",
    C.COMPLETEE: "The issuer completed a suspended invoice; the recipient decides again.",
    C.REFUSEE: "The recipient refused the invoice; a corrected one must be issued.",
    C.PAIEMENT_TRANSMIS: "The recipient says the payment was sent.",
    C.ENCAISSEE: "The issuer received the payment.",
    C.REJETEE: "A platform rejected the file (format, duplicate, unknown recipient...).",
    C.VISEE: "The invoice was endorsed on its way to approval.",
}
CODES = {code: replace(info, meaning=MEANINGS[code]) for code, info in CODES.items()}

# Qonto's einvoicing_status values (API.md §6.2, third-party enum), in French and English.
STATUS_LABELS: Mapping[str, tuple[str, str]] = {
    "pending": ("En attente de dépôt", "Not yet deposited"),
    "submitted": ("Déposée sur le réseau", "Submitted to the network"),
    "approved": ("Approuvée", "Approved"),
    "declined": ("Refusée", "Declined"),
    "not_delivered": ("Non distribuée", "Not delivered"),
    "submission_failed": ("Échec du dépôt", "Submission failed"),
}

# Qonto einvoicing_status values that are final on their own (API.md §6.2).
STATUS_OUTCOME: Mapping[str, FinalKind] = {
    "declined": "refused",
    "not_delivered": "not_delivered",
    "submission_failed": "submission_failed",
}
OUTCOME_LABELS: Mapping[str, str] = {
    "approved": "approved", "refused": "refused", "rejected": "rejected by the platform",
    "paid": "payment received", "not_delivered": "not delivered",
    "submission_failed": "submission failed", "pending": "pending",
}


def code_of(value: object) -> LifecycleCode | None:
    """The lifecycle code of an event's `status_code` (an int, or a string such as "210")."""
    try:
        return LifecycleCode(int(str(value)))
    except ValueError:
        return None


def label(code: int | str, lang: Lang = "fr") -> str:
    """The code's label in French (default) or English; `str(code)` for an unknown code."""
    known = code_of(code)
    if known is None:
        return str(code)
    info = CODES[known]
    return info.fr if lang == "fr" else info.en


def meaning(code: int | str) -> str:
    """One line on what the code tells the issuer (English); "" for an unknown code."""
    known = code_of(code)
    return CODES[known].meaning if known is not None else ""


def describe_status(value: object, lang: Lang = "fr") -> str:
    """How every command prints a status: the label with the code.

    A lifecycle code (205, "205") gives "205 Approuvée"; a lifecycle event (a mapping with
    `status_code`) the same plus its reason ("210 Refusée: REFUS Refused by the recipient");
    a Qonto einvoicing_status ("submitted") gives "submitted (Déposée sur le réseau)"; None
    gives "none"; anything else is printed as it is.
    """
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        text = describe_status(value.get("status_code"), lang)
        parts = [str(value[k]) for k in ("reason", "reason_message") if value.get(k)]
        return text + (": " + " ".join(parts) if parts else "")
    if not isinstance(value, bool) and code_of(value) is not None:
        return f"{int(str(value))} {label(str(value), lang)}"
    text = str(value)
    labels = STATUS_LABELS.get(text)
    if labels is None:
        return text
    return f"{text} ({labels[0] if lang == 'fr' else labels[1]})"


def is_final(code: int | str) -> bool:
    """True for a code after which facturflow expects nothing more (see the module docstring)."""
    known = code_of(code)
    return known is not None and CODES[known].final is not None


def direction(code: int | str) -> Direction | None:
    known = code_of(code)
    return CODES[known].direction if known is not None else None


def is_mandatory(code: int | str) -> bool:
    known = code_of(code)
    return known is not None and CODES[known].mandatory


def einvoicing_status(code: int | str) -> str | None:
    """Qonto's einvoicing_status for a latest code, as API.md §6.2 suggests (undocumented)."""
    known = code_of(code)
    return CODES[known].einvoicing_status if known is not None else None


def latest_event(events: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The latest event by timestamp, then code (Qonto's order is not documented)."""
    ordered = sorted(events, key=lambda e: (str(e.get("timestamp") or ""),
                                            int(code_of(e.get("status_code")) or 0)))
    return ordered[-1] if ordered else None


@dataclass(frozen=True)
class Verdict:
    """Where an invoice stands: a final outcome, or `pending`."""

    outcome: FinalKind | Literal["pending"]
    code: int | None = None  # the lifecycle code that decided, when one did
    reason: str | None = None  # the event's reason and message, when given

    @property
    def final(self) -> bool:
        return self.outcome != "pending"

    @property
    def negative(self) -> bool:
        """Refused, rejected, not delivered or failed: the invoice did not get through."""
        return self.outcome in NEGATIVE

    def describe(self, lang: Lang = "fr") -> str:
        """E.g. "refused (210 Refusée): REFUS Refused by the recipient"."""
        text = OUTCOME_LABELS[self.outcome]
        if self.code is not None:
            text += f" ({self.code} {label(self.code, lang)})"
        return text + (f": {self.reason}" if self.reason else "")


def classify(events: Iterable[Mapping[str, Any]], status: str | None) -> Verdict:
    """The outcome of an invoice from its lifecycle events and Qonto's einvoicing_status."""
    latest = latest_event(events)
    code = code_of(latest.get("status_code")) if latest is not None else None
    reason = None
    if latest is not None:
        parts = [str(latest[k]) for k in ("reason", "reason_message") if latest.get(k)]
        reason = " ".join(parts) or None
    if code is not None and CODES[code].final is not None:
        return Verdict(CODES[code].final or "pending", int(code), reason)
    if status is not None and status in STATUS_OUTCOME:  # final, with or without an event
        return Verdict(STATUS_OUTCOME[status], None, reason)
    if status == "approved" and latest is None:
        return Verdict("approved")
    return Verdict("pending", int(code) if code is not None else None)


__all__ = ["CODES", "MEANINGS", "NEGATIVE", "OUTCOME_LABELS", "STATUS_LABELS", "CodeInfo",
           "Direction", "FinalKind", "LifecycleCode", "Verdict", "classify", "code_of",
           "describe_status", "direction", "einvoicing_status", "is_final", "is_mandatory",
           "label", "latest_event", "meaning"]
