"""Nothing is fetched at run time: import this module before transformers, peft or unsloth.

Unsloth and the Hugging Face libraries reach for the network on load (hub look-ups, statistics) and can hang
where there is none, so the worker pins them offline before any of them is imported.
"""

import os

for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSLOTH_DISABLE_STATISTICS", "HF_DATASETS_OFFLINE"):
    os.environ[variable] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Unsloth compiles kernels into ./unsloth_compiled_cache by default: never the worker's working directory.
os.environ.setdefault(
    "UNSLOTH_COMPILE_LOCATION",
    os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tuneflow", "unsloth_compiled_cache"),
)
