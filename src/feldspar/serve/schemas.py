"""The request bodies the server reads: OpenAI's (fields Feldspar ignores, such as `user`,
are accepted and ignored; ones it cannot honour are refused) and Feldspar's own."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 256
"""Most texts one embeddings, classify or completions request may carry."""
MAX_TEXT_CHARS = 1_000_000
"""Longest text in any request field (the body limit bounds the sum)."""

Batch = Annotated[list[str], Field(min_length=1, max_length=MAX_BATCH)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=MAX_TEXT_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class Sampling(BaseModel):
    """What chat and text completions share."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=200)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None


class ChatRequest(Sampling):
    """POST /v1/chat/completions, as OpenAI defines it. A model `rag:COLLECTION` answers
    from a collection's documents, with citations."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(Sampling):
    """POST /v1/completions: each prompt goes to the model's chat template as one user
    message (as Ollama's generate does), since Feldspar's models are chat models."""

    prompt: str | Batch
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = Field(False, description="Not supported: must be false.")
    suffix: str | None = Field(None, description="Not supported: must be empty.")
    best_of: int | None = Field(None, ge=1, le=1)


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=200)
    input: str | Batch
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


class SearchRequest(BaseModel):
    """POST /api/search."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=8000)
    collection: str | None = Field(None, max_length=200)
    k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class AskRequest(BaseModel):
    """POST /api/ask: an answer from a collection, with checked citations."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=8000)
    collection: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    k: int | None = Field(None, ge=1, le=50)
    history: list[ChatMessage] = Field(default_factory=list, max_length=100)
    stream: bool = Field(False, description="Server-sent events: `delta` events with the "
                         "text, then one `answer` event, then `[DONE]`.")


class ClassifyRequest(BaseModel):
    """POST /api/classify: labels from a label set's student, and its teacher for the
    texts the student is unsure of (unless `teacher` is false)."""

    model_config = ConfigDict(extra="forbid")
    labelset: str = Field(min_length=1, max_length=64)
    texts: Batch
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    target_accuracy: float | None = Field(None, gt=0.0, le=1.0)
    teacher: bool = True


class GuardRequest(BaseModel):
    """POST /api/guard: screen a text under the policy (and record the decision)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    direction: Literal["input", "output", "document"] = "input"
    risks: list[str] | None = Field(None, max_length=50)
    prompt: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    context: list[str] = Field(default_factory=list, max_length=50)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error envelope: every answer that is not 2xx."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "Invalid request, or blocked by the guard (code content_filter)"),
        (401, "Missing or wrong API key"), (403, "Refused by the license policy"),
        (404, "No such model, collection or entry"), (413, "Body or upload too large"),
        (429, "Busy: retry after Retry-After seconds"),
        (502, "A remote model failed"), (503, "The store is unavailable"))}
"""The error answers every route may give, for the OpenAPI spec."""
