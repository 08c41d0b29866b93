"""The worker cache's bounds and the URI arithmetic of object storage (the S3 protocol itself is tested against a
real S3 server in test/scale/)."""

import os
import time

from tuneflow_activities.object_store import LocalCache, ObjectLocation, RunMirror


def _fill(directory, size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "blob").write_bytes(b"x" * size)


def test_cache_evicts_least_recently_used_entries_but_never_a_pinned_one(tmp_path):
    cache = LocalCache(tmp_path, limit_bytes=2500)
    entries = [cache.entry("inputs", "bucket", name) for name in ("oldest", "middle", "newest")]
    for age, entry in enumerate(entries):
        _fill(entry, 1000)
        stamp = time.time() - 100 + age
        os.utime(entry, (stamp, stamp))
    with cache.pinned(entries[0]):
        assert cache.evict() == [entries[1]]
    assert entries[0].exists() and entries[2].exists()
    # Unpinned on leaving: within the limit now, so nothing more goes.
    assert cache.evict() == []


def test_object_locations_join_like_paths_and_mirror_uris_map_back_to_the_bucket(tmp_path):
    run = ObjectLocation.parse("s3://bucket/tuneflow/runs/my%20run")
    assert run.key == "tuneflow/runs/my run"
    assert run.child("checkpoints", "step-00000004").uri == "s3://bucket/tuneflow/runs/my%20run/checkpoints/step-00000004"
    mirror = RunMirror(run.uri, cache=LocalCache(tmp_path))
    local = (mirror.local / "adapter").as_uri()
    assert mirror.holds(local)
    assert mirror.remote_uri(local) == "s3://bucket/tuneflow/runs/my%20run/adapter"
    assert not mirror.holds((tmp_path.parent / "elsewhere").as_uri())
