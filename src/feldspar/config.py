"""Settings: flags > FELDSPAR_* environment variables > feldspar.toml > defaults.

`feldspar.toml` lives in FELDSPAR_HOME (default: the per-user data directory). Unknown
keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from feldspar.errors import ConfigError

CONFIG_FILE = "feldspar.toml"

PERMISSIVE_LICENSES = (
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "Unlicense",
)


class RiskRule(BaseModel):
    """What the guard does about one risk in one direction (see docs/guard.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["allow", "flag", "redact", "block"] = "flag"
    """allow: score and record only; flag: pass the text with the flag; redact: replace
    the flagged spans (pii, secrets); block: stop the text."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Scores at or above it flag the text."""


DEFAULT_GUARD_POLICY: dict[str, dict[str, dict[str, Any]]] = {
    "input": {"harm": {"action": "block"}, "jailbreak": {"action": "block"},
              "prompt_injection": {"action": "flag"}, "pii": {"action": "flag"},
              "secrets": {"action": "flag"}},
    "output": {"harm": {"action": "flag"}, "pii": {"action": "redact"},
               "secrets": {"action": "redact"}, "groundedness": {"action": "flag"}},
    "document": {"prompt_injection": {"action": "block"}, "secrets": {"action": "flag"}},
}
"""The policy the guard starts from; guard_policy entries replace single risks in it."""


def default_home() -> Path:
    """FELDSPAR_HOME, or the per-user data directory."""
    if env := os.environ.get("FELDSPAR_HOME"):
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("feldspar", appauthor=False)


class Settings(BaseSettings):
    """Every setting Feldspar reads. Each field's description feeds `--help` and the docs."""

    model_config = SettingsConfigDict(
        env_prefix="FELDSPAR_", extra="forbid", validate_default=True, frozen=True
    )

    home: Path = Field(
        default_factory=default_home,
        description="Where Feldspar keeps its data and feldspar.toml.",
    )
    chat_model: str = Field(
        "smollm2-135m-instruct", description="Model used when a command gets no -m."
    )
    embed_model: str = Field("all-minilm-l6-v2", description="Default embedding model.")
    allowed_licenses: list[str] = Field(
        default_factory=lambda: list(PERMISSIVE_LICENSES),
        description="SPDX ids (or LicenseRef-...) of the model licenses the company allows.",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for in-process inference (default: all cores)."
    )
    context_length: int = Field(
        4096,
        ge=128,
        description="Context tokens to allocate for in-process models, capped by each "
        "model's own maximum.",
    )
    flash_attention: bool = Field(False, description="Flash attention in llama.cpp (GGUF "
                                  "models): faster, with slightly different numbers.")
    llama_parallel: int = Field(
        1,
        ge=1,
        le=64,
        description="Sequences a GGUF chat model decodes together (continuous batching); "
        "1 runs one generation at a time. feldspar serve sets it from serve_parallel.",
    )
    openai_base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server, used by 'openai:MODEL' names.",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key for openai_base_url (never written to disk by Feldspar)."
    )
    request_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for a remote server before giving up."
    )

    database_url: SecretStr | None = Field(
        None, description="PostgreSQL DSN (postgresql://user:pass@host/db) of a shared "
        "store with pgvector; default: SQLite in FELDSPAR_HOME.")
    collection: str = Field("default", description="Collection that ingest and search use "
                            "when given no --collection.")
    chunk_tokens: int = Field(256, ge=16, description="Most tokens in a chunk, counted with "
                              "the embedder's tokenizer (capped by the embedder's maximum).")
    chunk_overlap: int = Field(32, ge=0, description="Tokens repeated between the pieces of "
                               "a passage too long for one chunk.")
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped "
                               "at ingest.")
    parse_timeout: float = Field(120.0, gt=0, description="Seconds one file may take to "
                                 "parse before it is skipped.")
    parse_memory_mb: int = Field(2048, ge=256, description="Memory one file's parser may "
                                 "use before it is skipped.")
    hybrid_fusion: Literal["relative", "rrf"] = Field(
        "relative", description="How hybrid search fuses BM25 and vectors: scores scaled to "
        "[0, 1] and weighted ('relative'), or reciprocal rank fusion ('rrf').")
    hybrid_dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the "
                                       "vector scores in relative fusion (BM25 gets the "
                                       "rest).")
    rerank_model: str | None = Field(None, description="Cross-encoder that reranks search "
                                     "results (a sentence-transformers model folder or "
                                     "name); none by default.")
    rag_top_k: int = Field(5, ge=1, le=50, description="Chunks that `ask` gives the model "
                           "as numbered sources.")
    rag_max_tokens: int = Field(256, ge=1, description="Most tokens of an answer.")
    rag_min_relevance: float = Field(0.7, ge=-1.0, le=2.0, description="`ask` abstains "
                                     "without asking the model when no retrieved chunk "
                                     "reaches this relevance (cosine similarity to the "
                                     "question plus the share of its content words in "
                                     "the chunk).")
    rag_min_support: float = Field(0.5, ge=0.0, le=1.0, description="`ask` abstains when "
                                   "the answer's support (the mean of its sentences' "
                                   "groundedness) is below this.")
    rag_abstain_text: str = Field("The documents do not say.", min_length=1,
                                  description="What `ask` replies when it abstains.")

    guard: bool = Field(True, description="Screen prompts, answers and ingested chunks "
                        "with the guard, as guard_policy says.")
    guard_risks: dict[str, str] = Field(
        default_factory=dict, description="Custom risks for the LLM judge: name = "
        "description (Granite Guardian's bring-your-own-criteria).")
    guard_model: str | None = Field(None, description="Guardian LLM (e.g. "
                                    "granite-guardian-3.1-2b) that judges uncertain scores "
                                    "and the risks no fast detector covers; none by default.")
    guard_judge_band: tuple[float, float] = Field(
        (0.2, 0.8), description="Fast-detector scores in [low, high) go to guard_model "
        "when one is set.")
    guard_policy: dict[str, dict[str, RiskRule]] = Field(
        default_factory=dict, description="Per direction (input, output, document) and "
        "risk: {action = allow|flag|redact|block, threshold = 0..1}; merged over the "
        "defaults, one risk at a time.")
    guard_audit: bool = Field(True, description="Record every guard decision in the audit "
                              "log (feldspar audit).")
    guard_audit_text: bool = Field(False, description="Keep the screened text in the audit "
                                   "log, not only its sha256.")

    api_keys: SecretStr | None = Field(None, description="Keys that `feldspar serve` "
                                       "accepts (comma-separated bearer tokens).")
    api_keys_file: Path | None = Field(None, description="A file of keys for `feldspar "
                                       "serve`, one a line.")
    serve_max_tokens: int = Field(4096, ge=1, description="Most tokens one request to "
                                  "`feldspar serve` may ask to generate.")
    serve_max_body_mb: float = Field(8.0, gt=0, description="Largest request body "
                                     "`feldspar serve` reads, in MB.")
    serve_max_upload_mb: float = Field(100.0, gt=0, description="Largest upload (all its "
                                       "files) to `feldspar serve`, in MB; each file is "
                                       "also held to max_file_mb.")
    serve_parallel: int = Field(4, ge=1, le=64, description="Sequences a GGUF chat model "
                                "decodes together in `feldspar serve` (its llama_parallel).")
    serve_max_queue: int = Field(32, ge=1, le=1000, description="Requests that may hold or "
                                 "wait for a model at once in `feldspar serve`; more are "
                                 "answered 429 with Retry-After.")
    classify_teacher: str | None = Field(None, description="LLM that labels texts for "
                                         "`classify distill` and takes the cascade's hard "
                                         "cases (default: chat_model).")
    classify_shots: int = Field(0, ge=0, le=32, description="Labelled examples, the most "
                                "similar to each text, in the teacher's prompt (0: zero-shot).")
    classify_teacher_mode: Literal["auto", "generate", "score"] = Field(
        "auto", description="How the teacher reads its model: one constrained generation "
        "per text (generate), every label scored whole (score, one call per label), or "
        "score for up to 12 labels and generate above (auto).")
    classify_target_accuracy: float = Field(0.9, gt=0.0, le=1.0, description="`classify "
                                            "predict` keeps the student's answers while its "
                                            "estimated accuracy on them reaches this, and "
                                            "sends the rest to the teacher.")
    classify_review_below: float = Field(0.6, ge=0.0, le=1.0, description="`classify "
                                         "distill` sends texts the teacher is less sure of "
                                         "than this to the review file, not to training.")

    @field_validator("guard_risks")
    @classmethod
    def _custom_risks(cls, value: dict[str, str]) -> dict[str, str]:
        from feldspar.errors import UserError
        from feldspar.guard.risks import taxonomy

        try:
            taxonomy(value)
        except UserError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("guard_judge_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] <= value[1] <= 1.0:
            raise ValueError("give two numbers with 0 <= low <= high <= 1")
        return value

    @field_validator("guard_policy", mode="before")
    @classmethod
    def _merge_policy(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        from feldspar.guard.risks import canonical

        merged: dict[str, dict[str, Any]] = {d: dict(r) for d, r in DEFAULT_GUARD_POLICY.items()}
        for direction, rules in value.items():
            if direction not in merged:
                raise ValueError(f"unknown direction '{direction}': use input, output or "
                                 "document")
            if not isinstance(rules, dict):
                raise ValueError(f"guard_policy.{direction} must be a table of risks")
            for name, rule in rules.items():
                key = canonical(name)
                if isinstance(rule, dict):  # a partial rule keeps the default's other field
                    rule = {**merged[direction].get(key, {}), **rule}
                merged[direction][key] = rule
        return merged

    @field_validator("guard_policy")
    @classmethod
    def _check_policy(cls, value: dict[str, dict[str, RiskRule]],
                      info: ValidationInfo) -> dict[str, dict[str, RiskRule]]:
        from feldspar.errors import UserError
        from feldspar.guard.policy import check_policy

        try:
            check_policy(value, info.data.get("guard_risks") or {},
                         judge=info.data.get("guard_model") is not None)
        except UserError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("allowed_licenses")
    @classmethod
    def _strip(cls, value: list[str]) -> list[str]:
        return [v.strip() for v in value if v.strip()]

    @property
    def config_path(self) -> Path:
        """The settings file: FELDSPAR_HOME/feldspar.toml."""
        return self.home / CONFIG_FILE

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_home() / CONFIG_FILE)
        return (init_settings, env_settings, toml)


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings once; `overrides` are command-line flags (None means not given).

    Example:
        >>> load_settings(threads=2).threads
        2
    """
    flags = {k: v for k, v in overrides.items() if v is not None}
    path = default_home() / CONFIG_FILE
    try:
        if path.is_file() and "home" in tomllib.loads(path.read_text(encoding="utf-8")):
            raise ConfigError(f"'home' cannot be set in {path}, which lives in it; set "
                              "FELDSPAR_HOME instead")
        return Settings(**flags)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove that file") from exc
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Could not read settings from {path}: {exc}") from exc


def _describe(exc: ValidationError, path: Path) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "settings"
    env = "FELDSPAR_" + str(err["loc"][0]).upper() if err["loc"] else "FELDSPAR_*"
    if err["type"] == "extra_forbidden":
        return f"Unknown setting '{key}' in {path} or the environment; remove it or fix its name"
    message = err["msg"].removeprefix("Value error, ")
    return f"Invalid setting '{key}' ({message}); check {path} and ${env}"
