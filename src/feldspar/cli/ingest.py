"""`feldspar ingest` and `feldspar search`: documents in, passages out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.output import print_json

if TYPE_CHECKING:
    from feldspar.ingest.pipeline import IngestReport
    from feldspar.store.records import Hit
    from feldspar.workspace import Workspace

# Exit status of an ingest that stored what it could but skipped some files.
EXIT_SKIPPED = 3

collection_option = click.option(
    "-c", "--collection", help="Collection to use (default: the 'collection' setting).")
embed_model_option = click.option(
    "-e", "--embed-model", help="Embedding model (default: the 'embed_model' setting).")


def open_workspace(embed_model: str | None = None) -> Workspace:
    from feldspar.config import load_settings
    from feldspar.workspace import Workspace

    return Workspace(load_settings(), embed_model=embed_model)


@click.command(epilog=f"""\b
Examples:
  feldspar ingest ./handbook ./src --collection company
  feldspar ingest ./handbook --prune --json

\b
Exit status: 0 when every file went in, {EXIT_SKIPPED} when some were skipped (the summary
says why), 1 on an error that stopped the run (files already stored are kept).
Folders are walked recursively; a .feldsparignore file holds gitignore-style patterns.
""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@collection_option
@embed_model_option
@click.option("--prune", is_flag=True,
              help="Remove documents under PATHS whose files are gone or now ignored.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(paths: tuple[Path, ...], collection: str | None, embed_model: str | None,
           prune: bool, as_json: bool) -> None:
    """Add files and folders to a collection, or bring it up to date with them."""
    from tqdm import tqdm

    with open_workspace(embed_model) as ws:
        bar: Any = None

        def start(total: int) -> None:
            nonlocal bar
            bar = tqdm(total=total, unit="file", desc="Ingesting", file=sys.stderr,
                       disable=None, leave=False)

        def step(path: str, status: str) -> None:
            bar.set_postfix_str(Path(path).name[-30:], refresh=False)
            bar.update(1)

        try:
            report = ws.ingest(list(paths), collection, prune=prune, on_file=step,
                               on_total=start)
        finally:
            if bar is not None:
                bar.close()
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if report.skipped:
        sys.exit(EXIT_SKIPPED)


def _print_report(report: IngestReport) -> None:
    click.echo(
        f"Collection '{report.collection}': {len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed, {len(report.skipped)} skipped, "
        f"{report.ignored} ignored (unsupported type); {report.chunks} chunks written "
        f"in {report.seconds:.1f} s.")
    for item in report.skipped:
        click.echo(f"  skipped {item.path}: {item.reason}")
    if report.flagged:
        counts = ", ".join(f"{n} {risk}" for risk, n in sorted(report.flagged.items()))
        click.echo(f"  the guard flagged chunks: {counts} (see 'feldspar audit list "
                   "--source ingest')")


@click.command(epilog="""\b
Examples:
  feldspar search "how do I reset my password"
  feldspar search "retry policy" --where path=src/*.py -k 5
  feldspar search "invoice" --where type=pdf --mode lexical --json
""")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many passages to return.")
@collection_option
@embed_model_option
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Filter: path=GLOB or type=TYPE (markdown, pdf, code, ...); repeatable.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid",
              show_default=True, help="BM25 and vectors fused, vectors only, or BM25 only.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def search(query: str, k: int, collection: str | None, embed_model: str | None,
           where: tuple[str, ...], mode: str, as_json: bool) -> None:
    """Find the passages that best match QUERY."""
    from feldspar.store.records import Where

    condition = Where.parse(where)
    with open_workspace(embed_model) as ws:
        hits = ws.search(query, k=k, collection=collection, mode=mode,  # type: ignore[arg-type]
                         where=condition)
    if as_json:
        print_json([hit_dict(h) for h in hits])
        return
    if not hits:
        click.echo("No matching passages.")
    for hit in hits:
        click.echo(f"{hit.rank:>2}. {hit.score:.4f}  {source(hit)}")
        text = " ".join(hit.chunk.text.split())
        click.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")


def source(hit: Hit) -> str:
    """Where a hit comes from, as a person reads it: path:lines, page, heading path."""
    c = hit.chunk
    where = f"{c.path}:{c.line_start}" + (f"-{c.line_end}" if c.line_end != c.line_start
                                          else "")
    if c.page is not None:
        where += f" (page {c.page})"
    if c.headings:
        where += " § " + " > ".join(c.headings)
    return where


def hit_dict(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {"rank": hit.rank, "score": hit.score, "scores": hit.scores, "chunk_id": c.id,
            "source": c.path, "span": {"start": c.start, "end": c.end,
                                       "line_start": c.line_start, "line_end": c.line_end,
                                       "page": c.page},
            "headings": list(c.headings), "text": c.text}
