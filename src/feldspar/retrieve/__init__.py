"""Retrieve: hybrid search over a collection, with fusion, filters and optional rerank."""

from feldspar.retrieve.searching import MODES, Mode, Reranker, search

__all__ = ["MODES", "Mode", "Reranker", "search"]
