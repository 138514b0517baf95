"""`feldspar collections ...` and `feldspar documents ...`: what is stored, and removing it."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime

import click

from feldspar.cli.ingest import collection_option, embed_model_option, open_workspace
from feldspar.cli.output import print_json, print_table


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


@click.group(epilog="""\b
Examples:
  feldspar collections list
  feldspar collections show default
  feldspar collections reembed default --embed-model granite-embedding-30m-english
  feldspar collections delete old-docs --yes
""")
def collections() -> None:
    """List, inspect, re-embed and delete collections."""


@collections.command("list", epilog="""\b
Examples:
  feldspar collections list
  feldspar collections list --json
""")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_collections(as_json: bool) -> None:
    """Every collection with its embedding model and size."""
    with open_workspace() as ws:
        found = ws.collections()
    if as_json:
        print_json([asdict(c) for c in found])
        return
    if not found:
        click.echo("No collections yet; add one with 'feldspar ingest PATH'.")
        return
    print_table(["NAME", "DOCUMENTS", "CHUNKS", "EMBED MODEL", "CREATED"],
                [(c.name, c.documents, c.chunks, c.embed_model, _when(c.created_at))
                 for c in found])


@collections.command("show", epilog="""\b
Examples:
  feldspar collections show default
  feldspar collections show company --json
""")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show_collection(name: str, as_json: bool) -> None:
    """A collection's model, size and document types."""
    with open_workspace() as ws:
        found = ws.collection(name)
        docs = ws.documents(name)
    types: dict[str, int] = {}
    for d in docs:
        types[d.type] = types.get(d.type, 0) + 1
    if as_json:
        print_json({**asdict(found), "types": types})
        return
    for key, value in [("name", found.name), ("embed model", found.embed_model),
                       ("dimension", found.dimension), ("documents", found.documents),
                       ("chunks", found.chunks), ("created", _when(found.created_at)),
                       ("types", ", ".join(f"{t} {n}" for t, n in sorted(types.items())))]:
        click.echo(f"{key:<12} {value}")


@collections.command("delete", epilog="""\b
Examples:
  feldspar collections delete old-docs
  feldspar collections delete old-docs --yes
""")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_collection(name: str, yes: bool) -> None:
    """Delete a collection and everything in it."""
    with open_workspace() as ws:
        found = ws.collection(name)
        if not yes and not click.confirm(
                f"Delete collection '{name}' ({found.documents} documents)?", err=True):
            sys.exit(1)
        ws.delete_collection(name)
    click.echo(f"Deleted collection '{name}'.")


@collections.command("reembed", epilog="""\b
Examples:
  feldspar collections reembed default --embed-model granite-embedding-30m-english
""")
@click.argument("name")
@embed_model_option
def reembed_collection(name: str, embed_model: str | None) -> None:
    """Embed a collection again with another model (all at once, or not at all)."""
    from tqdm import tqdm

    with open_workspace(embed_model) as ws:
        total = ws.collection(name).chunks
        with tqdm(total=total, unit="chunk", desc="Re-embedding", file=sys.stderr,
                  disable=None, leave=False) as bar:
            count = ws.reembed(name, on_batch=bar.update)
        model = ws.embedder.spec.name
    click.echo(f"Re-embedded {count} chunks of '{name}' with {model}.")


@click.group(epilog="""\b
Examples:
  feldspar documents list --collection company
  feldspar documents list --where type=pdf
  feldspar documents show ./handbook/leave.md
  feldspar documents remove ./handbook/old.md
""")
def documents() -> None:
    """List, inspect and remove documents."""


@documents.command("list", epilog="""\b
Examples:
  feldspar documents list
  feldspar documents list --collection company --where type=pdf --json
""")
@collection_option
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Filter: path=GLOB or type=TYPE; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_documents(collection: str | None, where: tuple[str, ...], as_json: bool) -> None:
    """The documents in a collection."""
    from feldspar.store.records import Where

    with open_workspace() as ws:
        found = ws.documents(collection, Where.parse(where))
    if as_json:
        print_json([asdict(d) for d in found])
        return
    print_table(["PATH", "TYPE", "CHUNKS", "SIZE", "INGESTED"],
                [(d.path, d.type, d.chunks, d.size, _when(d.ingested_at)) for d in found])


@documents.command("show", epilog="""\b
Examples:
  feldspar documents show ./handbook/leave.md
  feldspar documents show ./handbook/leave.md --json
""")
@click.argument("path")
@collection_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, chunks included.")
def show_document(path: str, collection: str | None, as_json: bool) -> None:
    """A document and its chunks."""
    from feldspar.cli.ingest import source
    from feldspar.store.records import Hit

    with open_workspace() as ws:
        doc, chunks = ws.document(path, collection)
    if as_json:
        print_json({**asdict(doc), "chunk_list": [asdict(c) for c in chunks]})
        return
    for key, value in [("path", doc.path), ("type", doc.type), ("language", doc.language),
                       ("title", doc.title), ("size", doc.size), ("sha256", doc.content_hash),
                       ("chunks", doc.chunks), ("ingested", _when(doc.ingested_at))]:
        if value is not None:
            click.echo(f"{key:<9} {value}")
    for c in chunks:
        click.echo(f"\n[{c.ordinal}] {source(Hit(c, 0.0, 0))} ({c.tokens} tokens)")
        text = " ".join(c.text.split())
        click.echo(f"    {text[:200]}{'…' if len(text) > 200 else ''}")


@documents.command("remove", epilog="""\b
Examples:
  feldspar documents remove ./handbook/old.md --collection company
""")
@click.argument("path")
@collection_option
def remove_document(path: str, collection: str | None) -> None:
    """Remove a document and its chunks from a collection."""
    with open_workspace() as ws:
        removed = ws.remove_document(path, collection)
    click.echo(f"Removed {removed}.")
