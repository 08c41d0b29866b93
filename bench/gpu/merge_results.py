#!/usr/bin/env python3
"""Merge the results.json files of several device calls of bench_lora.py into one
bench/gpu/results/<date>-h200.json, and print the markdown table + target ratios.

  python3 bench/gpu/merge_results.py RUN1/results.json RUN2/results.json \
      --carry .whl -o bench/gpu/results/2026-11-28-h200.json

Records with status "skipped" (call budget ran out before they started) are dropped; a later
run's record for the same (model, method, micro_batch_size) replaces an earlier one.
"""

import argparse
import json
import sys

ORDER = ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"]


def load(paths, carry):
    runs, recs, notes = [], {}, None
    for i, p in enumerate(paths):
        r = json.load(open(p))
        runs.append(dict(run=i, date=r["date"], command=r["command"], driver_wall_s=r.get("driver_wall_s"), builds=r.get("builds"), carry=carry))
        if r.get("notes"):
            notes = r["notes"]
        for x in r["records"]:
            if x.get("status") == "skipped":
                continue
            x["run"] = i
            recs[(x["model"], x["method"], x["micro_batch_size"])] = x
    first = json.load(open(paths[0]))
    out = dict(
        date=first["date"][:10],
        gpu_name=first.get("gpu_name"),
        driver=first.get("driver"),
        cuda_runtime=first.get("torch_cuda"),
        gpu_total_gib=first.get("gpu_total_gib"),
        nvidia_smi=first.get("nvidia_smi"),
        versions=first["versions"],
        env=first.get("env"),
        peak_bf16_flops_spec=first["peak_bf16_flops_spec"],
        peak_bf16_flops_measured=first["peak_bf16_flops_measured"],
        flop_conventions={
            "model_flops_per_token": "6*N_matmul + 12*L*(n_heads*head_dim)*S  (PaLM/Megatron MFU convention; "
            "N_matmul = q,k,v,o,gate,up,down weights of every layer + lm_head once)",
            "mfu": "model_flops_per_second / 989e12 (H200 SXM dense bf16 datasheet)",
            "mfu_vs_measured_790": "model_flops_per_second / 790e12 (8192^3 bf16 matmul measured on this H200)",
            "mfu_6n_only": "6*N_matmul*tokens_per_second / 989e12",
            "lora_useful_flops_per_second": "(4*N_matmul + 12*L*d_attn*S) * tokens/s: forward 2N + activation-"
            "gradient 2N; frozen base weights need no weight gradient",
            "mfu_lora": "lora_useful_flops_per_second / 989e12",
            "hfu_with_recompute": "(6*N_matmul + 16*L*d_attn*S) * tokens/s / 989e12: LoRA + gradient "
            "checkpointing really executes fwd 2N + recompute 2N + dgrad 2N",
        },
        runs=runs,
        unsloth_loader_notes=notes,
        records=sorted(recs.values(), key=lambda x: (ORDER.index(x["model"]) if x["model"] in ORDER else 9, x["micro_batch_size"], x["method"])),
    )
    return out


def table(out):
    R = {(x["model"], x["method"], x["micro_batch_size"]): x for x in out["records"]}
    lines = ["| model | mb | method | tokens/s | step s | peak alloc GiB | peak reserved GiB | MFU (6N+attn) | HFU |", "|---|---|---|---|---|---|---|---|---|"]
    names = {"a": "a HF+PEFT bf16", "a4": "a4 HF+PEFT+bnb 4-bit", "b": "b Unsloth bf16", "c": "c Unsloth 4-bit"}
    for m in ORDER:
        for mb in (1, 4):
            for meth in ("a", "a4", "b", "c"):
                x = R.get((m, meth, mb))
                if not x:
                    continue
                if x["status"] != "ok":
                    lines.append(f"| {m} | {mb} | {names[meth]} | {x['status']} | | | | | |")
                    continue
                lines.append(
                    f"| {m} | {mb} | {names[meth]} | {x['tokens_per_second']:,.0f} | {x['step_seconds']:.3f} | "
                    f"{x['peak_vram_allocated_gib']:.2f} | {x['peak_vram_reserved_gib']:.2f} | "
                    f"{x['mfu']:.3f} | {x['hfu_with_recompute']:.3f} |"
                )
    lines += [
        "",
        "| model | mb | b/a tok/s (target ≥1.5) | c/a4 tok/s (target ≥2.0) | c/a peak alloc (target ≤0.35) | b/a peak alloc | c/b tok/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in ORDER:
        for mb in (1, 4):

            def g(k, m=m, mb=mb):
                return R.get((m, k, mb)) if R.get((m, k, mb), {}).get("status") == "ok" else None

            a, a4, b, c = g("a"), g("a4"), g("b"), g("c")

            def f(x, y, key):
                return f"{x[key] / y[key]:.2f}" if x and y else "–"

            if not any((a, a4, b, c)):
                continue
            lines.append(
                f"| {m} | {mb} | {f(b, a, 'tokens_per_second')} | {f(c, a4, 'tokens_per_second')} | "
                f"{f(c, a, 'peak_vram_allocated_gib')} | {f(b, a, 'peak_vram_allocated_gib')} | "
                f"{f(c, b, 'tokens_per_second')} |"
            )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output")
    ap.add_argument("--carry", default=".whl")
    a = ap.parse_args()
    out = load(a.inputs, a.carry.split(","))
    if a.output:
        with open(a.output, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    print(table(out))


if __name__ == "__main__":
    sys.exit(main())
