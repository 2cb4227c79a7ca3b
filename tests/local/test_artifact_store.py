"""The directory ArtifactStore reads JSON as the S3 one does (tests/aws/test_artifact_store.py):
a missing or torn file is the caller's default, never an error."""

from __future__ import annotations

from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore


def test_json_reads_like_the_bucket(tmp_path):
    store = DirectoryArtifactStore(tmp_path)
    store.put_json("jobs/j1/progress.json", {"status": "running", "avg_loss": 0.25})
    assert store.get_json("jobs/j1/progress.json") == {"status": "running", "avg_loss": 0.25}
    assert store.get_json("jobs/nope/losses.json") is None
    assert store.get_json("jobs/nope/losses.json", default=[]) == []
    store.put_bytes("jobs/j1/broken.json", b"{not json")
    assert store.get_json("jobs/j1/broken.json", default={}) == {}
