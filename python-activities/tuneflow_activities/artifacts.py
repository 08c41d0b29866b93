"""The artifact store is a directory tree addressed by file:// URIs (layout: docs/artifacts.md).

`RunLayout` and `DatasetLayout` are the only places Python builds paths under `runs/<id>/` and `datasets/<hash>/`
(TypeScript's twin: src/runtime/layout.ts). Everything written here is written whole or not at all, through
`atomic_directory`, the one atomic-write helper: a directory is built under a temporary name, fsynced (every file
and directory in it) and renamed into place, so a reader never sees half an artifact.
"""

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"only file:// artifact URIs are supported, got {uri!r}")
    return Path(unquote(parsed.path))


def path_to_uri(path: Path) -> str:
    return path.resolve().as_uri()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: Path) -> None:
    """Flushes every file and directory under root, then root itself."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(directory) / name)
        fsync_path(Path(directory))


@contextlib.contextmanager
def atomic_directory(target: Path, replace: bool = False) -> Generator[Path, None, None]:
    """Yields a temporary sibling directory to fill; on success it is fsynced and renamed to target.

    On failure the temporary directory is removed and target is untouched. With replace=True an existing
    target is swapped out; otherwise an existing target is an error (content-addressed artifacts never change).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:12]}")
    temporary.mkdir()
    try:
        yield temporary
        fsync_tree(temporary)
        if replace and target.exists():
            retired = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:12]}")
            os.rename(target, retired)
            os.rename(temporary, target)
            shutil.rmtree(retired)
        else:
            os.rename(temporary, target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_stale_temporaries(directory: Path) -> int:
    """Removes temporary directories left by a process killed mid-write; returns how many."""
    if not directory.is_dir():
        return 0
    stale = [entry for entry in directory.iterdir() if entry.name.startswith((".tmp-", ".old-"))]
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    return len(stale)


@dataclass(frozen=True)
class RunLayout:
    """`runs/<workflow id>/`: what one fine-tuning run writes."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:08d}"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def train_log(self) -> Path:
        return self.root / "train_log.jsonl"

    @property
    def manifest(self) -> Path:
        return self.root / "run.json"


@dataclass(frozen=True)
class DatasetLayout:
    """`datasets/<hash>/`: one prepared dataset (written by TypeScript) and its token ids (written here)."""

    root: Path

    @staticmethod
    def of_split(split_path: Path) -> "DatasetLayout":
        """The dataset a prepared split file (`train.jsonl`, `val.jsonl`) belongs to."""
        return DatasetLayout(split_path.parent)

    def split(self, name: str) -> Path:
        return self.root / f"{name}.jsonl"

    def tokens(self, tokenizer_identity: str, format_version: int) -> Path:
        """One directory per tokenizer (and token format): the ids are only valid for the tokenizer that made them."""
        return self.root / "tokens" / f"v{format_version}-{tokenizer_identity}"
