"""The backend half of the web extension: the run report message (no browser, no ComfyUI needed)."""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from cachekit.cache_core.runtime.report import RunReport
from cachekit.nodes.ui_report import REPORT_EVENT, send_report_to_ui


class FakeServer:
    def __init__(self, client_id):
        self.client_id = client_id
        self.last_prompt_id = "prompt-1"
        self.sent = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))


@pytest.fixture()
def fake_server(monkeypatch):
    module = types.ModuleType("server")
    module.PromptServer = SimpleNamespace(instance=None)
    monkeypatch.setitem(sys.modules, "server", module)
    return module.PromptServer


def _report() -> RunReport:
    report = RunReport(method="FirstBlockCache", family="Wan", total_steps=3)
    for step, computed in enumerate((3, 0, 3)):
        report.record_forward(step, 3, computed)
    return report


def test_the_report_goes_to_the_client_that_queued_the_prompt(fake_server):
    fake_server.instance = FakeServer("client-a")
    send_report_to_ui(_report(), SimpleNamespace(node_id="5:12"))
    ((event, data, sid),) = fake_server.instance.sent
    assert (event, sid) == (REPORT_EVENT, "client-a") == ("cachekit.run_report", "client-a")
    assert data["node"] == "5:12" and data["prompt_id"] == "prompt-1"
    assert data["report"]["steps"] == ["computed", "reused", "computed"]
    assert (data["report"]["steps_computed"], data["report"]["steps_evaluated"]) == (2, 3)


@pytest.mark.parametrize("client_id, node_id", [(None, "6"), ("client-a", None)])
def test_nothing_is_sent_without_a_listening_client_or_a_node(fake_server, client_id, node_id):
    fake_server.instance = FakeServer(client_id)
    send_report_to_ui(_report(), SimpleNamespace(node_id=node_id))
    assert fake_server.instance.sent == []


def test_no_server_and_a_failing_send_are_harmless(fake_server):
    send_report_to_ui(_report(), SimpleNamespace(node_id="6"))  # PromptServer.instance is None

    class Broken(FakeServer):
        def send_sync(self, event, data, sid=None):
            raise RuntimeError("socket closed")

    fake_server.instance = Broken("client-a")
    send_report_to_ui(_report(), SimpleNamespace(node_id="6"))
