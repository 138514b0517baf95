"""Ingest: find files, parse them, cut them into chunks, embed and store them."""

from feldspar.ingest.chunking import ChunkOptions, chunk
from feldspar.ingest.pipeline import IngestOptions, IngestReport, ingest, reembed

__all__ = ["ChunkOptions", "IngestOptions", "IngestReport", "chunk", "ingest", "reembed"]
