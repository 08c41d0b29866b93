"""Merges a LoRA adapter into its base model: a standard Hugging Face directory any tool can load."""

from pathlib import Path

from .artifacts import RunLayout, atomic_directory, path_to_uri, uri_to_path
from .loaders import base_dtype, load_for_merging
from .payloads import MergeRequest, parse


def merge(payload: dict) -> dict:
    """The merge activity's body; the payload is parsed into a MergeRequest here, once."""
    from peft import PeftModel

    request = parse(MergeRequest, payload)
    base_directory = uri_to_path(request.model_uri)
    requested = request.spec.merge.dtype
    # The merged model is a plain 16/32-bit checkpoint in the base's own precision unless the spec names one; a
    # quantised run merges into its 16-bit base (TrainingSetup.for_merging says why).
    setup = request.setup.for_merging(base_dtype(base_directory) if requested == "auto" else requested)
    base = load_for_merging(base_directory, setup)
    merged = PeftModel.from_pretrained(base.model, str(uri_to_path(request.adapter_uri))).merge_and_unload()
    target = RunLayout(uri_to_path(request.run_uri)).merged
    with atomic_directory(target, replace=True) as building:
        merged.save_pretrained(building, safe_serialization=True)
        base.tokenizer.save_pretrained(building)
    return {
        "merged_uri": path_to_uri(target),
        "dtype": str(merged.dtype).removeprefix("torch."),
        "parameters": sum(parameter.numel() for parameter in merged.parameters()),
        "bytes": sum(path.stat().st_size for path in Path(target).rglob("*") if path.is_file()),
    }
