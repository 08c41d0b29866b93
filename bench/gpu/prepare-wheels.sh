#!/usr/bin/env bash
# Downloads (on the CPU dev machine) every wheel the H200 device image lacks for
# Unsloth + bitsandbytes + trl, plus temporalio for the lead, into ./.whl/ (git-ignored),
# trims the two oversized ones, and prints the total.  Re-runnable: existing wheels are
# kept, trimming is idempotent.  Wheels are never committed.
#
# Device image already has (KINDS.md): torch 2.11.0+cu130, transformers 5.17.0, peft,
# accelerate 1.15.0, triton 3.6.0, numpy, pandas, pyarrow, xxhash, requests, httpx,
# huggingface-hub 1.33.0, hf-xet, tokenizers, safetensors, sentencepiece, protobuf,
# psutil, rich, typer, click, pyyaml, jinja2, regex, pillow, einops, tqdm, packaging,
# typing-extensions, filelock, wheel  -> none of those are carried.
#
# Deliberately NOT carried:
#   xformers   optional: unsloth/models/_utils.py catches ModuleNotFoundError and uses
#              PyTorch SDPA; PyPI's xformers is built for another torch anyway.
#   diffusers  listed by unsloth's metadata, never imported by the LLM path.
#
# Sizes seen 2026-11-28 (bytes, after trimming):
#   unsloth 2026.10.9      28.6 MB -> ~3.4 MB (studio/ web UI removed; never imported)
#   bitsandbytes 0.50.2    43.1 MB -> ~1.7 MB (only libbitsandbytes_cuda130.so kept: torch is cu130)
#   temporalio 1.35.0      14.4 MB (Rust core; needed later by the lead, not by the bench)
#   torchao 0.18.0 3.4 MB, hf_transfer 3.6 MB, unsloth_zoo 2.9 MB, pydantic-core ~2 MB, rest < 1 MB each
#   total: printed at the end (must stay < 64 MiB with the working tree).
#
# Usage (from the repo root):  bash bench/gpu/prepare-wheels.sh [--no-temporalio]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
D=.whl
mkdir -p "$D"
# .gitignore lists .whl/; in a git worktree .git is a file, so never write to .git/info/exclude here.
git check-ignore -q "$D" || { echo "$D is not ignored by git: add it to .gitignore" >&2; exit 1; }

PIPARGS=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
  --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)

PKGS=(
  unsloth==2026.10.9 unsloth_zoo==2026.10.9
  trl==1.15.0                      # unsloth: trl<=1.15,!=0.19 ; imported at import time (tokenizer_utils, rl.py)
  datasets==4.8.5                  # trl + unsloth_zoo import it; <5, not 4.0.*/4.4.*
  "dill>=0.3.0,<0.4.2" "multiprocess<0.70.20" "fsspec==2026.2.0"   # datasets pins fsspec<=2026.2.0
  bitsandbytes==0.50.2
  torchao==0.18.0
  cut_cross_entropy==25.1.1
  tyro==1.0.17 "docstring-parser>=0.16" "typeguard>=4.0.0"
  msgspec==0.22.0 hf_transfer==0.1.9
  pydantic pydantic-core annotated-types typing-inspection
  json5 nest-asyncio structlog
  # tuneflow's activities validate every request against the contract's JSON Schemas (validation.py)
  jsonschema==4.26.0 jsonschema-specifications referencing rpds-py attrs
)
if [[ "${1:-}" != "--no-temporalio" ]]; then
  PKGS+=(temporalio==1.35.0 nexus-rpc==1.4.0 "types-protobuf>=3.20,<8")
fi

python3 -m pip download -q "${PIPARGS[@]}" -d "$D" "${PKGS[@]}"

# pydantic and pydantic-core must be a matched pair: re-pin core to what pydantic asks.
PYD=$(ls "$D"/pydantic-[0-9]*.whl | head -1)
CORE_REQ=$(unzip -p "$PYD" '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core\s*\(==\s*[0-9.]*\).*/\1/p' | tr -d ' ')
if [[ -n "$CORE_REQ" ]] && ! ls "$D"/pydantic_core-"${CORE_REQ#==}"-*.whl >/dev/null 2>&1; then
  rm -f "$D"/pydantic_core-*.whl
  python3 -m pip download -q "${PIPARGS[@]}" -d "$D" "pydantic-core$CORE_REQ"
fi

# Trim: rewrite a wheel without some members and with a RECORD that matches.
python3 - "$D" <<'PY'
import sys, zipfile, os, glob, re, shutil
d = sys.argv[1]
def trim(pattern, drop):
    for w in glob.glob(os.path.join(d, pattern)):
        with zipfile.ZipFile(w) as z:
            names = z.namelist()
            keep = [n for n in names if not drop(n)]
            if len(keep) == len(names):
                print(f"  {os.path.basename(w)}: already trimmed ({os.path.getsize(w)/1e6:.1f} MB)")
                continue
            tmp = w + ".tmp"
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
                for n in keep:
                    data = z.read(n)
                    if n.endswith(".dist-info/RECORD"):
                        lines = [l for l in data.decode().splitlines() if l and not drop(l.split(",")[0])]
                        data = ("\n".join(lines) + "\n").encode()
                    out.writestr(z.getinfo(n), data)
        before = os.path.getsize(w); shutil.move(tmp, w)
        print(f"  {os.path.basename(w)}: {before/1e6:.1f} MB -> {os.path.getsize(w)/1e6:.1f} MB")
# unsloth: the Studio web UI/backend (studio/) is never imported by `import unsloth`.
trim("unsloth-2026*.whl", lambda n: n.startswith("studio/"))
# bitsandbytes: keep only the CUDA 13.0 native lib (device torch is cu130; bnb picks
# libbitsandbytes_cuda{torch.version.cuda} unless BNB_CUDA_VERSION overrides it).
trim("bitsandbytes-*.whl", lambda n: re.match(r"bitsandbytes/libbitsandbytes_(?!cuda130\.so$).*\.so$", n) is not None)
PY

# Keep one version of each distribution (two stop the whole install on the device).
ls "$D"/*.whl | sed 's#.*/##; s/-[0-9].*//' | tr 'A-Z-' 'a-z_' | sort | uniq -d | while read -r dup; do
  echo "WARNING: two versions of $dup in $D - remove one" >&2; done

echo "== wheels in $D"
ls -l "$D"/*.whl | awk '{printf "%8.2f MB  %s\n", $5/1e6, $9}'
du -cb "$D"/*.whl | tail -1 | awk '{printf "total: %.1f MiB (limit 64 MiB per call, working tree included)\n", $1/1048576}'
