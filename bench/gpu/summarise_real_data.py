"""Writes bench/gpu/results/real-data-summary.json (issue 12's fields, 8B, 4-bit, r=64, seq 2048) from the
benchmark's reports and prints the markdown table of docs/gpu.md.

    python3 bench/gpu/summarise_real_data.py  (reads bench/gpu/results/real-data/*.json)

The packed figures come from the run at the commit that routes packed rows to flash varlen (`*-4bit-varlen.json`);
fixed-length, unpacked and the seed pipeline from the first 4-bit call (`*-4bit-segments.json`), whose code for
those paths is the same.
"""

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPORTS = {name: json.loads((RESULTS / "real-data" / f"2026-12-01-h200-{name}.json").read_text()) for name in ("4bit-segments", "4bit-varlen", "16bit")}
DEFAULT_CHECKPOINT_EVERY = 50


def runs(report: dict) -> dict:
    found = {record["run"]: record for record in report["phases"]["tuneflow"]["result"] if "real_tokens" in record}
    seed = report["phases"].get("seed", {}).get("result")
    if seed:
        found[seed["run"]] = seed
    return found


segments, varlen, sixteen = (runs(REPORTS[name]) for name in ("4bit-segments", "4bit-varlen", "16bit"))
packed, unpacked, fixed, seed = varlen["real-packed"], segments["real-unpacked"], segments["fixed-unpacked"], segments["seed-sft-packed"]
checkpoint = statistics.median(packed["checkpoint_write_seconds"])
summary = {
    "packed_real_tokens_per_s": round(packed["real_tokens_per_s"], 1),
    "unpacked_real_tokens_per_s": round(unpacked["real_tokens_per_s"], 1),
    "fixed_length_tokens_per_s": round(fixed["real_tokens_per_s"], 1),
    "seed_pipeline_packed_real_tokens_per_s": round(seed["real_tokens_per_s"], 1),
    # A blocking checkpoint write against 50 steady steps of the packed real-data run.
    "checkpoint_overhead_fraction": round(checkpoint / (DEFAULT_CHECKPOINT_EVERY * packed["median_step_seconds"] + checkpoint), 4),
    "reported_tokens_per_s_error": round(packed["reported_tokens_per_s_error"], 4),
    "planner_eta_error_packed": round(packed["planner_eta_error"], 4),
    "planner_eta_error_unpacked": round(unpacked["planner_eta_error"], 4),
    "date": REPORTS["4bit-varlen"]["date"],
    "command": REPORTS["4bit-varlen"]["command"],
    "commit": REPORTS["4bit-varlen"]["commit"],
    "sources": {
        "packed": "real-data/2026-12-01-h200-4bit-varlen.json",
        "unpacked, fixed_length, seed_pipeline": f"real-data/2026-12-01-h200-4bit-segments.json (commit {REPORTS['4bit-segments']['commit']})",
    },
}
(RESULTS / "real-data-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))

print("\n| precision | run | attention route | real tokens/s (steady) | × seed | padding | median step s | peak alloc GiB | checkpoint write s | reported tokens/s | planner ETA / wall s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")


def route(name: str, record: dict, varlen_route: bool) -> str:
    if name.startswith("seed"):
        return "SDPA per run of equal-length rows (TRL best-fit-decreasing packs)"
    if not record["packing"]:
        return "causal SDPA over padded rows, compiled blocks"
    # One row length per pack of fixed-length rows: Unsloth keeps one batched SDPA call for a single run.
    return "flash varlen" if varlen_route and record["data"] == "real" else "SDPA per run of equal-length rows"


for precision, tables in (("4-bit", ((segments, False), (varlen, True))), ("16-bit", ((sixteen, True),))):
    seed_record = tables[0][0]["seed-sft-packed"]
    for table, varlen_route in tables:
        for name, record in table.items():
            writes = record.get("checkpoint_write_seconds")
            cells = [
                precision, name, route(name, record, varlen_route), f"{record['real_tokens_per_s']:,.0f}", f"{record['real_tokens_per_s'] / seed_record['real_tokens_per_s']:.2f}",
                f"{record['padding_fraction']:.1%}", f"{record['median_step_seconds']:.2f}", f"{record['peak_vram_allocated_gib']:.1f}",
                f"{statistics.median(writes):.2f}" if writes else "–",
                f"{record['reported_tokens_per_s_final']:,.0f}" if record.get("reported_tokens_per_s_final") else "–",
                f"{record['planner_eta_seconds']:.0f} / {record['wall_seconds']:.0f}" if "planner_eta_seconds" in record else "–",
            ]
            print("| " + " | ".join(cells) + " |")
