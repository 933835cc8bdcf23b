"""An incident made the real way, watched in the browser: the OpenTelemetry SDK sends a service's logs to a
real gateway, a burst of a new error template opens an incident, and the incidents page (open before the
incident existed) shows it without a reload; its page plots the stream's scores and explains the fields;
an operator acknowledges and resolves it from the page, and the admin reads both in the audit log.

Everything is the real gateway with its incident engine; no normal records follow the burst, so the incident
stays open until the operator acts.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e import detect_support as ds

from .conftest import UiGateway, start_gateway, stream_url

APPEAR_MS = 120_000  # SDK batches, warm-up of 1000 records, scoring, the sink's write, one page refresh


@pytest.fixture(scope="module")
def live_gateway() -> Iterator[UiGateway]:
    with tempfile.TemporaryDirectory(prefix="ui-live-") as data:
        gw = UiGateway(start_gateway(Path(data), auth_required=True))
        try:
            gw.admin_key = gw.new_key("admin", "ui-admin")
            gw.read_key = gw.new_key("read", "ui-reader")
            yield gw
        finally:
            gw.gateway.stop()


def test_an_incident_appears_live_is_explained_and_resolved(open_page, live_gateway: UiGateway):
    gw = live_gateway
    operator = gw.new_key("operator", "on-call")
    page = open_page(gw.url + "/", credential=operator)
    expect(page.locator("tbody")).to_contain_text("No incidents yet.")
    page.evaluate("() => { window.sameDocument = true; }")

    injected = ds.Injected()
    with ds.shop_service(gw.grpc) as svc:
        svc.normal_logs(ds.WARM_EVENTS)
        svc.incident_logs(injected)

    row = page.locator("tbody tr[data-id]")
    expect(row).to_have_count(1, timeout=APPEAR_MS)
    assert page.evaluate("() => window.sameDocument === true"), "the list was reloaded"
    [incident] = gw.get("/v1/incidents", operator).json()["items"]
    assert (incident["stream_id"], incident["status"]) == (ds.LOG_STREAM, "open")
    expect(row).to_have_attribute("data-id", incident["id"])
    expect(row).to_have_class(re.compile(r"\bfresh\b"))
    expect(row.locator(".badge.status-open")).to_have_text("Open")
    expect(row.locator(f".badge.sev-{incident['severity']}")).to_be_visible()
    expect(row).to_contain_text(ds.SERVICE)
    expect(row).to_contain_text(ds.LOG_SCOPE)

    # its page: the stream's scores around it, the field explanation, the blamed records
    row.locator(".summary-cell a").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident['id']}$"))
    expect(page.locator("h1")).to_have_text(f"{ds.SERVICE} · {ds.LOG_SCOPE}")
    expect(page.locator("p.lead")).to_have_text(incident["summary"])
    plot = page.locator("figure.plot-figure svg")
    expect(plot).to_be_visible()
    expect(plot.locator("line.change")).to_have_count(1)
    expect(plot.locator("rect.span")).to_have_count(1)
    assert plot.locator("circle.anomalous").count() >= 1
    detail = gw.get(f"/v1/incidents/{incident['id']}", operator).json()
    fields = page.locator("section[aria-labelledby=fields-title] tbody tr")
    expect(fields).to_have_count(len(detail["fields"]))
    expect(fields.first.locator("td").first).to_have_text(detail["fields"][0]["field"])
    expect(page.locator("ul.evidence li")).to_have_count(len(detail["evidence"]))
    assert detail["evidence"]
    expect(page.locator("ul.evidence li").first).to_contain_text(detail["evidence"][0]["text"][:20])

    # the operator acts from the page
    page.get_by_role("button", name="Acknowledge").click()
    page.fill("#confirm-note", "paging the payments team")
    page.locator("#confirm-ok").click()
    expect(page.locator(".badges .badge.ack")).to_have_text("Acknowledged")
    page.get_by_role("button", name="Resolve").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".badges .badge.status-resolved")).to_have_text("Resolved")
    assert gw.get(f"/v1/incidents/{incident['id']}", operator).json()["status"] == "resolved"

    # the stream's page lists it; the audit log has both actions
    admin = open_page(stream_url(gw, ds.LOG_STREAM), credential=gw.admin_key)
    incidents = admin.locator("section[aria-labelledby=incidents-title] tbody tr[data-id]")
    expect(incidents).to_have_count(1)
    expect(incidents.locator(".badge.status-resolved")).to_have_text("Resolved")
    admin.goto(gw.url + f"/admin/audit?target=incident:{incident['id']}")
    entries = admin.locator("main tbody tr")
    expect(entries).to_have_count(2)
    expect(entries.nth(0)).to_contain_text("incident.resolve")
    expect(entries.nth(1)).to_contain_text("incident.acknowledge")
    expect(entries.nth(1)).to_contain_text("paging the payments team")
