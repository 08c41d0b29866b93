"""GGUF export of the tiny Llama: the file llama.cpp reads back holds the model's hyperparameters, its whole
tokenizer and chat template, and every weight (rotary-permuted q/k, F16 or Q8_0) under its GGUF name."""

import json

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from temporalio.exceptions import ApplicationError
from transformers import AutoTokenizer

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.contract import FailureType
from tuneflow_activities.exporting import export_gguf, rotary_permute


def hugging_face_permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """transformers' convert_llama_weights_to_hf permutation (Meta layout → Hugging Face layout)."""
    rows, columns = weight.shape
    return weight.view(heads, rows // heads // 2, 2, columns).transpose(1, 2).reshape(rows, columns)


def test_rotary_permute_undoes_the_hugging_face_permutation():
    meta_layout = torch.arange(4 * 8 * 3, dtype=torch.float32).reshape(4 * 8, 3)
    hugging_face_layout = hugging_face_permute(meta_layout, heads=4)
    assert not torch.equal(hugging_face_layout, meta_layout)
    assert torch.equal(torch.from_numpy(rotary_permute(hugging_face_layout.numpy(), heads=4)), meta_layout)


def field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.fixture(scope="module")
def exported(tiny_model_uri, tmp_path_factory) -> dict:
    run_uri = tmp_path_factory.mktemp("export-run").as_uri()
    return export_gguf({"model_uri": tiny_model_uri, "run_uri": run_uri, "formats": ["f16", "q8_0"], "name": "tiny"})


def test_export_writes_both_formats_a_modelfile_and_a_record(exported):
    files = {entry["format"]: uri_to_path(entry["uri"]) for entry in exported["exports"]}
    assert sorted(files) == ["f16", "q8_0"]
    for entry in exported["exports"]:
        assert uri_to_path(entry["uri"]).stat().st_size == entry["bytes"]
    assert files["q8_0"].stat().st_size < files["f16"].stat().st_size
    modelfile = uri_to_path(exported["modelfile_uri"]).read_text()
    assert modelfile == 'FROM ./model-q8_0.gguf\nPARAMETER stop "<|im_end|>"\n'
    assert json.loads((files["f16"].parent / "export.json").read_text()) == exported
    assert not [entry for entry in files["f16"].parent.parent.iterdir() if entry.name.startswith(".tmp-")]


def test_gguf_holds_hyperparameters_tokenizer_and_chat_template(exported, tiny_model_uri):
    directory = uri_to_path(tiny_model_uri)
    config = json.loads((directory / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    reader = gguf.GGUFReader(uri_to_path(exported["exports"][0]["uri"]))

    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.block_count") == config["num_hidden_layers"]
    assert field(reader, "llama.attention.head_count") == config["num_attention_heads"]
    assert field(reader, "llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert field(reader, "llama.embedding_length") == config["hidden_size"]
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.pre") == "gpt-2"
    tokens = field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == config["vocab_size"]
    for token, token_id in tokenizer.get_vocab().items():
        assert tokens[token_id] == token
    types = field(reader, "tokenizer.ggml.token_type")
    assert types[tokenizer.eos_token_id] == gguf.TokenType.CONTROL
    assert types[tokenizer.convert_tokens_to_ids("Ġthe")] == gguf.TokenType.NORMAL
    merges = json.loads((directory / "tokenizer.json").read_text())["model"]["merges"]
    assert field(reader, "tokenizer.ggml.merges")[:3] == [" ".join(merge) for merge in merges[:3]]
    assert field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field(reader, "tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert field(reader, "tokenizer.ggml.add_bos_token") is False
    assert field(reader, "tokenizer.chat_template") == tokenizer.chat_template


def test_weights_are_permuted_and_quantised_within_q8_0_error(exported, tiny_model_uri):
    weights = load_file(str(uri_to_path(tiny_model_uri) / "model.safetensors"))
    config = json.loads((uri_to_path(tiny_model_uri) / "config.json").read_text())
    readers = {entry["format"]: gguf.GGUFReader(uri_to_path(entry["uri"])) for entry in exported["exports"]}
    # Tied embeddings: no output.weight, llama.cpp reuses token_embd.
    assert {tensor.name for tensor in readers["f16"].tensors} == {tensor.name for tensor in readers["q8_0"].tensors}
    assert "output.weight" not in {tensor.name for tensor in readers["f16"].tensors}
    assert len(readers["f16"].tensors) == len([name for name in weights if name != "lm_head.weight"])

    expected = {
        "token_embd.weight": weights["model.embed_tokens.weight"].numpy(),
        "blk.1.attn_q.weight": rotary_permute(weights["model.layers.1.self_attn.q_proj.weight"].numpy(), config["num_attention_heads"]),
        "blk.1.attn_k.weight": rotary_permute(weights["model.layers.1.self_attn.k_proj.weight"].numpy(), config["num_key_value_heads"]),
        "blk.0.ffn_norm.weight": weights["model.layers.0.post_attention_layernorm.weight"].numpy(),
    }
    for gguf_format, tolerance in (("f16", 1e-3), ("q8_0", 1e-2)):
        tensors = {tensor.name: tensor for tensor in readers[gguf_format].tensors}
        for name, values in expected.items():
            tensor = tensors[name]
            if values.ndim == 1:
                assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
            else:
                wanted = gguf.GGMLQuantizationType.Q8_0 if gguf_format == "q8_0" else gguf.GGMLQuantizationType.F16
                assert tensor.tensor_type == wanted
            restored = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(values.shape)
            assert np.abs(restored - values).max() <= tolerance * max(1.0, np.abs(values).max()), (gguf_format, name)


def test_unknown_format_and_unsupported_architecture_fail_without_retry(tiny_model_uri, tmp_path):
    with pytest.raises(ApplicationError) as unknown:
        export_gguf({"model_uri": tiny_model_uri, "run_uri": tmp_path.as_uri(), "formats": ["q4_k"], "name": "tiny"})
    assert unknown.value.type == FailureType.INVALID_SPEC.value and unknown.value.non_retryable

    directory = tmp_path / "not-llama"
    directory.mkdir()
    config = json.loads((uri_to_path(tiny_model_uri) / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "architectures": ["MistralForCausalLM"]}))
    with pytest.raises(ApplicationError, match="MistralForCausalLM"):
        export_gguf({"model_uri": directory.as_uri(), "run_uri": tmp_path.as_uri(), "formats": ["f16"], "name": "x"})
    assert not (tmp_path / "exports").exists()
