"""Test helper for gguf-llama-cpp.test.ts: exports a builtin model as GGUF with tuneflow's exporter, then prints
what transformers does with the same prompt (prompt ids, greedy continuation, top first tokens) as one JSON line.

argv: model source (a builtin name), run directory, user prompt, number of greedy tokens.
"""

import tuneflow_activities.offline  # noqa: F401, I001  (before any Hugging Face import)

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneflow_activities.exporting import export_gguf
from tuneflow_activities.models import model_uri, resolve_model_directory

source, run_directory, prompt, new_tokens = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
resolved = resolve_model_directory(source)
exported = export_gguf({"model_uri": model_uri(resolved), "run_uri": run_directory.as_uri(), "formats": ["f16", "q8_0"], "name": source})

tokenizer = AutoTokenizer.from_pretrained(str(resolved.directory))
model = AutoModelForCausalLM.from_pretrained(str(resolved.directory), dtype=torch.float32).eval()
messages = [{"role": "user", "content": prompt}]
prompt_text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
prompt_ids = encoded["input_ids"][0].tolist()
with torch.no_grad():
    first_logits = model(**encoded).logits[0, -1]
    generated = model.generate(**encoded, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(
    json.dumps(
        {
            "exports": exported["exports"],
            "modelfile_uri": exported["modelfile_uri"],
            "prompt_text": prompt_text,
            "prompt_ids": prompt_ids,
            "greedy_ids": generated[0, len(prompt_ids) :].tolist(),
            "top_first_ids": first_logits.topk(5).indices.tolist(),
        }
    )
)
