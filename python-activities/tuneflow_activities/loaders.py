"""Two ways to load a model for LoRA training, one training loop (training.py) for both.

- `unsloth`: Unsloth's FastLanguageModel, on NVIDIA GPUs where the package is importable (2x faster, far less
  VRAM: fused kernels, offloaded gradient checkpointing).
- `hf-peft`: Hugging Face transformers + PEFT, everywhere else (and on GPUs when asked).
Both return a PEFT model whose adapter saves in PEFT's own format, so checkpoints, merge and evaluation are shared.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

ALL_LINEAR_LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainingModel:
    model: object
    tokenizer: object
    backend: str
    device: str
    dtype: str
    gradient_checkpointing: bool

    @property
    def pads_to_fixed_shapes(self) -> bool:
        """Unsloth compiles each decoder block per input shape (15-30 s each on an H200): batches are padded to
        a few fixed lengths instead of to their longest row."""
        return self.backend == "unsloth"


def choose_device(spec: dict) -> str:
    import torch

    requested = spec["device"]["type"]
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def unsloth_available() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def choose_backend(spec: dict, device: str) -> str:
    requested = spec["device"]["backend"]
    if requested != "auto":
        return requested
    return "unsloth" if device == "cuda" and unsloth_available() else "hf-peft"


def use_gradient_checkpointing(spec: dict, device: str) -> bool:
    setting = spec["train"]["gradient_checkpointing"]
    # On a CPU memory is plentiful and recomputation costs a third more time; on a GPU memory is the constraint.
    return device == "cuda" if setting == "auto" else bool(setting)


def choose_optimizer(spec: dict, device: str) -> str:
    requested = spec["train"]["optimizer"]
    if requested != "auto":
        return requested
    # 8-bit AdamW halves optimizer memory on a GPU; bitsandbytes' 8-bit kernels are CUDA-only.
    return "adamw_8bit" if device == "cuda" else "adamw_torch"


def training_setup(spec: dict) -> dict:
    """How the spec's 'auto' settings resolve on this worker: what the planner must plan for."""
    device = choose_device(spec)
    return {
        "device": device,
        "backend": choose_backend(spec, device),
        "gradient_checkpointing": use_gradient_checkpointing(spec, device),
        "optimizer": choose_optimizer(spec, device),
    }


def lora_arguments(spec: dict) -> dict:
    lora = spec["lora"]
    return {
        "r": lora["r"],
        "lora_alpha": lora["alpha"],
        "lora_dropout": lora["dropout"],
        "use_rslora": lora["use_rslora"],
        "bias": "none",
    }


def load_for_training(model_directory: Path, spec: dict) -> TrainingModel:
    device = choose_device(spec)
    backend = choose_backend(spec, device)
    if backend == "unsloth":
        return _load_with_unsloth(model_directory, spec, device)
    return _load_with_peft(model_directory, spec, device)


def training_dtype(device: str):
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _load_with_peft(model_directory: Path, spec: dict, device: str) -> TrainingModel:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantization = spec["device"]["quantization"]
    dtype = training_dtype(device)
    checkpointing = use_gradient_checkpointing(spec, device)
    arguments: dict = {"dtype": dtype}
    if quantization != "none":
        from transformers import BitsAndBytesConfig

        arguments["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quantization == "4bit",
            load_in_8bit=quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if device == "cuda":
        arguments["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(str(model_directory), **arguments)
    tokenizer = AutoTokenizer.from_pretrained(str(model_directory))
    if quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = spec["lora"]["target_modules"]
    config = LoraConfig(task_type="CAUSAL_LM", target_modules=targets, **lora_arguments(spec))
    model = get_peft_model(model, config)
    return TrainingModel(model, tokenizer, "hf-peft", device, str(dtype).removeprefix("torch."), checkpointing)


def _load_with_unsloth(model_directory: Path, spec: dict, device: str) -> TrainingModel:
    from unsloth import FastLanguageModel

    quantization = spec["device"]["quantization"]
    dtype = training_dtype(device)
    checkpointing = use_gradient_checkpointing(spec, device)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_directory),
        max_seq_length=spec["model"]["max_seq_length"],
        dtype=dtype,
        # Unsloth's default is 4-bit: 16-bit LoRA has to be asked for.
        load_in_4bit=quantization == "4bit",
        load_in_8bit=quantization == "8bit",
        load_in_16bit=quantization == "none",
        local_files_only=True,
    )
    targets = spec["lora"]["target_modules"]
    model = FastLanguageModel.get_peft_model(
        model,
        target_modules=ALL_LINEAR_LLAMA_MODULES if targets == "all-linear" else targets,
        # Unsloth's checkpointing offloads activations to CPU memory: the reason 8B fits where plain PEFT OOMs.
        use_gradient_checkpointing="unsloth" if checkpointing else False,
        random_state=spec["train"]["seed"],
        max_seq_length=spec["model"]["max_seq_length"],
        **lora_arguments(spec),
    )
    FastLanguageModel.for_training(model)
    return TrainingModel(model, tokenizer, "unsloth", device, str(dtype).removeprefix("torch."), checkpointing)
