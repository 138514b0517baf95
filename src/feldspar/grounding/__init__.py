"""Grounding: is each sentence of a response supported by its context (groundedness)."""

from feldspar.grounding.detector import GroundednessDetector, GroundingReport, SentenceScore
from feldspar.grounding.sentences import split_sentences

__all__ = ["GroundednessDetector", "GroundingReport", "SentenceScore", "split_sentences"]
