"""The state-change handler names no API surface: each surface registers what its jobs do
when they end, at wiring time, so every entry point (app, job runner, local server) has them."""

from __future__ import annotations

import json

from chalicelib import wiring
from chalicelib.services import events, outbox
from contracts.api_names import AI_FACTORY, V15
from tests.api.test_state_change import mark, queued_only  # noqa: F401 - the fixture
from tests.builders import create_payload


def test_each_surface_registers_its_end_of_job_hook():
    assert wiring.adapters  # the composition every entry point imports registers them
    assert events._on_end.get(AI_FACTORY) is outbox.send_now  # the AI Factory callback
    assert V15 not in events._on_end  # a v1.5 job's end is its settled record, nothing more


def test_a_terminal_job_runs_its_own_surfaces_hook_once_settled(client, api_headers, queued_only, monkeypatch):  # noqa: F811
    seen = []
    monkeypatch.setattr(events, "_on_end", dict(events._on_end))
    events.on_job_end(AI_FACTORY, lambda svc, job, budget_s: seen.append((job["status"], budget_s)))
    created = client.http.post("/create_training_job", headers=api_headers, body=json.dumps(create_payload()))
    name = created.json_body["job_name"]
    svc = wiring.adapters()
    events.on_training_state_change(svc, name, "InProgress", budget_s=5.0)
    assert seen == []  # not terminal: no hook
    mark(name, "Completed")
    events.on_training_state_change(svc, name, "Completed", budget_s=5.0)
    assert seen == [("Completed", 5.0)]
