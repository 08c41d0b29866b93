"""The artifacts are standard: PEFT loads the adapter, transformers loads the merged model, and both generate
the same text (merging is exact up to float rounding)."""

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneflow_activities.artifacts import uri_to_path
from tuneflow_activities.evaluation import evaluate
from tuneflow_activities.merging import merge


def test_adapter_and_merged_model_load_and_generate(straight_run, tiny_model_uri, tmp_path):
    # The 12-step run of TINY_SPEC (conftest's straight_run); the merge writes into a run directory of its own.
    request, trained = straight_run
    # Each stage's request as the workflow sends it: the fields of its contract, no more.
    merge_run = {"run_uri": (tmp_path / "run").as_uri(), "adapter_uri": trained["adapter_uri"]}
    merged = merge({key: request[key] for key in ("spec", "setup", "model_uri")} | merge_run)

    base_directory = uri_to_path(tiny_model_uri)
    tokenizer = AutoTokenizer.from_pretrained(base_directory)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe Anna, 52, a baker in Gdansk, as JSON."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )

    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_directory), uri_to_path(trained["adapter_uri"]))
    merged_model = AutoModelForCausalLM.from_pretrained(uri_to_path(merged["merged_uri"]))
    outputs = []
    for model in (with_adapter, merged_model):
        model.eval()
        with torch.no_grad():
            generated = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        outputs.append(generated[0, prompt["input_ids"].shape[1] :].tolist())
        assert len(outputs[-1]) > 0
    assert outputs[0] == outputs[1]

    with torch.no_grad():
        adapter_logits = with_adapter(**prompt).logits
        merged_logits = merged_model(**prompt).logits
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-4)

    evaluation = evaluate({key: request[key] for key in ("spec", "setup", "model_uri", "val_tokens_uri")} | {"adapter_uri": trained["adapter_uri"]})
    assert evaluation["val_rows"] == 16
    assert evaluation["tuned_val_loss"] < evaluation["base_val_loss"]
    assert evaluation["samples"][0]["tuned"] != ""
