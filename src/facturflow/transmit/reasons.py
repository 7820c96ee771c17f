"""The AFNOR reason codes for refusing a received e-invoice (status 210 Refusée).

Qonto requires one (`declined_reason_code`) to reject a French e-invoice since 1 September
2026 (API.md §5.9). The list is the one the reform's CDAR rules allow with status 210
(FNFE-MPE BR-FR-CDV-CL-09, rule MDT-113_210, in the FNFE artefacts), with a label in French
and English each.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Lang = Literal["fr", "en"]


class RefusalReason(StrEnum):
    """Why the recipient refuses an invoice (AFNOR XP Z12-012 codes allowed with 210)."""

    TX_TVA_ERR = "TX_TVA_ERR"
    MONTANTTOTAL_ERR = "MONTANTTOTAL_ERR"
    CALCUL_ERR = "CALCUL_ERR"
    NON_CONFORME = "NON_CONFORME"
    DOUBLON = "DOUBLON"
    DEST_ERR = "DEST_ERR"
    TRANSAC_INC = "TRANSAC_INC"
    EMMET_INC = "EMMET_INC"
    CONTRAT_TERM = "CONTRAT_TERM"
    DOUBLE_FACT = "DOUBLE_FACT"
    CMD_ERR = "CMD_ERR"
    ADR_ERR = "ADR_ERR"
    REF_CT_ABSENT = "REF_CT_ABSENT"

    def label(self, lang: Lang = "fr") -> str:
        fr, en = _LABELS[self]
        return fr if lang == "fr" else en


R = RefusalReason
_LABELS: dict[RefusalReason, tuple[str, str]] = {
    R.TX_TVA_ERR: ("Taux de TVA erroné", "Wrong VAT rate"),
    R.MONTANTTOTAL_ERR: ("Montant total erroné", "Wrong total amount"),
    R.CALCUL_ERR: ("Erreur de calcul de la facture", "Calculation error in the invoice"),
    R.NON_CONFORME: ("Mention légale manquante ou non conforme",
                     "Missing or non-compliant legal mention"),
    R.DOUBLON: ("Facture en doublon (déjà reçue)", "Duplicate invoice (already received)"),
    R.DEST_ERR: ("Destinataire erroné", "Wrong recipient"),
    R.TRANSAC_INC: ("Transaction inconnue", "Unknown transaction"),
    R.EMMET_INC: ("Émetteur inconnu", "Unknown issuer"),
    R.CONTRAT_TERM: ("Contrat terminé", "Contract ended"),
    R.DOUBLE_FACT: ("Double facturation", "Invoiced twice"),
    R.CMD_ERR: ("Référence de commande erronée ou absente",
                "Wrong or missing purchase order reference"),
    R.ADR_ERR: ("Adresse erronée", "Wrong address"),
    R.REF_CT_ABSENT: ("Référence contractuelle absente", "Missing contract reference"),
}


def parse_reason(code: str) -> RefusalReason:
    """The reason for `code` (case-insensitive); ValueError naming the valid codes otherwise."""
    try:
        return RefusalReason(code.strip().upper())
    except ValueError:
        raise ValueError(f"{code!r} is not an AFNOR refusal reason code; valid codes: "
                         + ", ".join(r.value for r in RefusalReason)) from None


__all__ = ["RefusalReason", "parse_reason"]
