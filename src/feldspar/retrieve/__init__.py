"""Retrieve: hybrid search over a collection, with fusion, filters and optional rerank."""

from feldspar.retrieve.searching import MODES, Fusion, Mode, Reranker, search

__all__ = ["MODES", "Fusion", "Mode", "Reranker", "search"]
