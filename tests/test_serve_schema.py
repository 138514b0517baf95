"""Schemathesis against the server's own OpenAPI spec: generated requests, valid and
invalid, to every operation (documents, answers and generation on the real packaged
models); no 5xx, every status, header and body as the spec says, invalid data refused."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from feldspar.config import Settings
from feldspar.serve import create_app

from .serving import KEY, running

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}"}


def operations() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) of every operation in the spec (read from an application that
    loads nothing): valid requests to each, invalid ones to those that take input."""
    with tempfile.TemporaryDirectory() as home:
        spec = create_app(Settings(home=Path(home), api_keys=KEY),  # type: ignore[arg-type]
                          load_default=False).openapi()
    return [(method.upper(), path, mode) for path, methods in spec["paths"].items()
            for method, operation in methods.items() for mode in GenerationMode
            if mode == GenerationMode.POSITIVE or operation.get("parameters")
            or operation.get("requestBody")]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    home: Path = tmp_path_factory.mktemp("schema-home")
    # Short replies and a short context: generated requests may ask for as many tokens as
    # the limit allows, with prompts as long as the context allows.
    config = Settings(home=home, api_keys=KEY, serve_max_tokens=8,  # type: ignore[arg-type]
                      rag_max_tokens=8, context_length=512)
    with running(config) as url:
        httpx.post(f"{url}/api/collections/hr/documents", headers=AUTH, timeout=120,
                   files={"files": ("leave.md", b"Staff get 25 days of annual leave.",
                                    "text/markdown")}).raise_for_status()
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)


@pytest.mark.parametrize(("method", "path", "mode"), operations())
def test_the_server_keeps_to_its_spec(api: schemathesis.BaseSchema, method: str,
                                      path: str, mode: GenerationMode) -> None:
    operation = api[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
              database=None, derandomize=True)
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=AUTH, timeout=60)
        if response.status_code == 413:  # an invalid body may also be too large: refused
            assert response.json()["error"]["code"] == "body_too_large"
            return
        # Requests the spec allows may still name no model, collection or label set that
        # exists: a 4xx for them is right, so that check is left out.
        case.validate_response(response, excluded_checks=[checks.positive_data_acceptance])

    try:
        check()
    except Unsatisfiable:
        if mode == GenerationMode.POSITIVE:
            raise
        pytest.skip(f"no invalid request can be written for {method} {path}")
