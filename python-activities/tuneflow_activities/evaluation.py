"""Base vs tuned on the held-out examples (the objective's metrics: loss and perplexity; for dpo also how often each
model prefers the chosen response), and greedy generations for the sample prompts.

One base model is loaded, through the training loaders and as training loaded it (a 4-bit run evaluates on its
4-bit base), and the adapter is applied on top of it; `disable_adapter()` gives the base's outputs, so both sides
see identical weights, tokenisation and rows.
"""

from .artifacts import uri_to_path
from .data import read_tokenized_split
from .loaders import load_with_adapter
from .objectives import objective_for
from .payloads import EvaluateRequest, parse
from .suites import run_suites


def _generate(model, tokenizer, prompt: str, max_new_tokens: int, device: str) -> str:
    import torch

    encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    encoded = {key: value.to(device) for key, value in encoded.items()}
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def evaluate(payload: dict) -> dict:
    """The evaluate activity's body; the payload is parsed into an EvaluateRequest here, once."""
    request = parse(EvaluateRequest, payload)
    spec, setup = request.spec, request.setup
    loaded = load_with_adapter(uri_to_path(request.model_uri), uri_to_path(request.adapter_uri), spec, setup)
    model, tokenizer = loaded.model, loaded.tokenizer
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Evaluation scores what training fed the model; no packing (each example is scored on its own).
    objective = objective_for(spec, setup.for_evaluation(), pad_token_id)
    split = read_tokenized_split(uri_to_path(request.val_tokens_uri))
    examples = objective.examples(split, "truncate")[: spec.evaluate.max_rows]
    metrics = objective.evaluate(model, examples)

    samples = []
    for prompt in spec.evaluate.sample_prompts:
        with model.disable_adapter():
            base_output = _generate(model, tokenizer, prompt, spec.evaluate.max_new_tokens, setup.device)
        samples.append({"prompt": prompt, "base": base_output, "tuned": _generate(model, tokenizer, prompt, spec.evaluate.max_new_tokens, setup.device)})
    return {**metrics, "samples": samples, "suites": run_suites(spec, model, tokenizer, split, setup.device, request.challenger)}
