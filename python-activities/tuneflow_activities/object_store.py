"""Runs whose artifact root is `s3://bucket/prefix`: the object store is the truth, a local directory the workspace.

A GPU worker trains in a local mirror of the run (`<cache>/runs/<bucket>/<key>/`), exactly as it trains a
file:// run, and this module moves bytes between the mirror and the bucket:

- before training, the newest checkpoint in the bucket whose manifest verifies is downloaded into the mirror
  (unless the mirror already holds it: sticky routing sends the run back to the worker that has its files);
- every checkpoint the loop writes is uploaded on a background thread, objects first and `manifest.json` last, so
  a manifest in the bucket always names objects that were already there; the training thread only hard-links the
  finished directory into a staging area and goes on (the GPU never waits for the network);
- at the end the uploads are drained, the adapter and the train log are uploaded, and the result names s3:// URIs.

Resume trusts only a manifest whose every object exists and hashes to the sha256 the manifest records: a worker
killed mid-upload, or a server restarted mid-upload, leaves objects without a manifest (never trusted) and never a
manifest without objects. Inputs given as s3:// (prepared datasets: content-addressed, immutable) are downloaded
once into a bounded cache that evicts the least recently used entries.

Endpoint and credentials come from the standard AWS configuration (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE, ~/.aws/config); large files go up and down in multipart parts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote, unquote, urlparse

from .artifacts import RunLayout, atomic_directory, path_to_uri, sha256_of_file, uri_to_path
from .checkpoint import MANIFEST, corrupt_record, verify_checkpoint


def checkpoint_name(step: int) -> str:
    """The checkpoint directory's name, as the run's layout decides it (the same in the bucket)."""
    return RunLayout(Path()).checkpoint(step).name


logger = logging.getLogger(__name__)

S3_SCHEME = "s3"
# Files above this go up and down in parts of this size (S3 allows 10,000 parts: 640 GB at 64 MiB).
MULTIPART_BYTES = 64 * 1024 * 1024
# How long an upload keeps retrying through an unreachable store (a restarting server) before giving up.
UPLOAD_PATIENCE_SECONDS = float(os.environ.get("TUNEFLOW_UPLOAD_PATIENCE_SECONDS", "300"))
# The worker's local cache: mirrors of runs and downloaded inputs, least recently used evicted past this size.
CACHE_LIMIT_BYTES = int(float(os.environ.get("TUNEFLOW_CACHE_LIMIT_GB", "50")) * 1024**3)


def is_object_store_uri(uri: str | None) -> bool:
    return bool(uri) and urlparse(uri).scheme == S3_SCHEME


@dataclass(frozen=True)
class ObjectLocation:
    """`s3://bucket/key`, with `/` joining keys the same way paths join."""

    bucket: str
    key: str

    @staticmethod
    def parse(uri: str) -> ObjectLocation:
        parsed = urlparse(uri)
        if parsed.scheme != S3_SCHEME or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
        return ObjectLocation(parsed.netloc, unquote(parsed.path).strip("/"))

    def child(self, *parts: str) -> ObjectLocation:
        return ObjectLocation(self.bucket, "/".join([self.key, *parts]).strip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{quote(self.key)}"


def cache_directory() -> Path:
    """The worker's cache: TUNEFLOW_WORKER_CACHE, else the tuneflow cache (as scripts/python-environment.mjs decides)."""
    explicit = os.environ.get("TUNEFLOW_WORKER_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("TUNEFLOW_CACHE") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneflow")
    return Path(base) / "worker"


class ObjectStore:
    """The few S3 operations tuneflow needs, through boto3 (its transfer manager does multipart and retries)."""

    def __init__(self) -> None:
        from boto3.s3.transfer import TransferConfig
        from boto3.session import Session
        from botocore.config import Config

        # Path-style addressing works with every S3-compatible server; AWS accepts it too.
        addressing = "path" if os.environ.get("AWS_S3_FORCE_PATH_STYLE", "").lower() in ("1", "true") else "auto"
        self._client = Session().client("s3", config=Config(s3={"addressing_style": addressing}, retries={"mode": "standard", "max_attempts": 5}))
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES, use_threads=False)

    def upload_file(self, path: Path, location: ObjectLocation) -> None:
        self._client.upload_file(str(path), location.bucket, location.key, Config=self._transfer)

    def download_file(self, location: ObjectLocation, path: Path) -> None:
        """Downloads to a temporary sibling and renames, so a reader of `path` never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            self._client.download_file(location.bucket, location.key, str(temporary), Config=self._transfer)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def read_json(self, location: ObjectLocation) -> Any:
        return json.loads(self._client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read())

    def exists(self, location: ObjectLocation) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=location.bucket, Key=location.key)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list_keys(self, prefix: ObjectLocation) -> list[str]:
        keys = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key.rstrip("/") + "/"):
            keys.extend(entry["Key"] for entry in page.get("Contents", []))
        return keys

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            self._client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True})


def _files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def upload_directory(store: ObjectStore, directory: Path, location: ObjectLocation, last: str | None = None) -> None:
    """Uploads every file under directory; the file named `last` (a manifest) goes up after all the others."""
    files = _files_under(directory)
    ordered = [path for path in files if path.name != last] + [path for path in files if path.name == last]
    for path in ordered:
        store.upload_file(path, location.child(*path.relative_to(directory).parts))


def upload_checkpoint(store: ObjectStore, directory: Path, location: ObjectLocation) -> None:
    """Objects first, the manifest last: the manifest's presence in the bucket means the checkpoint is complete."""
    upload_directory(store, directory, location, last=MANIFEST)


def download_verified_checkpoint(store: ObjectStore, location: ObjectLocation, target: Path) -> bool:
    """Downloads the checkpoint at location into target if its manifest names objects that all exist and hash to
    the recorded sha256; False (target untouched) otherwise. The training loop verifies it again on the local disk."""
    try:
        manifest = store.read_json(location.child(MANIFEST))
        with atomic_directory(target, replace=True) as building:
            for relative, expected in manifest["files"].items():
                path = building / relative
                store.download_file(location.child(relative), path)
                if sha256_of_file(path) != expected:
                    raise ValueError(f"{location.child(relative).uri} does not match its manifest hash")
            (building / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return True
    except Exception as error:
        logger.warning("checkpoint %s is not trusted and is skipped: %s", location.uri, error)
        return False


def remote_checkpoint_steps(store: ObjectStore, checkpoints: ObjectLocation) -> list[int]:
    """Steps whose manifest is in the bucket, oldest first (a manifest is uploaded last, so these are candidates)."""
    steps = set()
    for key in store.list_keys(checkpoints):
        name, _, file = key.removeprefix(checkpoints.key.rstrip("/") + "/").partition("/")
        if file == MANIFEST and name.startswith("step-") and name.removeprefix("step-").isdigit():
            steps.add(int(name.removeprefix("step-")))
    return sorted(steps)


class LocalCache:
    """A bounded directory of entries (one directory each); entries are touched on use and the least recently
    used are deleted once the total passes the limit. Entries in use are pinned and never evicted."""

    def __init__(self, root: Path, limit_bytes: int = CACHE_LIMIT_BYTES):
        self.root = root
        self.limit_bytes = limit_bytes
        self._pinned: set[Path] = set()
        self._lock = threading.Lock()

    def entry(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        os.utime(path)
        return path

    @contextlib.contextmanager
    def pinned(self, path: Path) -> Iterator[Path]:
        with self._lock:
            self._pinned.add(path)
        try:
            yield path
        finally:
            with self._lock:
                self._pinned.discard(path)
            self.evict()

    def evict(self) -> list[Path]:
        """Deletes least recently used entries (two levels deep: <kind>/<bucket>/<key…>) until under the limit."""
        entries = [entry for kind in self.root.glob("*") for entry in kind.glob("*/*") if entry.is_dir()] if self.root.is_dir() else []
        sizes = {entry: sum(path.stat().st_size for path in entry.rglob("*") if path.is_file()) for entry in entries}
        total = sum(sizes.values())
        evicted = []
        with self._lock:
            for entry in sorted(entries, key=lambda path: path.stat().st_mtime):
                if total <= self.limit_bytes:
                    break
                if any(entry == pin or entry in pin.parents or pin in entry.parents for pin in self._pinned):
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                total -= sizes[entry]
                evicted.append(entry)
        return evicted


def _retrying(description: str, work, patience_seconds: float = UPLOAD_PATIENCE_SECONDS):
    """Runs work until it succeeds or patience runs out: the store may be restarting (boto3's own retries span
    seconds, a server restart can take longer)."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.5
    while True:
        try:
            return work()
        except Exception as error:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("%s failed (%s); retrying in %.1f s", description, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def cached_input_path(cache: LocalCache, location: ObjectLocation) -> Path:
    """Where an object (or a prefix) of the store is cached: its key as a path, so that objects that are siblings in
    the bucket are siblings on disk (the token ids beside the prepared data they were made from)."""
    return cache.entry("inputs", location.bucket).joinpath(*location.key.split("/"))


def fetch_input(store: ObjectStore, cache: LocalCache, uri: str) -> str:
    """A file:// URI for an input: itself when local, else a cached download of the object or of every object
    under the prefix (a directory: an adapter, token ids). Immutable inputs only: a cached copy is never checked again."""
    if not is_object_store_uri(uri):
        return uri
    location = ObjectLocation.parse(uri)
    target = cached_input_path(cache, location)
    if not target.exists():

        def download() -> None:
            keys = store.list_keys(location)
            if not keys:
                store.download_file(location, target)
                return
            with atomic_directory(target) as building:
                for key in keys:
                    store.download_file(ObjectLocation(location.bucket, key), building / key.removeprefix(location.key + "/"))

        _retrying(f"downloading {uri}", download)
    return path_to_uri(target)


def verify_stored_checkpoints(run_uri: str) -> dict:
    """The verify_checkpoints activity on object storage: every checkpoint whose manifest is in the bucket, downloaded
    and checked against the manifest's sha256s (the one verification rule, checkpoint.verify_checkpoint), as records
    naming their s3:// URIs."""
    store, run = ObjectStore(), ObjectLocation.parse(run_uri)
    checkpoints = run.child("checkpoints")
    verified, corrupt = [], []
    with tempfile.TemporaryDirectory(prefix="tuneflow-verify-") as scratch:
        for step in remote_checkpoint_steps(store, checkpoints):
            remote = checkpoints.child(checkpoint_name(step))
            local = Path(scratch) / checkpoint_name(step)
            checkpoint = verify_checkpoint(local) if download_verified_checkpoint(store, remote, local) else None
            record = checkpoint.as_record() if checkpoint else corrupt_record(local)
            (verified if checkpoint else corrupt).append({**record, "uri": remote.uri})
    return {"checkpoints": verified, "corrupt": corrupt}


class CheckpointUploader:
    """Uploads checkpoints on its own thread, in order; the training thread only stages (hard-links) and returns.

    A checkpoint that cannot be uploaded within the patience is logged and given up: a later one supersedes it,
    and the final drain fails loudly if the last one cannot go up.
    """

    def __init__(self, store: ObjectStore, staging: Path, checkpoints: ObjectLocation):
        self._store = store
        self._staging = staging
        self._checkpoints = checkpoints
        self._queue: queue.Queue[tuple[int, Path] | None] = queue.Queue()
        self._failed: list[tuple[int, BaseException]] = []
        self._uploaded: list[int] = []
        self._thread = threading.Thread(target=self._run, name="tuneflow-checkpoint-upload", daemon=True)
        self._thread.start()

    def stage(self, step: int, directory: Path) -> None:
        """Hard-links the finished checkpoint (its files are never modified, only replaced or deleted) so pruning
        the local directory cannot pull files from under an upload in progress."""
        staged = self._staging / f"{checkpoint_name(step)}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(directory, staged, copy_function=os.link)
        except OSError as error:  # pruned already by a newer checkpoint, which will be uploaded instead
            logger.warning("checkpoint %s not uploaded: %s", directory, error)
            return
        self._queue.put((step, staged))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            step, staged = item
            location = self._checkpoints.child(checkpoint_name(step))
            try:
                _retrying(f"uploading checkpoint {location.uri}", functools.partial(upload_checkpoint, self._store, staged, location))
                self._uploaded.append(step)
                logger.info("uploaded checkpoint %s", location.uri)
            except Exception as error:
                logger.error("giving up on uploading checkpoint %s: %s", location.uri, error)
                self._failed.append((step, error))
            finally:
                shutil.rmtree(staged, ignore_errors=True)

    def drain(self) -> list[int]:
        """Waits for every staged upload; the steps uploaded. Raises if the newest staged checkpoint failed."""
        self._queue.put(None)
        self._thread.join()
        if self._failed and (not self._uploaded or self._failed[-1][0] > self._uploaded[-1]):
            step, error = self._failed[-1]
            raise RuntimeError(f"checkpoint at step {step} could not be uploaded to {self._checkpoints.uri}: {error}") from error
        return self._uploaded


class RunMirror:
    """One s3:// run trained in a local mirror directory; see the module docstring for the protocol."""

    def __init__(self, run_uri: str, store: ObjectStore | None = None, cache: LocalCache | None = None):
        self.remote = ObjectLocation.parse(run_uri)
        self.store = store or ObjectStore()
        self.cache = cache or LocalCache(cache_directory())
        self.local = self.cache.entry("runs", self.remote.bucket, quote(self.remote.key, safe=""))
        self.checkpoints = self.local / "checkpoints"
        self._uploader: CheckpointUploader | None = None

    @property
    def local_uri(self) -> str:
        return path_to_uri(self.local)

    def holds(self, value: object) -> bool:
        """Whether value is a file:// URI inside the mirror."""
        return isinstance(value, str) and value.startswith("file:") and uri_to_path(value).is_relative_to(self.local)

    def local_copy(self, uri: str) -> Path | None:
        """The mirror's copy of an s3:// URI under this run, if the mirror has one."""
        if not is_object_store_uri(uri):
            return None
        location = ObjectLocation.parse(uri)
        if location.bucket != self.remote.bucket or not location.key.startswith(self.remote.key + "/"):
            return None
        path = self.local.joinpath(*location.key.removeprefix(self.remote.key + "/").split("/"))
        return path if path.exists() else None

    @overload
    def remote_uri(self, local_uri: str) -> str: ...
    @overload
    def remote_uri(self, local_uri: None) -> None: ...
    def remote_uri(self, local_uri: str | None) -> str | None:
        """The s3:// URI of a file:// URI inside the mirror (others are returned as they are)."""
        if not local_uri or is_object_store_uri(local_uri):
            return local_uri
        relative = uri_to_path(local_uri).relative_to(self.local)
        return self.remote.child(*relative.parts).uri

    def restore(self) -> int | None:
        """Makes the mirror hold the newest trusted checkpoint of the bucket; returns its step (None: none)."""
        remote_checkpoints = self.remote.child("checkpoints")
        steps = _retrying(f"listing {remote_checkpoints.uri}", lambda: remote_checkpoint_steps(self.store, remote_checkpoints))
        local_steps = {int(path.name.removeprefix("step-")) for path in self.checkpoints.glob("step-*") if (path / MANIFEST).exists()}
        for step in reversed(steps):
            if step in local_steps:
                return step  # this worker wrote or fetched it: the loop verifies it on disk
            if download_verified_checkpoint(self.store, remote_checkpoints.child(checkpoint_name(step)), self.checkpoints / checkpoint_name(step)):
                logger.info("restored checkpoint step %d from %s", step, remote_checkpoints.uri)
                return step
        train_log = self.remote.child("train_log.jsonl")
        if self.store.exists(train_log):
            self.store.download_file(train_log, self.local / "train_log.jsonl")
        return None

    def start_uploads(self) -> None:
        staging = self.local / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self._uploader = CheckpointUploader(self.store, staging, self.remote.child("checkpoints"))

    def checkpoint_written(self, step: int) -> None:
        if self._uploader is None:
            raise RuntimeError("start_uploads() first")
        self._uploader.stage(step, self.checkpoints / checkpoint_name(step))

    def finish(self) -> None:
        """Drains checkpoint uploads, uploads the train log, prunes the bucket's checkpoints to those the mirror kept."""
        if self._uploader is not None:
            uploader, self._uploader = self._uploader, None
            uploader.drain()
        log = self.local / "train_log.jsonl"
        if log.exists():
            _retrying("uploading the train log", lambda: self.store.upload_file(log, self.remote.child("train_log.jsonl")))
        self._prune_remote()

    def _prune_remote(self) -> None:
        kept = {path.name for path in self.checkpoints.glob("step-*")}
        remote_checkpoints = self.remote.child("checkpoints")
        stale = [key for key in self.store.list_keys(remote_checkpoints) if key.removeprefix(remote_checkpoints.key + "/").split("/")[0] not in kept]
        # Manifests first: a checkpoint stops being trusted before any of its objects disappears.
        manifests = [key for key in stale if key.endswith("/" + MANIFEST)]
        self.store.delete_keys(self.remote.bucket, manifests)
        self.store.delete_keys(self.remote.bucket, [key for key in stale if key not in manifests])


# Fields of the activities' requests that name inputs: fetched into the cache when they are s3:// URIs.
INPUT_FIELDS = ("train_uri", "val_uri", "train_tokens_uri", "val_tokens_uri", "adapter_uri")


class LocalFiles:
    """A run on the local or shared filesystem: every URI is already a file:// path the loop can use."""

    def __init__(self, request: dict):
        self.request = request

    def checkpoint_written(self, message: dict) -> dict:
        return message

    def heartbeat(self, details: dict) -> dict:
        return details

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        yield

    def publish(self, result: dict, fields: tuple[str, ...]) -> dict:
        return result


class ObjectStoreFiles(LocalFiles):
    """A run on object storage: inputs fetched into the cache, the run trained in its mirror, outputs uploaded."""

    def __init__(self, request: dict):
        self._mirror = RunMirror(request["run_uri"])
        inputs = {field: request[field] for field in INPUT_FIELDS if request.get(field)}
        # stored_uris: what the inputs are in the store, for what must not depend on the worker (the checkpoint's
        # fingerprint); the loop reads the local copies.
        localized = {field: self._input(uri) for field, uri in inputs.items()}
        super().__init__({**request, **localized, "run_uri": self._mirror.local_uri, "stored_uris": {**inputs, "run_uri": request["run_uri"]}})

    def _input(self, uri: str) -> str:
        """This run's own outputs (the adapter, for merge and evaluate) come from the mirror when this worker holds
        them (sticky routing's point); anything else from the cache or the bucket."""
        local = self._mirror.local_copy(uri)
        return path_to_uri(local) if local else fetch_input(self._mirror.store, self._mirror.cache, uri)

    def _remote_checkpoint(self, reference: dict | None) -> dict | None:
        return {**reference, "uri": self._mirror.remote_uri(reference["uri"])} if reference else reference

    def checkpoint_written(self, message: dict) -> dict:
        if message.get("event") == "checkpoint" and message.get("last_checkpoint"):
            self._mirror.checkpoint_written(message["last_checkpoint"]["step"])
        return {**message, "last_checkpoint": self._remote_checkpoint(message.get("last_checkpoint"))}

    def heartbeat(self, details: dict) -> dict:
        return {**details, "last_checkpoint": self._remote_checkpoint(details.get("last_checkpoint"))} if "last_checkpoint" in details else details

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Restores the newest trusted checkpoint, uploads checkpoints in the background while the body trains,
        and drains the uploads however the body ends (a pause acknowledges only once its checkpoint is up)."""
        with self._mirror.cache.pinned(self._mirror.local):
            self._mirror.restore()
            self._mirror.start_uploads()
            try:
                yield
            finally:
                self._mirror.finish()

    def publish(self, result: dict, fields: tuple[str, ...]) -> dict:
        """Uploads the outputs named by `fields` (file:// URIs in the mirror); every file:// URI of the mirror in the
        result becomes its s3:// URI."""
        for field in fields:
            path, remote = uri_to_path(result[field]), ObjectLocation.parse(self._mirror.remote_uri(result[field]))
            upload = functools.partial(upload_directory, self._mirror.store) if path.is_dir() else self._mirror.store.upload_file
            _retrying(f"uploading {remote.uri}", functools.partial(upload, path, remote))
        return {field: self._mirror.remote_uri(value) if self._mirror.holds(value) else value for field, value in result.items()}


class InputFiles(LocalFiles):
    """An activity with s3:// inputs and no run (token statistics): the inputs are fetched into the cache, and what it
    writes beside them goes up beside them in the bucket."""

    def __init__(self, request: dict):
        self._store, self._cache = ObjectStore(), LocalCache(cache_directory())
        super().__init__({**request, **{field: fetch_input(self._store, self._cache, request[field]) for field in INPUT_FIELDS if request.get(field)}})

    def publish(self, result: dict, fields: tuple[str, ...]) -> dict:
        published = dict(result)
        inputs = self._cache.root / "inputs"
        for field in fields:
            path = uri_to_path(result[field])
            bucket, *key = path.relative_to(inputs).parts
            remote = ObjectLocation(bucket, "/".join(key))
            upload = functools.partial(upload_directory, self._store) if path.is_dir() else self._store.upload_file
            _retrying(f"uploading {remote.uri}", functools.partial(upload, path, remote))
            published[field] = remote.uri
        return published


def activity_files(request: dict) -> LocalFiles:
    """The files of one activity: its run mirrored from object storage when run_uri is s3://, its s3:// inputs
    fetched, or, on the filesystem, the request as it is."""
    if is_object_store_uri(request.get("run_uri")):
        return ObjectStoreFiles(request)
    if any(is_object_store_uri(request.get(field)) for field in INPUT_FIELDS):
        return InputFiles(request)
    return LocalFiles(request)
