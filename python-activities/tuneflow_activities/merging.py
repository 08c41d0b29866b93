"""Merges a LoRA adapter into its base model: a standard Hugging Face directory any tool can load."""

from pathlib import Path

from .artifacts import atomic_directory, path_to_uri, uri_to_path

DTYPES = {"float32", "bfloat16", "float16"}


def merge(request: dict) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_directory = uri_to_path(request["model_uri"])
    adapter_directory = uri_to_path(request["adapter_uri"])
    target = uri_to_path(request["run_uri"]) / "merged"
    requested = request["spec"]["merge"]["dtype"]
    # Merging happens in the base's own precision (never into 4-bit weights, even after QLoRA training), so the
    # merged model is a plain 16/32-bit checkpoint.
    dtype = getattr(torch, requested) if requested in DTYPES else "auto"
    base = AutoModelForCausalLM.from_pretrained(str(base_directory), dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_directory)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(base_directory))
    with atomic_directory(target, replace=True) as building:
        merged.save_pretrained(building, safe_serialization=True)
        tokenizer.save_pretrained(building)
    return {
        "merged_uri": path_to_uri(target),
        "dtype": str(merged.dtype).removeprefix("torch."),
        "parameters": sum(parameter.numel() for parameter in merged.parameters()),
        "bytes": sum(path.stat().st_size for path in Path(target).rglob("*") if path.is_file()),
    }
