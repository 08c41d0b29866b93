#!/usr/bin/env python3
"""LoRA / QLoRA training-throughput and peak-VRAM benchmark: HF+PEFT vs Unsloth.

Methods (same LoRA config everywhere: r=64, alpha=64, dropout 0, bias none, all 7 linear
projections, sequence 2048, gradient checkpointing on, bitsandbytes AdamW 8-bit, bf16 autocast):
  a   transformers + PEFT, bf16 base                         (backend hf-peft, quantization none)
  a4  transformers + PEFT + bitsandbytes nf4 double-quant,
      bf16 compute, prepare_model_for_kbit_training          (backend hf-peft, quantization 4bit)
  b   Unsloth FastLanguageModel, bf16 base                   (backend unsloth, quantization none)
  c   Unsloth FastLanguageModel, load_in_4bit                (backend unsloth, quantization 4bit)

No model hub is reachable on the device, so random-initialised models of the real shapes are
built on the GPU and saved to local disk once per invocation (weights' values do not change
speed or memory). Every (size, method) runs in a fresh subprocess; inside it the micro-batch
sizes run in increasing order, with torch.cuda.empty_cache() + reset_peak_memory_stats()
between them (the load cost dominates, so one load serves all micro-batches).

Usage (device):
  python3 bench/gpu/bench_lora.py --plan "1b:a,a4,b,c:1,4;3b:a,c:1" --out $OUT --budget-s 420 --notes
CPU logic test (no GPU, no bitsandbytes, no unsloth):
  python3 bench/gpu/bench_lora.py --plan "tiny:a:1,2" --out /tmp/o --cpu-test
See bench/gpu/README.md for the record format.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python-activities"))

SEQ = 2048
RANK = 64
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PEAK_BF16_SPEC = 989e12  # H200 SXM dense bf16, datasheet
PEAK_BF16_MEASURED = 790e12  # 8192^3 bf16 matmul measured on this workplace's H200 (KINDS.md)

ARCH = {
    # name: (layers, hidden, intermediate, heads, kv_heads, vocab, tied)
    "8b": dict(
        model="llama-3.1-8b",
        num_layers=32,
        hidden_size=4096,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),
    "3b": dict(
        model="llama-3.2-3b",
        num_layers=28,
        hidden_size=3072,
        intermediate_size=8192,
        num_attention_heads=24,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    "1b": dict(
        model="llama-3.2-1b",
        num_layers=16,
        hidden_size=2048,
        intermediate_size=8192,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
    ),
    # CPU logic test only
    "tiny": dict(
        model="tiny-test",
        num_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
        tie_word_embeddings=True,
    ),
}
METHODS = {
    "a": dict(backend="hf-peft", quantization="none", gradient_checkpointing=True),
    "a4": dict(backend="hf-peft", quantization="4bit", gradient_checkpointing=True),
    "b": dict(backend="unsloth", quantization="none", gradient_checkpointing="unsloth"),
    "c": dict(backend="unsloth", quantization="4bit", gradient_checkpointing="unsloth"),
    # The planner's terms session 1 modelled without measuring: LLM.int8 and no gradient checkpointing.
    "a8": dict(backend="hf-peft", quantization="8bit", gradient_checkpointing=True),
    "b8": dict(backend="unsloth", quantization="8bit", gradient_checkpointing="unsloth"),
    "an": dict(backend="hf-peft", quantization="none", gradient_checkpointing=False),
    "bn": dict(backend="unsloth", quantization="none", gradient_checkpointing=False),
}


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def arch_record(size):
    a = ARCH[size]
    return dict(
        num_layers=a["num_layers"],
        hidden_size=a["hidden_size"],
        intermediate_size=a["intermediate_size"],
        num_attention_heads=a["num_attention_heads"],
        num_key_value_heads=a["num_key_value_heads"],
        head_dim=a["hidden_size"] // a["num_attention_heads"],
        vocab_size=a["vocab_size"],
        tie_word_embeddings=a["tie_word_embeddings"],
    )


def flop_counts(size, seq):
    """Per-token FLOP counts. N_lin = weights that take part in a matmul (all q/k/v/o/gate/up/down
    plus lm_head, once even when tied; the input-embedding lookup and norms are excluded)."""
    a = arch_record(size)
    L, d, ff, hd = a["num_layers"], a["hidden_size"], a["intermediate_size"], a["head_dim"]
    q = a["num_attention_heads"] * hd
    kv = a["num_key_value_heads"] * hd
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * ff
    n_lin = L * per_layer + a["vocab_size"] * d
    n_total = L * per_layer + a["vocab_size"] * d * (1 if a["tie_word_embeddings"] else 2) + (2 * L + 1) * d
    attn_fb = 12 * L * q * seq  # PaLM/Megatron: QK^T and AV, fwd+bwd, no causal halving
    return dict(
        n_params_total=n_total,
        n_params_matmul=n_lin,
        model_flops_per_token=6 * n_lin + attn_fb,  # conventional MFU numerator
        flops_per_token_6n=6 * n_lin,
        lora_useful_flops_per_token=4 * n_lin + attn_fb,  # fwd 2N + activation-grad 2N (frozen W: no wgrad)
        hardware_flops_per_token=6 * n_lin + attn_fb + 4 * L * q * seq,
    )  # + 2N / attn-fwd recompute (GC)


# ----------------------------------------------------------------------------------------------
# model building
# ----------------------------------------------------------------------------------------------


def build_tokenizer(path, vocab_words=2000):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for i in range(vocab_words):
        vocab[f"w{i}"] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
        unk_token="<unk>",
        model_max_length=131072,
    )
    tok.save_pretrained(path)


def build_model(size, path, device):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    a = ARCH[size]
    cfg = LlamaConfig(
        hidden_size=a["hidden_size"],
        intermediate_size=a["intermediate_size"],
        num_hidden_layers=a["num_layers"],
        num_attention_heads=a["num_attention_heads"],
        num_key_value_heads=a["num_key_value_heads"],
        vocab_size=a["vocab_size"],
        tie_word_embeddings=a["tie_word_embeddings"],
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0 if size == "8b" else 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        dtype="bfloat16",
    )
    t = time.time()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    if device == "cuda":
        torch.cuda.synchronize()
    t_init = time.time() - t
    t = time.time()
    model.save_pretrained(path, max_shard_size="5GB")
    build_tokenizer(path)
    t_save = time.time() - t
    n = sum(p.numel() for p in model.parameters())
    log(f"built {size} ({n / 1e9:.3f} B params) init {t_init:.1f}s save {t_save:.1f}s -> {path}")
    return dict(init_s=t_init, save_s=t_save, params=n)


# ----------------------------------------------------------------------------------------------
# worker: one (size, method), several micro-batches
# ----------------------------------------------------------------------------------------------

NET_EVENTS = []


def _audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo") and len(NET_EVENTS) < 50:
        try:
            NET_EVENTS.append(f"{event} {args[1] if event == 'socket.connect' else args[0]}")
        except Exception:
            NET_EVENTS.append(event)


# Each method's spec and setup, made by the product (bench/gpu/bench_lora_requests.ts: spec schema defaults,
# resolveTrainingSetup), never written here.
REQUESTS = json.loads(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "inputs", "bench-lora-requests.json")).read())


def bench_request(method, cpu_test):
    """(spec, setup) as the worker's typed payloads, for this method on the device or the CPU test."""
    from tuneflow_activities.payloads import Spec, TrainingSetup, parse

    entry = REQUESTS["cpu" if cpu_test else "cuda"][method]
    return parse(Spec, entry["spec"]), parse(TrainingSetup, entry["setup"])


def load_model(method, path, cpu_test, tm):
    """Returns (model, info dict), loaded by tuneflow's own loader (tuneflow_activities.loaders) as training loads it.
    Unsloth is imported here, before transformers/peft."""
    info = {}
    if METHODS[method]["backend"] == "unsloth":
        t = time.time()
        import unsloth  # noqa: F401  (must precede transformers / peft)

        info["unsloth_import_s"] = round(time.time() - t, 2)
    from pathlib import Path

    from tuneflow_activities.loaders import load_for_training

    t = time.time()
    # The product loads the base and attaches LoRA in one call: load_s covers both (peft_s is no longer separate).
    model = load_for_training(Path(path), *bench_request(method, cpu_test)).model
    info["load_s"] = round(time.time() - t, 2)
    if METHODS[method]["backend"] == "unsloth":
        try:
            info["input_embedding_device"] = str(model.get_input_embeddings().weight.device)
        except Exception as e:  # pragma: no cover
            info["input_embedding_device"] = f"? {e}"
    return model, info


def make_optimizer(model, method, cpu_test):
    from tuneflow_activities.training import build_optimizer

    spec, setup = bench_request(method, cpu_test)
    return build_optimizer(setup.optimizer, [p for p in model.parameters() if p.requires_grad], spec.train), setup.optimizer


def train_mb(model, opt, method, size, mb, warmup, steps, cpu_test, deadline, profile_path=None, tag=""):
    """Times tuneflow's own training step (training.forward_backward + apply_gradients, the SFT objective's loss) on
    fixed-length rows."""
    import torch
    from transformers import get_scheduler

    from tuneflow_activities.objectives import objective_for
    from tuneflow_activities.training import apply_gradients, autocast_for, forward_backward

    spec, setup = bench_request(method, cpu_test)
    objective = objective_for(spec, setup, pad_token_id=0)

    cuda = not cpu_test
    vocab = ARCH[size]["vocab_size"]
    seq = SEQ if not cpu_test else 64
    g = torch.Generator(device="cpu").manual_seed(1234 + mb)
    ids = torch.randint(0, vocab, (mb, seq), generator=g).to("cuda" if cuda else "cpu")
    batch = {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    scheduler = get_scheduler(spec.train.lr_scheduler, opt)
    autocast = autocast_for(setup)
    max_grad_norm = spec.train.max_grad_norm
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model.train()

    def one_step():
        t0 = time.perf_counter()
        loss = forward_backward(objective, model, batch, mb * (seq - 1), autocast).loss.detach()
        sync()
        t1 = time.perf_counter()
        apply_gradients(opt, scheduler, trainable, max_grad_norm)
        sync()
        t2 = time.perf_counter()
        return loss, t1 - t0, t2 - t1

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    wtimes = []
    for _ in range(warmup):
        t = time.perf_counter()
        one_step()
        wtimes.append(time.perf_counter() - t)
    if cuda:
        warm_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    rows = []
    t_all = time.perf_counter()
    for i in range(steps):
        rows.append(one_step())
        if time.time() > deadline and i >= 1:
            break
    total = time.perf_counter() - t_all
    n = len(rows)
    rec = dict(timed_steps=n, warmup_steps=warmup, warmup_step_seconds=[round(x, 3) for x in wtimes])
    st = sorted(r[1] + r[2] for r in rows)
    rec["step_seconds"] = total / n
    rec["step_seconds_median"] = st[n // 2]
    rec["phase_seconds_median"] = {k: sorted(r[j] for r in rows)[n // 2] for j, k in ((1, "forward_backward"), (2, "optimizer"))}
    tok = mb * seq
    rec["tokens_per_second"] = tok * n / total
    rec["tokens_per_hour"] = rec["tokens_per_second"] * 3600
    rec["final_loss"] = float(rows[-1][0])
    if cuda:
        gib = 1024**3
        rec["peak_vram_allocated_gib"] = torch.cuda.max_memory_allocated() / gib
        rec["peak_vram_reserved_gib"] = torch.cuda.max_memory_reserved() / gib
        rec["peak_vram_allocated_during_warmup_gib"] = warm_peak / gib
        free, tot = torch.cuda.mem_get_info()
        rec["device_used_gib_after"] = (tot - free) / gib
    if profile_path and cuda:
        try:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                one_step()
            tab = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70)
            with open(profile_path, "a") as f:
                f.write(f"\n===== {tag} mb={mb} (one step under torch.profiler) =====\n{tab}\n")
        except Exception as e:
            with open(profile_path, "a") as f:
                f.write(f"\n===== {tag} mb={mb}: profiler failed: {e!r}\n")
    return rec


def worker(args):
    sys.addaudithook(_audit)
    size, method = args.size, args.method
    deadline = time.time() + args.worker_budget_s
    base = dict(
        method=method,
        backend=METHODS[method]["backend"],
        quantization=METHODS[method]["quantization"],
        model=ARCH[size]["model"],
        architecture=arch_record(size),
        lora_rank=RANK,
        lora_alpha=RANK,
        target_modules=TARGETS,
        sequence_length=SEQ if not args.cpu_test else 64,
        gradient_checkpointing=METHODS[method]["gradient_checkpointing"],
        autocast="bf16",
    )
    mbs = [int(x) for x in args.mbs.split(",")]

    def emit(rec):
        with open(args.result_file, "a") as f:
            f.write(json.dumps(rec) + "\n")

    t0 = time.time()
    try:
        model, info = load_model(method, args.model_path, args.cpu_test, None)
        opt, opt_name = make_optimizer(model, method, args.cpu_test)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        info["trainable_params"] = trainable
        info["setup_s"] = round(time.time() - t0, 2)
        log(f"{size}/{method}: loaded {info}")
    except Exception as e:
        tb = traceback.format_exc()
        print(tb, flush=True)
        for mb in mbs:
            emit(
                dict(
                    base,
                    micro_batch_size=mb,
                    status="oom" if "out of memory" in str(e).lower() else "error",
                    error=f"{type(e).__name__}: {e}"[:2000],
                    network_events=NET_EVENTS,
                )
            )
        return
    fl = flop_counts(size, base["sequence_length"])
    for mb in mbs:
        rec = dict(base, micro_batch_size=mb, optimizer=opt_name, **info)
        if time.time() > deadline - 10:
            emit(dict(rec, status="skipped", error="worker time budget exhausted"))
            continue
        try:
            warmup = args.warmup if mb == 1 else max(2, args.warmup - 1)
            steps = args.steps if mb == 1 else max(3, args.steps - 2)
            r = train_mb(
                model,
                opt,
                method,
                size,
                mb,
                warmup,
                steps,
                args.cpu_test,
                deadline,
                profile_path=args.profile_file if mb == 1 else None,
                tag=f"{size}/{method}",
            )
            rec.update(r)
            tps = r["tokens_per_second"]
            rec["model_flops_per_token"] = fl["model_flops_per_token"]
            rec["model_flops_per_second"] = tps * fl["model_flops_per_token"]
            rec["mfu"] = rec["model_flops_per_second"] / PEAK_BF16_SPEC
            rec["mfu_vs_measured_790"] = rec["model_flops_per_second"] / PEAK_BF16_MEASURED
            rec["mfu_6n_only"] = tps * fl["flops_per_token_6n"] / PEAK_BF16_SPEC
            rec["lora_useful_flops_per_second"] = tps * fl["lora_useful_flops_per_token"]
            rec["mfu_lora"] = rec["lora_useful_flops_per_second"] / PEAK_BF16_SPEC
            rec["hfu_with_recompute"] = tps * fl["hardware_flops_per_token"] / PEAK_BF16_SPEC
            rec.update(n_params_total=fl["n_params_total"], n_params_matmul=fl["n_params_matmul"])
            rec["status"] = "ok"
            rec["error"] = None
            log(
                f"{size}/{method} mb={mb}: {tps:,.0f} tok/s, step {r['step_seconds']:.3f}s, "
                f"peak alloc {r.get('peak_vram_allocated_gib', 0):.2f} GiB, reserved "
                f"{r.get('peak_vram_reserved_gib', 0):.2f} GiB, loss {r['final_loss']:.3f}"
            )
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            oom = "out of memory" in msg.lower() or isinstance(e, getattr(__import__("torch").cuda, "OutOfMemoryError", ()))
            print(traceback.format_exc(), flush=True)
            rec.update(status="oom" if oom else "error", error=msg[:2000])
            try:
                import torch

                opt.zero_grad(set_to_none=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:
                pass
        rec["network_events"] = list(NET_EVENTS)
        emit(rec)


# ----------------------------------------------------------------------------------------------
# notes worker: facts for tuneflow's Unsloth loader (1B model)
# ----------------------------------------------------------------------------------------------


def notes_worker(args):
    sys.addaudithook(_audit)
    out = {}

    def save():
        with open(args.result_file, "w") as f:
            json.dump(out, f, indent=1, default=str)

    env_before = {k: v for k, v in os.environ.items() if k.startswith(("UNSLOTH", "HF_", "TRANSFORMERS", "TORCH", "PYTORCH", "CUDA"))}
    t = time.time()
    import unsloth
    from unsloth import FastLanguageModel

    out["import_unsloth_s"] = round(time.time() - t, 2)
    out["modules_loaded_by_import"] = sorted(
        m
        for m in ("transformers", "peft", "trl", "datasets", "bitsandbytes", "torchao", "xformers", "cut_cross_entropy", "diffusers", "vllm", "flash_attn")
        if m in sys.modules
    )
    env_after = {k: v for k, v in os.environ.items() if k.startswith(("UNSLOTH", "HF_", "TRANSFORMERS", "TORCH", "PYTORCH", "CUDA"))}
    out["env_set_by_unsloth_import"] = {k: v for k, v in env_after.items() if env_before.get(k) != v}
    out["network_events_after_import"] = list(NET_EVENTS)
    save()
    import peft
    import torch
    import transformers

    out["versions"] = dict(unsloth=getattr(unsloth, "__version__", "?"), transformers=transformers.__version__, peft=peft.__version__, torch=torch.__version__)
    path = args.model_path
    t = time.time()
    model, tok = FastLanguageModel.from_pretrained(model_name=path, max_seq_length=SEQ, load_in_4bit=False, load_in_16bit=True, dtype=torch.bfloat16)
    out["from_pretrained_local_dir_bf16_s"] = round(time.time() - t, 2)
    out["model_class"] = type(model).__name__
    out["tokenizer_class"] = type(tok).__name__
    out["network_events_after_load"] = list(NET_EVENTS)
    out["model_attrs"] = {k: str(getattr(model, k, None)) for k in ("max_seq_length",)}
    out["config_attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    save()
    t = time.time()
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=16, target_modules=TARGETS, lora_dropout=0, bias="none", use_gradient_checkpointing="unsloth", random_state=3407
    )
    out["get_peft_model_s"] = round(time.time() - t, 2)
    out["peft_model_class"] = type(model).__name__
    out["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out["lora_param_dtypes"] = sorted({str(p.dtype) for n, p in model.named_parameters() if p.requires_grad})
    out["is_gradient_checkpointing"] = getattr(model, "is_gradient_checkpointing", None)
    out["training_flag_after_get_peft_model"] = model.training
    FastLanguageModel.for_inference(model)
    out["training_flag_after_for_inference"] = model.training
    FastLanguageModel.for_training(model)
    out["training_flag_after_for_training"] = model.training
    save()
    import bitsandbytes as bnb

    opt = bnb.optim.AdamW8bit([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    ids = torch.randint(4, 2000, (2, 256), device="cuda")
    t = time.time()
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    torch.cuda.synchronize()
    out["three_small_steps_s"] = round(time.time() - t, 2)
    adir = os.path.join(args.scratch, "adapter")
    t = time.time()
    model.save_pretrained(adir)
    tok.save_pretrained(adir)
    out["save_pretrained_adapter_s"] = round(time.time() - t, 2)
    out["adapter_files"] = sorted(os.listdir(adir))
    try:
        with open(os.path.join(adir, "adapter_config.json")) as f:
            ac = json.load(f)
        out["adapter_config_subset"] = {
            k: ac.get(k) for k in ("base_model_name_or_path", "peft_type", "task_type", "r", "lora_alpha", "target_modules", "bias", "lora_dropout")
        }
    except Exception as e:
        out["adapter_config_subset"] = repr(e)
    # logits for the cross-check in a plain HF+PEFT process
    FastLanguageModel.for_inference(model)
    probe = torch.arange(4, 68, device="cuda").view(1, -1)
    with torch.no_grad():
        lg = model(input_ids=probe).logits.float().cpu()
    torch.save(lg, os.path.join(args.scratch, "unsloth_logits.pt"))
    FastLanguageModel.for_training(model)
    save()
    # merged 16-bit export (what a GGUF step would consume)
    try:
        t = time.time()
        mdir = os.path.join(args.scratch, "merged16")
        model.save_pretrained_merged(mdir, tok, save_method="merged_16bit")
        out["save_pretrained_merged_16bit_s"] = round(time.time() - t, 2)
        out["merged_files"] = sorted(os.listdir(mdir))
    except Exception as e:
        out["save_pretrained_merged_16bit_error"] = f"{type(e).__name__}: {e}"[:800]
    save()
    # reload the adapter through Unsloth itself
    del model, opt
    torch.cuda.empty_cache()
    try:
        t = time.time()
        m2, _ = FastLanguageModel.from_pretrained(model_name=adir, max_seq_length=SEQ, load_in_4bit=False, load_in_16bit=True, dtype=torch.bfloat16)
        out["unsloth_reload_adapter_dir_s"] = round(time.time() - t, 2)
        out["unsloth_reload_adapter_class"] = type(m2).__name__
        FastLanguageModel.for_inference(m2)
        with torch.no_grad():
            lg2 = m2(input_ids=probe).logits.float().cpu()
        out["unsloth_reload_max_abs_logit_diff"] = float((lg2 - lg).abs().max())
    except Exception as e:
        out["unsloth_reload_adapter_error"] = f"{type(e).__name__}: {e}"[:800]
    out["network_events_total"] = list(NET_EVENTS)
    save()


def plain_reload_worker(args):
    """Fresh process WITHOUT unsloth: base + PeftModel.from_pretrained(adapter) must match."""
    out = {}
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adir = os.path.join(args.scratch, "adapter")
    t = time.time()
    base = AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.bfloat16, device_map={"": 0})
    probe = torch.arange(4, 68, device="cuda").view(1, -1)
    with torch.no_grad():
        lb = base(input_ids=probe).logits.float().cpu()
    m = PeftModel.from_pretrained(base, adir)
    m.eval()
    out["plain_peft_reload_s"] = round(time.time() - t, 2)
    with torch.no_grad():
        lp = m(input_ids=probe).logits.float().cpu()
    lu = torch.load(os.path.join(args.scratch, "unsloth_logits.pt"))
    out["max_abs_logit_diff_unsloth_vs_plain_peft"] = float((lp - lu).abs().max())
    out["max_abs_logit_diff_base_vs_adapter"] = float((lb - lp).abs().max())
    out["logit_abs_mean"] = float(lp.abs().mean())
    with open(args.result_file, "w") as f:
        json.dump(out, f, indent=1)


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def versions():
    v = {"python": platform.python_version()}
    for m in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "trl", "unsloth_zoo", "datasets", "torchao", "triton", "tokenizers"):
        try:
            from importlib.metadata import version

            v[m] = version(m)
        except Exception:
            v[m] = None
    try:
        from importlib.metadata import version

        v["unsloth"] = version("unsloth")
    except Exception:
        v["unsloth"] = None
    return v


def gpu_info():
    d = {}
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        d["nvidia_smi"] = q
        d["gpu_name"], d["driver"] = [x.strip() for x in q.split(",")[:2]]
    except Exception as e:
        d["nvidia_smi"] = repr(e)
    try:
        import torch

        d["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            d["gpu_name"] = torch.cuda.get_device_name(0)
            d["gpu_total_gib"] = torch.cuda.get_device_properties(0).total_memory / 1024**3
    except Exception:
        pass
    return d


def run_sub(argv, logf, timeout):
    t = time.time()
    with open(logf, "a") as f:
        try:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], stdout=f, stderr=subprocess.STDOUT, timeout=max(timeout, 5))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return rc, time.time() - t


def tail(path, n=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except Exception:
        return ""


def driver(args):
    t_start = time.time()
    deadline = t_start + args.budget_s
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    scratch = args.scratch
    os.makedirs(scratch, exist_ok=True)
    logs = os.path.join(scratch, "logs")
    os.makedirs(logs, exist_ok=True)
    plan = []  # (size, [methods], [mbs])
    for part in args.plan.split(";"):
        size, methods, mbs = part.split(":")
        plan.append((size, methods.split(","), mbs))
    results = dict(
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join([os.path.basename(sys.executable), *sys.argv]),
        host=platform.node(),
        **gpu_info(),
        versions=versions(),
        env={k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSLOTH_DISABLE_STATISTICS", "PYTORCH_CUDA_ALLOC_CONF")},
        peak_bf16_flops_spec=PEAK_BF16_SPEC,
        peak_bf16_flops_measured=PEAK_BF16_MEASURED,
        builds={},
        records=[],
        notes=None,
    )
    log("versions", results["versions"], results.get("gpu_name"), results.get("driver"))
    res_path = os.path.join(out, "results.json")

    def dump():
        with open(res_path, "w") as f:
            json.dump(results, f, indent=1)

    models_dir = args.model_dir

    def ensure_built(s):
        p = os.path.join(models_dir, s)
        if os.path.exists(os.path.join(p, "config.json")):
            return True
        rc, dt = run_sub(
            ["--build", s, "--model-path", p] + (["--cpu-test"] if args.cpu_test else []), os.path.join(logs, f"build-{s}.log"), deadline - time.time()
        )
        results["builds"][s] = dict(rc=rc, seconds=round(dt, 1))
        log(f"build {s}: rc={rc} {dt:.1f}s")
        if rc != 0:
            print(tail(os.path.join(logs, f"build-{s}.log")), flush=True)
        dump()
        return rc == 0

    if args.notes and not args.cpu_test and ensure_built("1b"):
        nf = os.path.join(scratch, "notes.json")
        rc, dt = run_sub(
            ["--notes-worker", "--model-path", os.path.join(models_dir, "1b"), "--result-file", nf, "--scratch", scratch],
            os.path.join(logs, "notes.log"),
            min(180, deadline - time.time()),
        )
        notes = json.load(open(nf)) if os.path.exists(nf) else {}
        notes["rc"] = rc
        notes["wall_s"] = round(dt, 1)
        if rc == 0:
            pf = os.path.join(scratch, "plain_reload.json")
            rc2, _ = run_sub(
                ["--plain-reload-worker", "--model-path", os.path.join(models_dir, "1b"), "--result-file", pf, "--scratch", scratch],
                os.path.join(logs, "notes.log"),
                min(90, deadline - time.time()),
            )
            if os.path.exists(pf):
                notes["plain_peft_reload"] = json.load(open(pf))
            notes["plain_peft_reload_rc"] = rc2
        else:
            print(tail(os.path.join(logs, "notes.log"), 40), flush=True)
        results["notes"] = notes
        log("notes:", json.dumps(notes)[:3000])
        dump()

    for size, methods, mbs in plan:
        path = os.path.join(models_dir, size)
        for m in methods:
            remaining = deadline - time.time()
            cap = min(args.worker_cap_s, remaining - 5)
            rf = os.path.join(scratch, f"res-{size}-{m}.jsonl")
            if os.path.exists(rf):
                os.remove(rf)
            if cap < args.min_worker_s:
                for mb in mbs.split(","):
                    results["records"].append(
                        dict(method=m, model=ARCH[size]["model"], micro_batch_size=int(mb), status="skipped", error="call time budget exhausted")
                    )
                log(f"skip {size}/{m}: {remaining:.0f}s left")
                continue
            if not ensure_built(size):
                continue
            lf = os.path.join(logs, f"{size}-{m}.log")
            argv = [
                "--worker",
                "--size",
                size,
                "--method",
                m,
                "--mbs",
                mbs,
                "--model-path",
                path,
                "--result-file",
                rf,
                "--warmup",
                str(args.warmup),
                "--steps",
                str(args.steps),
                "--worker-budget-s",
                str(int(cap - 15)),
            ]
            if args.cpu_test:
                argv.append("--cpu-test")
            if args.profile and size in args.profile.split(","):
                argv += ["--profile-file", os.path.join(out, "profiles.txt")]
            log(f"run {size}/{m} mbs={mbs} cap={cap:.0f}s")
            rc, dt = run_sub(argv, lf, cap)
            recs = [json.loads(l) for l in open(rf)] if os.path.exists(rf) else []
            got = {r["micro_batch_size"] for r in recs}
            for mb in mbs.split(","):
                if int(mb) not in got:
                    recs.append(
                        dict(
                            method=m,
                            backend=METHODS[m]["backend"],
                            quantization=METHODS[m]["quantization"],
                            model=ARCH[size]["model"],
                            architecture=arch_record(size),
                            micro_batch_size=int(mb),
                            status="error",
                            error=f"worker rc={rc} (timeout = per-config cap) before this micro-batch",
                        )
                    )
            for r in recs:
                r["worker_wall_s"] = round(dt, 1)
                r["worker_rc"] = rc
            results["records"].extend(recs)
            log(f"done {size}/{m} rc={rc} {dt:.1f}s")
            if rc != 0 or any(r.get("status") != "ok" for r in recs):
                print(tail(lf, 30), flush=True)
            dump()
    # one file with all worker logs (the call returns at most 8 files)
    with open(os.path.join(out, "workers.log"), "w") as f:
        for name in sorted(os.listdir(logs)):
            f.write(f"\n########## {name}\n")
            f.write(open(os.path.join(logs, name), errors="replace").read()[-200000:])
    results["driver_wall_s"] = round(time.time() - t_start, 1)
    dump()
    # summary table
    print("\nsize  method  mb  status   tok/s     step_s  alloc_GiB  resv_GiB   MFU", flush=True)
    for r in results["records"]:
        print(
            f"{r['model']:<13}{r['method']:<4}{r['micro_batch_size']:>3}  {r['status']:<7}"
            f"{r.get('tokens_per_second', 0):>9.0f} {r.get('step_seconds', 0):>8.3f} "
            f"{r.get('peak_vram_allocated_gib', 0):>9.2f} {r.get('peak_vram_reserved_gib', 0):>9.2f} "
            f"{r.get('mfu', 0):>6.3f}",
            flush=True,
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", default="1b:a,a4,b,c:1,4")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--model-dir", default="/tmp/tf-models")
    ap.add_argument("--scratch", default="/tmp/tf-bench")
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument("--worker-cap-s", type=float, default=170)
    ap.add_argument("--min-worker-s", type=float, default=45)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--notes", action="store_true")
    ap.add_argument("--profile", default="", help="comma list of sizes whose runs also profile one step")
    ap.add_argument("--cpu-test", action="store_true")
    # internal
    ap.add_argument("--build")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--notes-worker", action="store_true")
    ap.add_argument("--plain-reload-worker", action="store_true")
    ap.add_argument("--size")
    ap.add_argument("--method")
    ap.add_argument("--mbs")
    ap.add_argument("--model-path")
    ap.add_argument("--result-file")
    ap.add_argument("--profile-file")
    ap.add_argument("--worker-budget-s", type=float, default=150)
    args = ap.parse_args()
    if args.build:
        build_model(args.build, args.model_path, "cpu" if args.cpu_test else "cuda")
    elif args.worker:
        worker(args)
    elif args.notes_worker:
        notes_worker(args)
    elif args.plain_reload_worker:
        plain_reload_worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
