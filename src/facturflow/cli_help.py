"""What every command's --help ends with: its exit codes (when its docstring does not already
say them) and two or three examples, kept in one place so that they stay consistent.

`document(command, path)` sets the epilog of a command and of its subcommands; the main group
calls it for each command it returns. tests/test_help.py checks that every command is covered.
"""

from __future__ import annotations

from typing import Any

import click

# The codes shared by the commands that talk to Qonto (transmit/cli.py `command_errors`).
_QONTO_CODES = (
    "2 a usage error; 3 configuration (QONTO_* settings missing, credentials refused, an "
    "unknown id, or a postgresql:// outbox refusing the credentials); 4 Qonto unreachable, "
    "rate limiting or failing; 6 the state folder (or outbox database) unusable or locked; "
    "130 Ctrl-C."
)

# Command path (without "facturflow") -> (exit codes, or None when the docstring has them;
# examples).
HELP: dict[tuple[str, ...], tuple[str | None, tuple[str, ...]]] = {
    (): (
        "0 success (every input valid); 1 an invalid input or a failed send; 2 a usage error "
        "or an unreadable input; 3 configuration; 4 the service (Qonto) unreachable or failing; "
        "5 still pending (send --wait); 6 the state folder unusable; 130 Ctrl-C. Each "
        "command's --help details its own.",
        (
            "facturflow validate invoices/",
            "facturflow convert facture.xml --to facturx --pdf facture.pdf -o out/",
            "facturflow send --wait invoices/*.pdf",
        ),
    ),
    ("validate",): (
        None,
        (
            "facturflow validate facture.pdf",
            "facturflow validate -q --jobs 4 invoices/",
            "facturflow validate invoices/ --report text --report sarif:facturflow.sarif "
            "--report junit:junit.xml",
            "cat facture.xml | facturflow validate -",
            "facturflow validate --cache .verdicts invoices/",
            "facturflow validate --scheduler tcp://10.0.0.5:8786 --summary archive/",
        ),
    ),
    ("detect",): (
        "0 every input recognised; 2 an input that cannot be read or is not an invoice.",
        ("facturflow detect facture.pdf", "facturflow detect --format json invoices/"),
    ),
    ("extract",): (
        "0 the XML was written; 2 not a PDF with an embedded invoice, or the output cannot be "
        "written.",
        ("facturflow extract facture.pdf > factur-x.xml", "facturflow extract facture.pdf -o out/"),
    ),
    ("artefacts",): (
        "0 every artefact matches its pinned manifest; 1 a mismatch (listed on stderr).",
        ("facturflow artefacts", "facturflow artefacts --format json"),
    ),
    ("convert",): (
        "0 every conversion written; 1 a conversion refused (invalid output, or business terms "
        "dropped without --lossy); 2 a usage error or an unreadable input; 3 a malformed rules "
        "calendar, or a --scheduler that cannot be used (unreachable, Dask not installed); "
        "130 Ctrl-C.",
        (
            "facturflow convert facture.xml --to ubl -o facture-ubl.xml",
            "facturflow convert facture.xml --to facturx --pdf visuel.pdf -o facture.pdf",
            "facturflow convert invoices/ --to cii -o out/",
            "facturflow convert archive/ --to facturx -o out/ --scheduler tcp://10.0.0.5:8786",
        ),
    ),
    ("cache",): (
        "as for each subcommand (see `facturflow cache prune --help`).",
        ("facturflow cache info", "facturflow cache clear"),
    ),
    ("cache", "info"): (
        "0 shown.",
        ("facturflow cache info", "facturflow cache info --format json --cache .verdicts"),
    ),
    ("cache", "clear"): (
        "0 cleared; 2 the folder cannot be read.",
        ("facturflow cache clear", "facturflow cache clear --cache .verdicts"),
    ),
    ("cache", "prune"): (
        "0 pruned; 2 a --max-size that is not a size.",
        ("facturflow cache prune", "facturflow cache prune --max-size 50MB --cache .verdicts"),
    ),
    ("read",): (
        "0 the invoice was read; 2 it cannot be read.",
        ("facturflow read facture.pdf", "facturflow read --format json facture-ubl.xml"),
    ),
    ("render",): (
        "0 the view was written; 2 an input that cannot be read as an invoice, an output "
        "whose format cannot be told (.pdf, .html or .htm; or --format), or an output that "
        "cannot be written; 130 Ctrl-C.",
        (
            "facturflow render facture.pdf -o facture.html",
            "facturflow render facture-ubl.xml -o vue.pdf --lang en",
            "facturflow render facture.xml -o vue --format html",
        ),
    ),
    ("rules",): (
        "as for each subcommand (see `facturflow rules diff --help`).",
        ("facturflow rules calendar", "facturflow rules diff --from warning --to fatal invoices/"),
    ),
    ("rules", "calendar"): (
        "0 shown; 3 a malformed rules calendar in the config file.",
        ("facturflow rules calendar", "facturflow rules calendar --format json"),
    ),
    ("rules", "diff"): (
        None,
        (
            "facturflow rules diff --from warning --to fatal invoices/",
            "facturflow rules diff --from warning --to fatal --format json invoices/",
        ),
    ),
    ("send",): (
        "0 every invoice sent (and, with --wait, final and not refused); 1 an invoice invalid, "
        "refused or failed; 5 --wait gave up with invoices still pending; " + _QONTO_CODES,
        (
            "facturflow send --dry-run facture.pdf",
            "facturflow send facture.pdf",
            "facturflow send --wait --wait-timeout 900 invoices/",
        ),
    ),
    ("status",): (
        "0 no listed invoice failed or was refused; 1, 3, 4, 5, 6 and 130 as said above.",
        (
            "facturflow status",
            "facturflow status --refresh F-2026-0042",
            "facturflow status --watch --poll-interval 30",
        ),
    ),
    ("sandbox",): (
        None,
        ("facturflow sandbox --port 8765", "facturflow sandbox --fault-rate 0.1 --seed 7"),
    ),
    ("serve",): (
        "0 stopped by SIGTERM after the requests in flight; 2 a usage error (a bad option or "
        "rule pack, an address that cannot be bound); 3 --host off loopback without "
        "FACTURFLOW_SERVE_TOKEN, or the 'serve' extra not installed; 4 the service could not "
        "start; 130 Ctrl-C.",
        (
            "facturflow serve",
            "facturflow serve --port 0 --jobs 2 --request-timeout 10",
            "FACTURFLOW_SERVE_TOKEN=... facturflow serve --host 0.0.0.0 --max-size 20MB",
        ),
    ),
    ("doctor",): (
        "0 every check passed; 3 a configuration check failed (settings, credentials, "
        "organisation); 4 another check failed (Qonto unreachable, clock skew, recipient); "
        "2 a usage error; 130 Ctrl-C.",
        ("facturflow doctor", "facturflow doctor --recipient 123456782"),
    ),
    ("register",): (
        "0 the registration was created and its link printed; " + _QONTO_CODES,
        (
            "facturflow register --email compta@example.fr --siren 123456782",
            "facturflow register status --wait",
        ),
    ),
    ("register", "status"): (
        "0 completed (or, without --wait, shown); 5 --wait gave up before completion; "
        + _QONTO_CODES,
        ("facturflow register status", "facturflow register status --all --format json"),
    ),
    ("inbox",): (
        "as `inbox list` without a subcommand; see each subcommand's --help.",
        ("facturflow inbox", "facturflow inbox sync --to compta/", "facturflow inbox show ID"),
    ),
    ("inbox", "list"): (
        "0 listed; 1 a downloaded invoice is invalid (--validate); " + _QONTO_CODES,
        ("facturflow inbox list", "facturflow inbox list --download in/ --validate"),
    ),
    ("inbox", "sync"): (
        "0 every new invoice copied; 1 an invoice could not be copied (listed); "
        + _QONTO_CODES + " A second run continues where an interrupted one stopped.",
        (
            "facturflow inbox sync --to compta/",
            "facturflow inbox sync --to compta/ --since 2026-01-01",
        ),
    ),
    ("inbox", "show"): (
        "0 shown; " + _QONTO_CODES,
        ("facturflow inbox show ID", "facturflow inbox show ID --format json"),
    ),
    ("inbox", "reject"): (
        "0 refused; 1 Qonto refused the change; " + _QONTO_CODES,
        ("facturflow inbox reject ID --reason MONTANTTOTAL_ERR --note 'PO says 1 200.00'",),
    ),
    ("inbox", "mark-paid"): (
        "0 marked paid; 1 Qonto refused the change; " + _QONTO_CODES,
        ("facturflow inbox mark-paid ID", "facturflow inbox mark-paid ID --date 2026-03-01"),
    ),
    ("outbox",): (
        "as for each subcommand.",
        ("facturflow outbox list --failed", "facturflow outbox retry F-2026-0042"),
    ),
    ("outbox", "list"): (
        "0 listed; 2 a usage error; 6 the outbox unusable or locked; 130 Ctrl-C.",
        ("facturflow outbox list", "facturflow outbox list --failed"),
    ),
    ("outbox", "show"): (
        "0 shown; 2 no such entry (or REF matches several) or a usage error; 6 the outbox "
        "unusable or locked.",
        ("facturflow outbox show F-2026-0042", "facturflow outbox show facture.pdf --format json"),
    ),
    ("outbox", "retry"): (
        "as `send` for the one invoice: 0 sent; 1 invalid, failed or refused; 2 no such entry, "
        "already sent, or its source file missing; " + _QONTO_CODES,
        ("facturflow outbox retry F-2026-0042",),
    ),
    ("outbox", "forget"): (
        "0 forgotten; 1 refused: the invoice was sent (or Qonto has it as sent); 2 no such "
        "entry, not confirmed, or a usage error; " + _QONTO_CODES,
        ("facturflow outbox forget F-2026-0042", "facturflow outbox forget facture.pdf --yes"),
    ),
    ("outbox", "check"): (
        "0 the outbox and its stored uploads are sound; 6 a problem found (each said with how "
        "to recover) or the outbox unusable.",
        ("facturflow outbox check", "facturflow outbox check --format json"),
    ),
    ("outbox", "migrate"): (
        "0 copied (or already there); 2 a usage error (--to not a postgresql:// URL); 3 the "
        "database refuses the credentials, or psycopg is missing; 6 no SQLite outbox in the "
        "folder, the database unreachable, or rows there that differ (nothing copied).",
        ("facturflow outbox migrate --to postgresql://facturflow@db.internal/facturflow",
         "facturflow outbox migrate --state ./state --to postgresql://db.internal/ff "
         "--format json"),
    ),
    ("webhook",): (
        "as `webhook serve`.",
        ("facturflow webhook serve --port 8080 --secret-env QONTO_WEBHOOK_SECRET",),
    ),
    ("webhook", "serve"): (
        None,
        (
            "facturflow webhook serve --port 8080 --secret-env QONTO_WEBHOOK_SECRET",
            "facturflow webhook serve --port 8080 --secret-env QONTO_WEBHOOK_SECRET "
            "--forward-jsonl",
        ),
    ),
}


def epilog(path: tuple[str, ...]) -> str | None:
    """The epilog of a command path, in click's no-rewrap paragraphs ('\\b')."""
    entry = HELP.get(path)
    if entry is None:
        return None
    codes, examples = entry
    parts = []
    if codes is not None:
        parts.append(f"Exit codes: {codes}")
    parts.append("\b\nExamples:\n" + "\n".join(f"  {example}" for example in examples))
    return "\n\n".join(parts)


def document(command: click.Command, path: tuple[str, ...]) -> None:
    """Set the epilog of `command` (and of its subcommands) when it has none."""
    if command.epilog is None:
        command.epilog = epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            document(sub, (*path, name))


class AliasedOption(click.Option):
    """An option whose later names are old aliases: they work, but help shows only the first."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        first = self.opts[0]
        metavar = self.make_metavar(ctx) if not self.is_flag else ""
        return (f"{first} {metavar}".strip(), record[1])


def alias_kwargs() -> dict[str, Any]:
    """Keyword arguments of click.option for an option with a hidden old name."""
    return {"cls": AliasedOption}
