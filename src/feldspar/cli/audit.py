"""`feldspar audit`: read the guard's decisions back: list, show, export."""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.app import CONTEXT
from feldspar.cli.output import csv_cell, print_json, print_table
from feldspar.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from feldspar.store.records import AuditEntry, AuditQuery

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(value: str) -> float:
    """A time as a Unix timestamp: '90m', '24h', '7d' ago, or an ISO date or date-time
    (UTC unless it says otherwise).

    Example:
        >>> parse_when("2026-01-02T03:04:05Z")
        1767323045.0
    """
    text = value.strip()
    if match := _AGO.match(text):
        return time.time() - int(match[1]) * _UNIT[match[2]]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"Invalid time '{value}': use 30m, 24h, 7d or a date such as "
                        "2026-01-31 or 2026-01-31T09:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _filters(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--since", metavar="WHEN", help="From this time: 30m, 24h, 7d, or a "
                     "date such as 2026-01-31."),
        click.option("--until", metavar="WHEN", help="Before this time (same forms)."),
        click.option("--action", type=click.Choice(["allow", "flag", "redact", "block"]),
                     help="Only decisions with this action."),
        click.option("--risk", metavar="NAME", help="Only decisions that flagged this risk."),
        click.option("--direction", type=click.Choice(["input", "output", "document"]),
                     help="Only prompts, answers or documents."),
        click.option("--source", metavar="NAME", help="Only decisions from this command or "
                     "caller (guard, chat, ask, ingest, server)."),
    )):
        function = option(function)
    return function


def _query(since: str | None, until: str | None, action: str | None, risk: str | None,
           direction: str | None, source: str | None, limit: int | None) -> AuditQuery:
    from feldspar.guard.risks import risk as known_risk
    from feldspar.store.records import AuditQuery

    if risk is not None:
        from feldspar.config import load_settings

        risk = known_risk(risk, load_settings().guard_risks).name
    return AuditQuery(since=parse_when(since) if since else None,
                      until=parse_when(until) if until else None, action=action, risk=risk,
                      direction=direction, source=source, limit=limit)


def _when(entry: AuditEntry) -> str:
    return datetime.fromtimestamp(entry.time, UTC).strftime("%Y-%m-%d %H:%M:%S")


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    """An entry as JSON: its fields, with the time also in ISO 8601 (UTC)."""
    return {"id": entry.id, "time": entry.time,
            "at": datetime.fromtimestamp(entry.time, UTC).isoformat(),
            "direction": entry.direction, "action": entry.action, "source": entry.source,
            "model": entry.model, "flags": list(entry.flags), "chars": entry.chars,
            "text_sha256": entry.text_sha256, "ref": entry.ref, "text": entry.text,
            "verdicts": list(entry.verdicts)}


@click.group(context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar audit list --since 24h --action block
  feldspar audit show 42
  feldspar audit export --since 2026-01-01 --format csv -o audit.csv
""")
def audit() -> None:
    """The guard's audit log: every decision on a prompt, an answer or a document."""


@audit.command("list", epilog="""\b
Examples:
  feldspar audit list
  feldspar audit list --since 24h --action block
  feldspar audit list --risk pii --direction output --source ask --json
""")
@_filters
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Most entries to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_entries(since: str | None, until: str | None, action: str | None, risk: str | None,
                 direction: str | None, source: str | None, limit: int,
                 as_json: bool) -> None:
    """The latest decisions, newest first."""
    from feldspar.cli.ingest import open_workspace

    query = _query(since, until, action, risk, direction, source, limit)
    with open_workspace() as ws:
        entries = ws.store.audit(query)
    if as_json:
        print_json([entry_dict(e) for e in entries])
        return
    if not entries:
        click.echo("No decisions match.", err=True)
        return
    print_table(["id", "time (UTC)", "direction", "action", "flags", "source", "model"],
                [(e.id, _when(e), e.direction, e.action, ",".join(e.flags) or "-", e.source,
                  e.model or "-") for e in entries])


@audit.command(epilog="""\b
Examples:
  feldspar audit show 42
  feldspar audit show 42 --json
""")
@click.argument("entry_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(entry_id: int, as_json: bool) -> None:
    """One decision in full: every verdict, the text's hash (and the text, if kept)."""
    from feldspar.cli.ingest import open_workspace

    with open_workspace() as ws:
        entry = ws.store.audit_entry(entry_id)
    if entry is None:
        raise UserError(f"No audit entry {entry_id}; see 'feldspar audit list'")
    data = entry_dict(entry)
    if as_json:
        print_json(data)
        return
    for key in ("id", "at", "direction", "action", "source", "model", "ref", "chars",
                "text_sha256"):
        click.echo(f"{key + ':':<13}{data[key] if data[key] is not None else '-'}")
    click.echo(f"{'flags:':<13}{', '.join(entry.flags) or '-'}")
    click.echo()
    print_table(["risk", "score", "flagged", "threshold", "detector"],
                [(v["risk"], f"{v['score']:.3f}", "yes" if v["flagged"] else "no",
                  f"{v['threshold']:.2f}", v["detector"]) for v in entry.verdicts])
    if entry.text is not None:
        click.echo(f"\n{entry.text}")


@audit.command(epilog="""\b
Examples:
  feldspar audit export > audit.jsonl
  feldspar audit export --since 2026-01-01 --action block --format csv -o blocked.csv
""")
@_filters
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="JSON lines (everything) or CSV (one row a decision).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file (default: standard output).")
def export(since: str | None, until: str | None, action: str | None, risk: str | None,
           direction: str | None, source: str | None, fmt: str, output: Path | None) -> None:
    """Every matching decision, oldest first, for a SIEM or a spreadsheet."""
    from feldspar.cli.ingest import open_workspace

    query = _query(since, until, action, risk, direction, source, None)
    with open_workspace() as ws:
        entries = list(reversed(ws.store.audit(query)))
    try:
        sink = (contextlib.nullcontext(sys.stdout) if output is None
                else output.open("w", encoding="utf-8", newline=""))
    except OSError as exc:
        raise UserError(f"Cannot write {output}: {exc.strerror or exc}") from exc
    with sink as out:
        if fmt == "jsonl":
            for entry in entries:
                out.write(json.dumps(entry_dict(entry), ensure_ascii=False) + "\n")
        else:
            columns = ["id", "at", "direction", "action", "source", "model", "ref", "flags",
                       "chars", "text_sha256", "scores", "text"]
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            for entry in entries:
                row = entry_dict(entry)
                row["flags"] = ",".join(entry.flags)
                row["scores"] = ";".join(f"{v['risk']}={v['score']}" for v in entry.verdicts)
                writer.writerow({c: csv_cell(row[c]) for c in columns})
    if output is not None:
        click.echo(f"Wrote {len(entries)} decisions to {output}", err=True)

