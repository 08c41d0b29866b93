"""Two ways to load a model, one set of loaders for training, evaluation and merging.

- `unsloth`: Unsloth's FastLanguageModel, on NVIDIA GPUs where the package is importable (2x faster, far less
  VRAM: fused kernels, offloaded gradient checkpointing).
- `hf-peft`: Hugging Face transformers + PEFT, everywhere else (and on GPUs when asked).
Both return a PEFT model whose adapter saves in PEFT's own format, so checkpoints, merge and evaluation are shared.

What to load is decided before any request reaches this worker: the request's `setup` (a TrainingSetup, resolved
from spec and model facts by TypeScript's resolveTrainingSetup) names device, backend, quantization, dtype,
checkpointing and optimizer. No `auto` is accepted here, so the worker cannot decide differently from the plan.
"""

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from .payloads import Dtype, LoraSpec, Spec, TrainingSetup

ALL_LINEAR_LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoadedModel:
    # A PeftModel, transformers' PreTrainedModel or Unsloth's patched one, and their tokenizer: used through the
    # methods they share (save_pretrained, generate, disable_adapter, ...), which no common base class declares.
    model: Any
    tokenizer: Any
    setup: TrainingSetup


def unsloth_available() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def lora_arguments(lora: LoraSpec) -> dict:
    return {"r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "use_rslora": lora.use_rslora, "bias": "none"}


def base_dtype(model_directory: Path) -> Dtype:
    """The dtype the base's weights are stored in (config.json), float32 when it does not say."""
    config = json.loads((model_directory / "config.json").read_text())
    stored = config.get("dtype") or config.get("torch_dtype") or config.get("text_config", {}).get("torch_dtype")
    return stored if stored in get_args(Dtype) else "float32"


def load_for_training(model_directory: Path, spec: Spec, setup: TrainingSetup) -> LoadedModel:
    """The base as `setup` says, with fresh LoRA weights attached (seeded: the caller calls set_seed first)."""
    if setup.backend == "unsloth":
        return _load_with_unsloth(model_directory, spec, setup)
    return _load_with_peft(model_directory, spec, setup)


def load_with_adapter(model_directory: Path, adapter_directory: Path, spec: Spec, setup: TrainingSetup) -> LoadedModel:
    """The base as training loaded it (same backend, quantization and dtype) with a trained adapter on top, for
    inference: a 4-bit run evaluates with the 4-bit base it was trained on, in the memory its plan promised."""
    from peft import PeftModel

    base = _load_base(model_directory, setup, spec.model.max_seq_length)
    model = PeftModel.from_pretrained(base.model, str(adapter_directory), is_trainable=False)
    if setup.quantization == "none":
        model = model.to(setup.device)  # quantised weights were placed by the loader and cannot move
    model.eval()
    return LoadedModel(model, base.tokenizer, setup)


def load_for_merging(model_directory: Path, setup: TrainingSetup) -> LoadedModel:
    """The unquantised base a merge folds the adapter into (`setup` is TrainingSetup.for_merging's)."""
    return _load_base(model_directory, setup, max_seq_length=None)


def _load_base(model_directory: Path, setup: TrainingSetup, max_seq_length: int | None) -> LoadedModel:
    if setup.backend == "unsloth":
        from unsloth import FastLanguageModel  # pyright: ignore[reportMissingImports]  (a GPU-only package, absent from CPU environments)

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(model_directory),
            max_seq_length=max_seq_length,
            dtype=setup.torch_dtype,
            # Unsloth's default is 4-bit: 16-bit LoRA has to be asked for.
            load_in_4bit=setup.quantization == "4bit",
            load_in_8bit=setup.quantization == "8bit",
            load_in_16bit=setup.quantization == "none",
            local_files_only=True,
            # One process per GPU: each loads onto its own (distributed.py set it current).
            **({"device_map": {"": _current_gpu()}} if setup.processes > 1 else {}),
        )
        return LoadedModel(model, tokenizer, setup)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    arguments: dict = {"dtype": setup.torch_dtype}
    if setup.quantization != "none":
        from transformers import BitsAndBytesConfig

        arguments["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=setup.quantization == "4bit",
            load_in_8bit=setup.quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=setup.torch_dtype,
        )
    if setup.device == "cuda":
        arguments["device_map"] = {"": _current_gpu()}
    model = AutoModelForCausalLM.from_pretrained(str(model_directory), **arguments)
    return LoadedModel(model, AutoTokenizer.from_pretrained(str(model_directory)), setup)


def _current_gpu() -> int:
    import torch

    return torch.cuda.current_device()


def _load_with_peft(model_directory: Path, spec: Spec, setup: TrainingSetup) -> LoadedModel:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if setup.parallelism == "fsdp":
        # Sharded training places the weights itself, a layer at a time (sharding.py): the base waits in host memory.
        from .sharding import load_base_in_host_memory

        loaded = LoadedModel(*load_base_in_host_memory(model_directory, setup), setup)
    else:
        loaded = _load_base(model_directory, setup, spec.model.max_seq_length)
    model = loaded.model
    if setup.quantization != "none":
        # The QLoRA recipe's fp32 norms and embeddings (and its checkpointing, for a model transformers quantised).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=setup.gradient_checkpointing)
    if setup.gradient_checkpointing and not model.is_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(task_type="CAUSAL_LM", target_modules=spec.lora.target_modules, **lora_arguments(spec.lora))
    return LoadedModel(get_peft_model(model, config), loaded.tokenizer, setup)


def _load_with_unsloth(model_directory: Path, spec: Spec, setup: TrainingSetup) -> LoadedModel:
    from unsloth import FastLanguageModel  # pyright: ignore[reportMissingImports]  (a GPU-only package, absent from CPU environments)

    loaded = _load_base(model_directory, setup, spec.model.max_seq_length)
    targets = spec.lora.target_modules
    model = FastLanguageModel.get_peft_model(
        loaded.model,
        target_modules=ALL_LINEAR_LLAMA_MODULES if targets == "all-linear" else targets,
        # Unsloth's checkpointing offloads activations to CPU memory: the reason 8B fits where plain PEFT OOMs.
        use_gradient_checkpointing="unsloth" if setup.gradient_checkpointing else False,
        random_state=spec.train.seed,
        max_seq_length=spec.model.max_seq_length,
        **lora_arguments(spec.lora),
    )
    FastLanguageModel.for_training(model)
    return LoadedModel(model, loaded.tokenizer, setup)
