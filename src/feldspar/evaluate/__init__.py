"""Evaluate: ask questions with known answers and score retrieval, answers, citations and
abstention."""

from feldspar.evaluate.cases import RagCase, load_cases, sample_cases, squad_folder
from feldspar.evaluate.runner import CaseResult, RagReport, run_rag

__all__ = ["CaseResult", "RagCase", "RagReport", "load_cases", "run_rag", "sample_cases",
           "squad_folder"]
