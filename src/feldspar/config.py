"""Settings: flags > FELDSPAR_* environment variables > feldspar.toml > defaults.

`feldspar.toml` lives in FELDSPAR_HOME (default: the per-user data directory). Unknown
keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
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
    return f"Invalid setting '{key}' ({err['msg']}); check {path} and ${env}"
