"""Answers with proof: retrieval, prompting with numbered sources, checked citations and
abstention. Start with `Workspace.ask`."""

from feldspar.rag.answer import Answer, Citation, Sentence, Source
from feldspar.rag.answering import AnswerStream, ask_stream

__all__ = ["Answer", "AnswerStream", "Citation", "Sentence", "Source", "ask_stream"]
