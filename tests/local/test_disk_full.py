"""Issue 16, a full disk, one adapter at a time: an injected ENOSPC/EDQUOT (or SQLite's
"database or disk is full") becomes `StorageFull` (507), the failed write leaves no file, and
the reads and read paths that only write to save work go on. The whole server on a real full
tmpfs is `tests/hardening/test_disk_full.py`."""

from __future__ import annotations

import base64
import errno
import os
import sqlite3
from pathlib import Path

import pytest

from chalicelib import settings
from chalicelib.adapters.local import disk_full
from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
from chalicelib.adapters.local.job_store import SqliteJobStore
from chalicelib.adapters.local.secret_store import FileSecretStore
from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
from chalicelib.errors import HTTP_ERRORS, Forbidden, StorageFull
from chalicelib.ports import IN_PROGRESS, Adapters, TrainingDescription, TrainingRequest
from chalicelib.services import jobs, model_links
from chalicelib.v15 import plots
from chalicelib.web.envelopes import ai_factory_errors, v15_errors
from contracts import layout, tools
from contracts.job_config import DataSource, JobConfig

JOB_ID = "20261207000000-diskfull"


def enospc(code=errno.ENOSPC):
    return OSError(code, os.strerror(code))


class FailingHandle:
    """A file handle whose writes fail as on a full disk (after the file was created)."""

    def __init__(self, handle, code):
        self.handle, self.code = handle, code

    def write(self, data):
        raise enospc(self.code)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.fixture(params=[errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def full_writes(request, monkeypatch):
    """Every `os.fdopen` hands out a handle whose writes fail with the code."""
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FailingHandle(real(fd, *a, **k), request.param))
    return request.param


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_storage_full_is_a_507_in_both_envelopes():
    assert issubclass(StorageFull, HTTP_ERRORS) and StorageFull("/x").status_code == 507

    def full():
        raise StorageFull("/srv/aifactory")

    for handler, key, value in ((ai_factory_errors, "status", "error"), (v15_errors, "result", "Error")):
        response = handler(full)()
        assert response.status_code == 507
        assert response.body[key] == value
        assert "disk is full" in response.body["message"] and "/srv/aifactory" in response.body["message"]


def test_a_secret_on_a_full_disk_leaves_no_file(tmp_path, full_writes):
    store = FileSecretStore(tmp_path / "secrets")
    with pytest.raises(StorageFull) as raised:
        store.put(JOB_ID, {"x-api-key": "s3cret"})
    assert str(tmp_path / "secrets") in raised.value.message
    assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == full_writes
    assert files(tmp_path) == []  # issue 16: an empty secrets/<job>.json was left behind


def test_a_secret_is_written_whole_and_0600(tmp_path):
    store = FileSecretStore(tmp_path / "secrets")
    ref = store.put(JOB_ID, {"k": "v"})
    assert store.get(ref) == {"k": "v"}
    assert os.stat(ref["ref"]).st_mode & 0o777 == 0o600
    assert files(tmp_path) == [f"secrets/{JOB_ID}.json"]


def test_an_artifact_on_a_full_disk_leaves_no_file(tmp_path, full_writes):
    store = DirectoryArtifactStore(tmp_path / "artifacts")
    with pytest.raises(StorageFull):
        store.put_json(layout.job_key(JOB_ID, layout.JOB_FILE), {"a": 1})
    assert files(tmp_path) == []


def test_an_artifact_copy_on_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    store = DirectoryArtifactStore(tmp_path / "artifacts")
    store.put_bytes("jobs/a/x", b"data")

    def copyfile(source, target):
        Path(target).write_bytes(b"da")  # half of it, then the disk is full
        raise enospc()

    monkeypatch.setattr("chalicelib.adapters.local.artifact_store.shutil.copyfile", copyfile)
    with pytest.raises(StorageFull):
        store.copy("jobs/a/x", "jobs/b/x")
    assert files(tmp_path) == ["artifacts/jobs/a/x"]


def test_other_os_errors_are_not_a_full_disk(tmp_path, monkeypatch):
    store = DirectoryArtifactStore(tmp_path / "artifacts")

    def broken(path, data):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr("chalicelib.adapters.local.artifact_store.atomic.write_bytes", broken)
    with pytest.raises(OSError) as raised:
        store.put_bytes("jobs/a/x", b"data")
    assert not isinstance(raised.value, StorageFull) and raised.value.errno == errno.EIO


@pytest.mark.parametrize(
    ("message", "free", "full"),
    [
        ("database or disk is full", 10 << 30, True),
        ("disk I/O error", 0, True),  # SQLITE_IOERR_SHMSIZE: no room for the WAL index
        ("disk I/O error", 10 << 30, False),  # a real I/O error on a disk with room
        ("no such table: jobs", 0, False),
    ],
)
def test_sqlite_errors_that_mean_a_full_disk(tmp_path, monkeypatch, message, free, full):
    monkeypatch.setattr(disk_full, "free_bytes", lambda directory: free)
    assert disk_full.is_disk_full(sqlite3.OperationalError(message), tmp_path) is full


def record(job_id=JOB_ID, name="aif-diskfull"):
    return jobs.base_record(job_id, name, "ai_factory", "ml_tagger", hyperparameters={})


def failing_sqlite(monkeypatch, message="database or disk is full", free=0):
    """Every connection but an immutable one fails its statements as SQLite does on a full disk."""
    real = sqlite3.connect
    monkeypatch.setattr(disk_full, "free_bytes", lambda directory: free)

    class Full:
        in_transaction = False

        def execute(self, *args):
            raise sqlite3.OperationalError(message)

        executescript = execute

        def close(self):
            pass

    def connect(database, *args, **kwargs):
        return real(database, *args, **kwargs) if str(database).startswith("file:") else Full()

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_job_store_writes_on_a_full_disk_are_storage_full(tmp_path, monkeypatch):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(record())
    failing_sqlite(monkeypatch)
    for write in (
        lambda: store.create(record("other", "aif-other")),
        lambda: store.update(JOB_ID, {"status": "Stopped"}),
        lambda: store.delete(JOB_ID),
    ):
        with pytest.raises(StorageFull) as raised:
            write()
        assert str(tmp_path) in raised.value.message


def test_job_store_reads_on_a_full_disk_go_on(tmp_path, monkeypatch):
    """A store opened after the disk filled (a new process) cannot map the WAL index: it reads
    the database file as immutable, since no WAL content is pending."""
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(record())
    store.close()  # the last connection: the WAL is checkpointed into the file and removed
    failing_sqlite(monkeypatch, message="disk I/O error", free=0)
    late = SqliteJobStore(tmp_path / "jobs.sqlite3")  # starts, reads, refuses writes
    assert late.get(JOB_ID)["job_name"] == "aif-diskfull"
    assert late.get_by_name("aif-diskfull")["job_id"] == JOB_ID
    assert [j["job_id"] for j in late.list("ai_factory")] == [JOB_ID]
    with pytest.raises(StorageFull):
        late.create(record("other", "aif-other"))


def test_job_store_real_io_errors_still_raise(tmp_path, monkeypatch):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    failing_sqlite(monkeypatch, message="disk I/O error", free=10 << 30)
    with pytest.raises(sqlite3.OperationalError):
        store.get(JOB_ID)


def test_job_store_on_a_full_disk_without_a_database_cannot_start(tmp_path, monkeypatch):
    failing_sqlite(monkeypatch)
    with pytest.raises(StorageFull):
        SqliteJobStore(tmp_path / "jobs.sqlite3")


def request(name="aif-diskfull"):
    return TrainingRequest(
        job_id=JOB_ID,
        training_job_name=name,
        image="ghcr.io/chappieai/aifactory-trainer:latest",
        hyperparameters={},
        instance_type="local",
        instance_count=1,
        volume_size_gb=1,
        artifact_uri="/nowhere",
        data_uri=None,
        max_runtime_s=60,
        tags={},
    )


def test_platform_start_on_a_full_disk_removes_its_job_directory(tmp_path, monkeypatch):
    platform = LocalTrainingPlatform(tmp_path, max_concurrent=0)
    monkeypatch.setattr(platform, "check_image", lambda image: None)
    real = Path.write_text

    def write_text(path, text, *args, **kwargs):
        if path.name == "state.tmp":
            real(path, text[:10], *args, **kwargs)  # half of it, then the disk is full
            raise enospc()
        return real(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(StorageFull):
        platform.start(request())
    assert not platform.job_dir("aif-diskfull").exists()


class Platform:
    def __init__(self, error=None, status=IN_PROGRESS):
        self.error, self.status = error, status

    def start(self, request):
        if self.error:
            raise self.error

    def describe(self, name):
        return TrainingDescription(self.status, "Training")


def local_services(tmp_path, platform):
    return Adapters(
        jobs=SqliteJobStore(tmp_path / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(tmp_path / "artifacts"),
        platform=platform,
        secrets=FileSecretStore(tmp_path / "secrets"),
    )


def fetch_config() -> JobConfig:
    return JobConfig(job_id=JOB_ID, task="ml_tagger", artifact_uri="/nowhere", data=DataSource(type="fetch"))


def test_a_launch_that_meets_a_full_disk_leaves_nothing(tmp_path):
    svc = local_services(tmp_path, Platform(StorageFull(tmp_path)))
    with pytest.raises(StorageFull):
        jobs.launch(svc, record(), fetch_config(), {"k": "v"}, request())
    assert svc.jobs.list() == []
    assert [f for f in files(tmp_path) if not f.startswith("jobs.sqlite3")] == []


def test_a_launch_cleanup_that_fails_still_runs_every_step(tmp_path, monkeypatch):
    svc = local_services(tmp_path, Platform(StorageFull(tmp_path)))

    def delete(job_id):
        raise StorageFull(tmp_path)  # e.g. SQLite cannot append the DELETE to a full WAL

    monkeypatch.setattr(svc.jobs, "delete", delete)
    with pytest.raises(StorageFull):
        jobs.launch(svc, record(), fetch_config(), {"k": "v"}, request())
    assert [f for f in files(tmp_path) if not f.startswith("jobs.sqlite3")] == []


def test_a_read_whose_refresh_cannot_be_saved_still_answers(tmp_path, monkeypatch):
    svc = local_services(tmp_path, Platform(status="Completed"))
    svc.jobs.create(record())

    def update(*args, **kwargs):
        raise StorageFull(tmp_path)

    monkeypatch.setattr(svc.jobs, "update", update)
    assert jobs.get(svc, JOB_ID)["status"] == "Completed"
    assert svc.jobs.get(JOB_ID)["status"] == IN_PROGRESS  # saved by a later read


def test_the_model_link_key_on_a_full_disk(tmp_path, full_writes):
    home = str(tmp_path / "home")
    model_links._key.cache_clear()
    with pytest.raises(StorageFull):
        model_links._key("", home)
    assert files(tmp_path) == []  # an empty key file would sign every link with an empty key


def test_checking_a_link_never_makes_a_key(local_stage):
    key_file = local_stage / "model_link_key"
    model_links._key.cache_clear()
    try:
        with pytest.raises(Forbidden):
            model_links.check(settings.current(), "aif-x", {"expires": "9999999999", "signature": "00"})
        assert not key_file.exists()
        local_stage.mkdir(parents=True, exist_ok=True)
        key_file.write_text("")  # left by a full disk before keys were written whole
        with pytest.raises(Forbidden):
            model_links.check(settings.current(), "aif-x", {"expires": "9999999999", "signature": ""})
        link = model_links.signed_url(settings.current(), "http://api/models/aif-x", "aif-x")
        assert key_file.read_text()  # the empty one was replaced
        query = dict(part.split("=") for part in link.split("?", 1)[1].split("&"))
        model_links.check(settings.current(), "aif-x", query)
    finally:
        model_links._key.cache_clear()


class DrawingTools:
    def __init__(self):
        self.calls = 0

    def run(self, request):
        self.calls += 1
        return tools.ok(base64_image=base64.b64encode(b"\xff\xd8\xff drawn").decode())


def test_a_plot_is_served_when_the_disk_is_too_full_to_store_it(tmp_path, monkeypatch):
    artifacts = DirectoryArtifactStore(tmp_path / "artifacts")
    artifacts.put_json(layout.job_key(JOB_ID, layout.LOSSES), [2.0, 1.5])
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(
        {**record(), "api": "v1.5", "task": "classification", "status": "Completed", "settled": True}
    )
    drawing = DrawingTools()
    svc = Adapters(jobs=store, artifacts=artifacts, platform=None, secrets=None, tools=drawing)
    before = files(tmp_path)

    def full(*args):
        raise StorageFull(tmp_path)

    monkeypatch.setattr(artifacts, "put_bytes", full)
    for _ in range(2):  # drawn each time: nothing could be stored
        assert base64.b64decode(plots.loss(svc, JOB_ID)["base64_loss_plot"]) == b"\xff\xd8\xff drawn"
    assert drawing.calls == 2 and files(tmp_path) == before  # no source without its JPEG
