"""Exports a merged Hugging Face Llama-family directory as GGUF (F16, Q8_0) for llama.cpp and Ollama.

Nothing is fetched and no llama.cpp checkout is needed: PyPI's `gguf` writes the file, its tensor-name map names
the tensors, its quantiser makes Q8_0. The tokenizer (vocabulary, token types, merges, special ids) and the chat
template travel inside the file, so a runtime needs nothing beside it; an Ollama `Modelfile` is written next to it.

Layout of one export (docs/exports.md): <run>/exports/{model-f16.gguf, model-q8_0.gguf, Modelfile, export.json}.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_directory, path_to_uri, sha256_of_file, uri_to_path
from .contract import FailureType
from .errors import failure
from .payloads import ExportGgufRequest, parse

GGUF_FORMATS = ("f16", "q8_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
MODELFILE_SOURCE_FORMAT = "q8_0"  # Ollama serves the smaller file when both exist


@dataclass(frozen=True)
class LlamaHyperparameters:
    """The config.json numbers GGUF's llama architecture stores, read once and checked loudly."""

    context_length: int
    embedding_length: int
    block_count: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int
    head_dimension: int
    rms_norm_epsilon: float
    rope_theta: float
    vocab_size: int
    tie_word_embeddings: bool

    @classmethod
    def from_config(cls, config: dict, config_path: Path) -> "LlamaHyperparameters":
        architectures = config.get("architectures") or []
        if not set(architectures) & set(SUPPORTED_ARCHITECTURES):
            raise failure(
                FailureType.INVALID_SPEC,
                f"{config_path}: architectures {architectures} cannot be exported as GGUF (supported: {', '.join(SUPPORTED_ARCHITECTURES)})",
            )
        # transformers 5 nests rope settings in rope_parameters; older configs keep rope_theta at the top level.
        rope = config.get("rope_parameters") or {"rope_theta": config.get("rope_theta", 10000.0), "rope_type": "default"}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default" or config.get("rope_scaling"):
            # Llama 3.1-style scaling needs llama.cpp's rope_freqs tensor, which this exporter does not compute.
            raise failure(FailureType.INVALID_SPEC, f"{config_path}: rope type {rope_type!r} is not supported by the GGUF export")
        heads = config["num_attention_heads"]
        return cls(
            context_length=config["max_position_embeddings"],
            embedding_length=config["hidden_size"],
            block_count=config["num_hidden_layers"],
            feed_forward_length=config["intermediate_size"],
            head_count=heads,
            head_count_kv=config.get("num_key_value_heads", heads),
            head_dimension=config.get("head_dim") or config["hidden_size"] // heads,
            rms_norm_epsilon=config["rms_norm_eps"],
            rope_theta=float(rope["rope_theta"]),
            vocab_size=config["vocab_size"],
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )


def rotary_permute(weight, heads: int):
    """Reorders a q or k projection's rows from Hugging Face's rotary layout to llama.cpp's.

    Hugging Face rotates the two halves of each head (i, i + d/2); llama.cpp (like Meta's original checkpoints)
    rotates interleaved pairs (2i, 2i + 1). Each head's rows are split into its two halves and interleaved, which is
    the inverse of the permutation transformers' own Llama converter applies to Meta's weights.
    """
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre_tokenizer: str
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    unknown_token_id: int | None
    adds_bos: bool
    adds_eos: bool
    chat_template: str | None


def _pre_tokenizer_name(tokenizer_json: dict, path: Path) -> str:
    """llama.cpp chooses its split regex by name; the name is read off the tokenizer's own pre-tokenizer, so the
    exported model splits text exactly as the model was trained on."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [(step.get("type"), step.get("individual_digits"), step.get("use_regex")) for step in steps]
    if kinds == [("ByteLevel", None, True)]:
        return "gpt-2"
    if kinds == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"
    raise failure(FailureType.INVALID_SPEC, f"{path}: pre-tokenizer {pre} has no llama.cpp equivalent this exporter knows")


def read_vocabulary(directory: Path, vocab_size: int) -> Vocabulary:
    """A GPT-2-style byte-level BPE tokenizer (SmolLM2's) as GGUF stores it: one token per id up to the model's
    vocabulary size, with unused ids padded, special added tokens marked control and the rest user-defined."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer_path = directory / "tokenizer.json"
    tokenizer_json = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    model = tokenizer_json["model"]
    if model.get("type") != "BPE":
        raise failure(FailureType.INVALID_SPEC, f"{tokenizer_path}: tokenizer model {model.get('type')!r} is not BPE")
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise failure(FailureType.INVALID_SPEC, f"{tokenizer_path}: token id {max(by_id)} exceeds the model's vocab_size {vocab_size}")
    added = tokenizer.added_tokens_decoder
    tokens, token_types = [], []
    for token_id in range(vocab_size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            token_types.append(gguf.TokenType.UNUSED)
        elif token_id in added:
            tokens.append(added[token_id].content)
            token_types.append(gguf.TokenType.CONTROL if added[token_id].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[token_id])
            token_types.append(gguf.TokenType.NORMAL)
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model.get("merges", [])]
    # Whether the tokenizer adds bos/eos around plain text is measured, not read from flags that some configs omit.
    probe = tokenizer("a")["input_ids"]
    return Vocabulary(
        tokens=tokens,
        token_types=[int(token_type) for token_type in token_types],
        merges=merges,
        pre_tokenizer=_pre_tokenizer_name(tokenizer_json, tokenizer_path),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        unknown_token_id=tokenizer.unk_token_id,
        adds_bos=tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id,
        adds_eos=tokenizer.eos_token_id is not None and probe[-1] == tokenizer.eos_token_id,
        chat_template=tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None,
    )


def read_tensors(directory: Path):
    """Yields (name, float32 numpy array) for every tensor in the directory's safetensors files."""
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise failure(FailureType.MODEL_NOT_FOUND, f"{directory} holds no .safetensors file to export")
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open is not iterable)
                yield name, handle.get_tensor(name).float().numpy()


def _gguf_tensor_type(array, gguf_format: str):
    """GGUF's convention: 1-D tensors (norms) stay F32; matrices are F16, or Q8_0 when their rows split into whole
    Q8_0 blocks (a matrix that does not falls back to F16, as llama.cpp's converter does)."""
    import gguf

    if array.ndim == 1:
        return gguf.GGMLQuantizationType.F32
    if gguf_format == "q8_0" and array.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.F16


def write_gguf(directory: Path, parameters: LlamaHyperparameters, vocabulary: Vocabulary, target: Path, gguf_format: str, name: str) -> None:
    """Writes one GGUF file of the model in directory: metadata, tokenizer, then every tensor under its GGUF name."""
    import gguf

    architecture = gguf.MODEL_ARCH.LLAMA
    writer = gguf.GGUFWriter(str(target), gguf.MODEL_ARCH_NAMES[architecture])

    writer.add_name(name)
    writer.add_context_length(parameters.context_length)
    writer.add_embedding_length(parameters.embedding_length)
    writer.add_block_count(parameters.block_count)
    writer.add_feed_forward_length(parameters.feed_forward_length)
    writer.add_head_count(parameters.head_count)
    writer.add_head_count_kv(parameters.head_count_kv)
    writer.add_key_length(parameters.head_dimension)
    writer.add_value_length(parameters.head_dimension)
    writer.add_rope_dimension_count(parameters.head_dimension)
    writer.add_rope_freq_base(parameters.rope_theta)
    writer.add_layer_norm_rms_eps(parameters.rms_norm_epsilon)
    writer.add_vocab_size(parameters.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if gguf_format == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocabulary.pre_tokenizer)
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.token_types)
    writer.add_token_merges(vocabulary.merges)
    for token_id, add in (
        (vocabulary.bos_token_id, writer.add_bos_token_id),
        (vocabulary.eos_token_id, writer.add_eos_token_id),
        (vocabulary.pad_token_id, writer.add_pad_token_id),
        (vocabulary.unknown_token_id, writer.add_unk_token_id),
    ):
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(vocabulary.adds_bos)
    writer.add_add_eos_token(vocabulary.adds_eos)
    if vocabulary.chat_template:
        writer.add_chat_template(vocabulary.chat_template)

    names = gguf.get_tensor_name_map(architecture, parameters.block_count)
    for hf_name, array in read_tensors(directory):
        if hf_name == "lm_head.weight" and parameters.tie_word_embeddings:
            continue  # tied: llama.cpp reuses token_embd.weight as the output matrix
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise failure(FailureType.INVALID_SPEC, f"{directory}: tensor {hf_name!r} has no GGUF name for {architecture.name}")
        if hf_name.endswith("self_attn.q_proj.weight"):
            array = rotary_permute(array, parameters.head_count)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            array = rotary_permute(array, parameters.head_count_kv)
        tensor_type = _gguf_tensor_type(array, gguf_format)
        writer.add_tensor(gguf_name, gguf.quants.quantize(array, tensor_type), raw_dtype=tensor_type)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def ollama_modelfile(gguf_file: str, vocabulary: Vocabulary) -> str:
    """Ollama reads the chat template from the GGUF's tokenizer.chat_template; the Modelfile names the weights and
    the stop token, so generation ends where the model was trained to end."""
    lines = [f"FROM ./{gguf_file}"]
    if vocabulary.eos_token_id is not None:
        lines.append(f"PARAMETER stop {json.dumps(vocabulary.tokens[vocabulary.eos_token_id])}")
    return "\n".join(lines) + "\n"


def export_gguf(payload: dict) -> dict:
    """The export_gguf activity's body (the payload parsed into an ExportGgufRequest here, once): the merged 16/32-bit
    directory at model_uri as GGUF files. Writes <run>/exports whole or not at all and returns each file's URI, size
    and sha256."""
    request = parse(ExportGgufRequest, payload)
    directory = uri_to_path(request.model_uri)
    formats = request.formats
    unknown = sorted(set(formats) - set(GGUF_FORMATS))
    if unknown or not formats:
        raise failure(FailureType.INVALID_SPEC, f"export formats {formats} must be a non-empty subset of {list(GGUF_FORMATS)}")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise failure(FailureType.MODEL_NOT_FOUND, f"{directory} has no config.json: not a merged model directory")
    parameters = LlamaHyperparameters.from_config(json.loads(config_path.read_text()), config_path)
    vocabulary = read_vocabulary(directory, parameters.vocab_size)
    target = uri_to_path(request.run_uri) / "exports"
    with atomic_directory(target, replace=True) as building:
        files = {}
        for gguf_format in formats:
            file_name = f"model-{gguf_format}.gguf"
            write_gguf(directory, parameters, vocabulary, building / file_name, gguf_format, request.name)
            files[gguf_format] = file_name
        source = files.get(MODELFILE_SOURCE_FORMAT, next(iter(files.values())))
        (building / "Modelfile").write_text(ollama_modelfile(source, vocabulary), encoding="utf-8")
        exports = [
            {
                "format": gguf_format,
                "uri": path_to_uri(target / file_name),
                "bytes": (building / file_name).stat().st_size,
                "sha256": sha256_of_file(building / file_name),
            }
            for gguf_format, file_name in files.items()
        ]
        result = {"exports": exports, "modelfile_uri": path_to_uri(target / "Modelfile"), "source_uri": request.model_uri}
        (building / "export.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result
