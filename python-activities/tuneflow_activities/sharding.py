"""Fully sharded data parallel (FSDP2, torch.distributed.fsdp.fully_shard) for the hf-peft loader, and the state
dicts that do not care whether the model is sharded.

Each decoder layer is its own shard group: a rank holds 1/N of every layer's weights (4-bit ones too, stored in the
compute dtype) and of the adapter and its optimizer state, and all-gathers one layer as it computes. No GPU ever
holds the whole model: the base is loaded into host memory (`load_base_in_host_memory`) and fully_shard moves one
layer at a time to the GPU, where bitsandbytes quantises its 4-bit weights as they arrive, and keeps this rank's
shard. Checkpoints hold the full adapter and optimizer state, collected on rank 0, in the same files a single
process writes; they are not portable to another process count (the fingerprint refuses that), because a step
trains a different number of rows there.
"""


def load_base_in_host_memory(model_directory, setup):
    """The base model in host memory, in the compute dtype, its decoder layers' linear weights made 4-bit parameters
    that bitsandbytes quantises when they move to a GPU (what BitsAndBytesConfig's NF4 with double quantisation does
    at load, done at fully_shard instead). Returns (model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if setup.quantization == "8bit":
        raise ValueError("FSDP shards 16-bit or 4-bit weights; 8-bit is refused when the setup is resolved")
    model = AutoModelForCausalLM.from_pretrained(str(model_directory), dtype=setup.torch_dtype)
    if setup.quantization == "4bit":
        for layer in decoder_layers(model):
            _quantize_linear_weights_on_arrival(layer, setup.torch_dtype)
    return model, AutoTokenizer.from_pretrained(str(model_directory))


def _quantize_linear_weights_on_arrival(layer, dtype) -> None:
    import bitsandbytes  # pyright: ignore[reportMissingImports]  (a GPU-only package, absent from CPU environments)
    import torch

    for name, linear in list(layer.named_modules()):
        if not isinstance(linear, torch.nn.Linear):
            continue
        arguments = {"compress_statistics": True, "quant_type": "nf4", "quant_storage": dtype}
        replacement = bitsandbytes.nn.Linear4bit(
            linear.in_features, linear.out_features, bias=linear.bias is not None, compute_dtype=dtype, device="meta", **arguments
        )
        # Unquantised until it moves to a GPU; `module` lets bitsandbytes give the layer back its quantisation state
        # after FSDP's all-gather hands the forward a plain tensor.
        replacement.weight = bitsandbytes.nn.Params4bit(linear.weight.data, requires_grad=False, module=replacement, **arguments)
        if linear.bias is not None:
            replacement.bias = linear.bias
        layer.set_submodule(name, replacement)


def decoder_layers(model) -> list:
    """The model's repeated blocks, found by the class names transformers itself refuses to split."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [module for module in model.modules() if type(module).__name__ in names]
    if not layers:
        raise RuntimeError(f"no decoder layers ({', '.join(sorted(names)) or 'no _no_split_modules'}) found to shard in {type(model).__name__}")
    return layers


def fully_shard_model(model, device_type: str) -> None:
    """Shards every decoder layer, then the rest (embeddings, norm, head) as the root group.

    FSDP averages the gradients over the ranks; the engine scales each rank's backward by the process count, so that
    the result is the sum its token-normalised loss needs (a divide factor of 1 would say the same, but gloo has no
    pre-multiplied reduction, and the CPU test runs on gloo).
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # Named, not the default: a CPU run on a machine with GPUs shards on the CPU.
    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _full_state_options(**options):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **options)


def adapter_state_dict(model, sharded: bool) -> dict:
    """The adapter's weights with PEFT's key names (what adapter_model.safetensors holds); under FSDP every rank takes
    part in collecting them and rank 0 gets them (the others an empty dict)."""
    from peft import get_peft_model_state_dict

    if not sharded:
        return get_peft_model_state_dict(model)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    full = get_model_state_dict(model, options=_full_state_options())
    return get_peft_model_state_dict(model, state_dict=full) if full else {}


def load_adapter_state_dict(model, adapter: dict, sharded: bool) -> None:
    """Loads adapter weights saved by `adapter_state_dict` (PEFT's key names) into the model, sharded or not."""
    from peft import set_peft_model_state_dict

    if not sharded:
        set_peft_model_state_dict(model, adapter)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    # PEFT's file names drop the adapter's name (lora_A.default.weight is saved as lora_A.weight): map them back to
    # the model's own names, which set_model_state_dict needs to place each full tensor into its shards.
    adapter_name = model.active_adapter
    by_saved_name = {name.replace(f".{adapter_name}.", "."): name for name, parameter in model.named_parameters() if parameter.requires_grad}
    missing = sorted(set(adapter) - set(by_saved_name))
    if missing:
        raise RuntimeError(f"adapter weights {missing[:3]} have no place in the sharded model")
    set_model_state_dict(model, {by_saved_name[name]: tensor for name, tensor in adapter.items()}, options=_full_state_options(strict=False))


def optimizer_state_dict(model, optimizer, sharded: bool) -> dict:
    """The optimizer's whole state: torch's own format in one process, keyed by parameter name under FSDP (collected
    on rank 0, empty elsewhere)."""
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_state_options())


def load_optimizer_state_dict(model, optimizer, state: dict, sharded: bool) -> None:
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_full_state_options())
