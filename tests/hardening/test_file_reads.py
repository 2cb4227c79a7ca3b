"""What the API reads from its own disk on a caller's word (issue 16): a glob that walked the
whole file system on a request thread, and paths anywhere on the disk.

The job and its deployment are checked before any walk or read, so a job that does not exist
or is not deployed costs one lookup however nasty its pattern, and eight such requests at
once leave the server answering.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

V = "/api/v1.5.0"
WHOLE_DISK = "['/*/*/*/*/*/*/*/*/*/nomatch.jpg']"


def test_a_whole_disk_pattern_for_a_job_that_does_not_exist_walks_nothing(api):
    form = {"task": "classification", "epoch": "1", "path_to_image_pattern_list": WHOLE_DISK}
    started = time.monotonic()
    status, body = api.call("POST", f"{V}/infer_multiple/20250101000000-nosuchjob", form=form)
    assert status == 404 and body["result"] == "Error", body
    assert time.monotonic() - started < 2


@pytest.mark.serial
def test_eight_whole_disk_patterns_at_once_leave_the_api_answering(api):
    form = {"task": "classification", "epoch": "1", "path_to_image_pattern_list": WHOLE_DISK}
    with ThreadPoolExecutor(8) as pool:
        attacks = [
            pool.submit(api.call, "POST", f"{V}/infer_multiple/20250101000000-job{i}", None, form)
            for i in range(8)
        ]
        started = time.monotonic()
        status, body = api.call("GET", "/api/version")
        answered_in = time.monotonic() - started
        assert status == 200, body
        assert all(attack.result()[0] == 404 for attack in attacks)
    assert answered_in < 1


def test_an_image_path_is_checked_only_after_the_job(api):
    form = {"task": "classification", "epoch": "1", "path_to_image": "/etc/shadow"}
    status, body = api.call("POST", f"{V}/infer/20250101000000-nosuchjob", form=form)
    assert status == 404 and "/etc/shadow" not in body["message"], body
