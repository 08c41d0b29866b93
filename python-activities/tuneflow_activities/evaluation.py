"""Base vs tuned on the validation rows: loss, perplexity, and greedy generations for the sample prompts.

One base model is loaded, through the training loaders and as training loaded it (a 4-bit run evaluates on its
4-bit base), and the adapter is applied on top of it; `disable_adapter()` gives the base's outputs, so both sides
see identical weights, tokenisation and rows.
"""

import math

from .artifacts import uri_to_path
from .data import batches, collate, read_tokenized_split, rows_for_training
from .loaders import TrainingSetup, load_with_adapter
from .suites import run_suites

EVALUATION_BATCH_SIZE = 8


def validation_batch_count(rows: int) -> int:
    return -(-rows // EVALUATION_BATCH_SIZE)


def validation_loss_sums(model, rows, pad_token_id: int, device: str, at_least_batches: int = 0, filler: list = ()) -> tuple[float, int]:
    """The summed token loss over the rows and the tokens it is over. `at_least_batches` runs the first batch (or the
    `filler` rows) again, uncounted, until that many forward passes ran: sharded processes must all run as many."""
    import torch

    total_loss, total_tokens = 0.0, 0
    row_batches = list(batches(rows, EVALUATION_BATCH_SIZE))
    with torch.no_grad():
        for index in range(max(len(row_batches), at_least_batches)):
            counted = index < len(row_batches)
            batch_rows = row_batches[index] if counted else (row_batches[0] if row_batches else list(filler))
            batch = {key: value.to(device) for key, value in collate(batch_rows, pad_token_id).items()}
            # num_items_in_batch=1 makes the model return the summed token loss, so the mean is over all tokens.
            loss = model(**batch, num_items_in_batch=1).loss.item()
            if counted:
                total_loss += loss
                total_tokens += sum(row.trainable_tokens for row in batch_rows)
    return total_loss, total_tokens


def validation_loss(model, rows, pad_token_id: int, device: str) -> float | None:
    total_loss, total_tokens = validation_loss_sums(model, rows, pad_token_id, device)
    return total_loss / total_tokens if total_tokens else None


def _generate(model, tokenizer, prompt: str, max_new_tokens: int, device: str) -> str:
    import torch

    encoded = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    encoded = {key: value.to(device) for key, value in encoded.items()}
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(output[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def evaluate(request: dict) -> dict:
    spec = request["spec"]
    setup = TrainingSetup.from_request(request)
    device = setup.device
    loaded = load_with_adapter(uri_to_path(request["model_uri"]), uri_to_path(request["adapter_uri"]), spec, setup)
    model, tokenizer = loaded.model, loaded.tokenizer

    split = read_tokenized_split(uri_to_path(request["val_tokens_uri"]))
    rows = rows_for_training(split, spec["model"]["max_seq_length"], spec["train"]["loss_on"], "truncate")
    limit = spec["evaluate"].get("max_rows")
    rows = rows[:limit] if limit else rows
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with model.disable_adapter():
        base_loss = validation_loss(model, rows, pad_token_id, device)
    tuned_loss = validation_loss(model, rows, pad_token_id, device)

    max_new_tokens = spec["evaluate"]["max_new_tokens"]
    samples = []
    for prompt in spec["evaluate"]["sample_prompts"]:
        with model.disable_adapter():
            base_output = _generate(model, tokenizer, prompt, max_new_tokens, device)
        samples.append({"prompt": prompt, "base": base_output, "tuned": _generate(model, tokenizer, prompt, max_new_tokens, device)})
    return {
        "val_rows": len(rows),
        "val_tokens": sum(row.trainable_tokens for row in rows),
        "base_val_loss": base_loss,
        "tuned_val_loss": tuned_loss,
        "base_perplexity": math.exp(base_loss) if base_loss is not None else None,
        "tuned_perplexity": math.exp(tuned_loss) if tuned_loss is not None else None,
        "samples": samples,
        "suites": run_suites(spec, model, tokenizer, split, device),
    }
