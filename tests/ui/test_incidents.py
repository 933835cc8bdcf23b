"""The incidents list and an incident's page against a real gateway whose store holds incidents written the
way the incident sink writes them (``seed.py``: upserts of ``IncidentRecord`` and score buckets): the
order, the filters in the URL, cursor paging, live refresh, the detail's plot, field table, examples with
trace links and masked parts, the operator's actions with their confirmation, the 409 when an incident
closed meanwhile, and the roles (a reader sees no action, and the API refuses one anyway)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from otlp_gateway.store.base import IncidentRecord
from tests.api.conftest import make_stream

from . import seed
from .conftest import (
    PHONE,
    TRACE_TEMPLATE,
    WIDTHS,
    UiGateway,
    axe_violations,
    no_horizontal_scroll,
    shoot,
    wait_rendered,
)

SEEDED = 120  # more than two pages of 50
PAGE = 50


@pytest.fixture(scope="module")
def seeded(ui_gateway: UiGateway) -> Iterator[tuple[UiGateway, list[IncidentRecord]]]:
    rows = list(seed.incidents(SEEDED))
    store = ui_gateway.gateway.gateway.store
    ui_gateway.run(store.upsert_incidents(rows))
    for rec in rows:
        if rec.is_open:  # the pages these tests open
            ui_gateway.run(store.write_scores(seed.score_buckets(rec.stream_id, rec.opened_at, 7.0)))
    yield ui_gateway, rows


@pytest.fixture(scope="module")
def operator_key(ui_gateway: UiGateway) -> str:
    return ui_gateway.new_key("operator", "ui-operator")


def expected_order(rows: list[IncidentRecord]) -> list[str]:
    """Open first, then the most recently opened (the API's documented order)."""
    return [r.id for r in sorted(rows, key=lambda r: (not r.is_open, -r.opened_at.timestamp()))]


def shown_ids(page) -> list[str]:
    return page.locator("tbody tr[data-id]").evaluate_all("rows => rows.map((r) => r.dataset.id)")


def wait_ids(page, ids: list[str]) -> None:
    expect(page.locator("tbody tr[data-id]")).to_have_count(len(ids))
    assert shown_ids(page) == ids


def incident_path(rec: IncidentRecord) -> str:
    return f"/incidents/{quote(rec.id)}"


# --- the list


def test_list_shows_open_incidents_first_with_their_facts(open_page, seeded):
    gw, rows = seeded
    page = open_page(gw.url + "/", credential=gw.read_key)
    order = expected_order(rows)
    wait_ids(page, order[:PAGE])
    first = next(r for r in rows if r.id == order[0])
    row = page.locator(f"tr[data-id='{first.id}']")
    expect(row.locator(".badge.sev-" + first.severity)).to_have_text(first.severity)
    expect(row.locator(".badge.status-open")).to_have_text("Open")
    expect(row).to_contain_text(first.summary)
    expect(row).to_contain_text(first.service)
    # absolute time with its zone (the browser runs in Europe/Berlin: CET in November) and a relative one
    expect(row.locator("time.when")).to_have_attribute("datetime", re.compile(r"^2026-11-01T"))
    expect(row.locator("time.when .abs")).to_have_text(re.compile(r"^2026-11-01 \d\d:\d\d:\d\d GMT\+1$"))
    expect(row.locator("time.when .rel")).to_have_text(re.compile(r"^\(\S.*\)$"))  # "(last month)"
    # the footer names the reader's zone (filled in after the first paint)
    expect(page.locator("#tz-choice option[value='local']")).to_have_text("your time zone (Europe/Berlin)")
    expect(row).to_contain_text("7 min")  # the duration: opened to last anomalous window, event time
    # the summary links to the incident, the name to its stream
    summary_link = row.get_by_role("link", name=first.summary, exact=True)
    expect(summary_link).to_have_attribute("href", incident_path(first))
    expect(row.get_by_role("link", name=first.name, exact=True)).to_have_attribute(
        "href", "/streams/" + "/".join(quote(p, safe="") for p in first.stream_id.split("/")))
    expect(page.locator(".count-line")).to_contain_text(f"{PAGE} incidents on this page, 3 open")


def test_filters_are_in_the_url_and_applied_by_the_api(open_page, seeded):
    gw, rows = seeded
    page = open_page(gw.url + "/?status=resolved&service=payments", credential=gw.read_key)
    matching = [r for r in rows if r.status == "resolved" and r.service == "payments"]
    assert len(matching) >= 3
    wait_ids(page, expected_order(matching))
    expect(page.locator("#f-status")).to_have_value("resolved")
    expect(page.locator("#f-service")).to_have_value("payments")

    # a select applies at once and lands in the address, so the view can be shared
    severity = matching[0].severity
    page.select_option("#f-severity", severity)
    page.wait_for_url(re.compile(rf"severity={severity}"))
    wait_ids(page, expected_order([r for r in matching if r.severity == severity]))
    shared = page.url
    assert parse_qs(urlsplit(shared).query) == {"status": ["resolved"], "service": ["payments"],
                                                "severity": [severity]}

    # the same link in another tab shows the same view
    other = open_page(shared, credential=gw.read_key)
    wait_ids(other, expected_order([r for r in matching if r.severity == severity]))

    # nothing matches: said so, not an empty table
    page.fill("#f-service", "no-such-service")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody")).to_contain_text("No incidents match these filters.")

    page.get_by_role("button", name="Clear").click()
    wait_ids(page, expected_order(rows)[:PAGE])
    assert urlsplit(page.url).query == ""


def test_the_service_suggestions_are_asked_for_when_the_field_takes_the_focus(open_page, seeded):
    """Loading the list asks the gateway for its incidents only: the service field's suggestions (the
    streams' distinct services, /v1/services) come when someone is about to type."""
    gw, _ = seeded
    for stream_id in ("traces/payments/POST /pay", "logs/search/query"):
        gw.run(gw.gateway.gateway.store.upsert_stream(make_stream(stream_id)))
    page = open_page(gw.url + "/", credential=gw.read_key)
    asked = """(path) => performance.getEntriesByType("resource")
        .filter((e) => new URL(e.name).pathname === path).length"""
    assert page.evaluate(asked, "/v1/services") == 0
    expect(page.locator("#services option")).to_have_count(0)
    page.locator("#f-service").focus()
    options = page.locator("#services option")
    stored = gw.get("/v1/streams?limit=1000", gw.read_key).json()["items"]
    services = sorted({s["service"] for s in stored})
    assert {"payments", "search"} <= set(services)
    expect(options).to_have_count(len(services))
    assert options.evaluate_all("els => els.map((e) => e.value)") == services
    assert page.evaluate(asked, "/v1/services") == 1
    assert page.evaluate(asked, "/v1/streams") == 0  # not every stream's record


def test_time_range_filter(open_page, seeded):
    gw, rows = seeded
    since = seed.BASE - dt.timedelta(hours=2)
    until = seed.BASE - dt.timedelta(hours=1)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731 - what the page writes
    page = open_page(gw.url + f"/?range=custom&since={iso(since)}&until={iso(until)}", credential=gw.read_key)
    inside = [r for r in rows if since <= r.opened_at < until]
    assert 2 <= len(inside) < len(rows)
    wait_ids(page, expected_order(inside))
    expect(page.locator("#f-since")).to_be_visible()
    expect(page.locator("#f-range")).to_have_value("custom")


def test_cursor_paging(open_page, seeded):
    gw, rows = seeded
    order = expected_order(rows)
    page = open_page(gw.url + "/", credential=gw.read_key)
    wait_ids(page, order[:PAGE])
    page.get_by_role("link", name="Next page →").click()
    page.wait_for_url(re.compile(r"cursor="))
    wait_ids(page, order[PAGE:2 * PAGE])
    page.get_by_role("link", name="Next page →").click()
    wait_ids(page, order[2 * PAGE:])
    expect(page.get_by_role("link", name="Next page →")).to_have_count(0)  # the last page
    page.go_back()
    wait_ids(page, order[PAGE:2 * PAGE])
    page.get_by_role("link", name="← First page").click()
    wait_ids(page, order[:PAGE])


# --- quality (before anything changes the seeded incidents: these screenshots go in docs/ui)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["incidents", "incident"])
def test_incident_pages_are_accessible_and_fit(open_page, seeded, operator_key: str, name: str, width: int):
    gw, rows = seeded
    path = "/" if name == "incidents" else incident_path(rows[50])
    page = open_page(gw.url + path, width=width, credential=operator_key)  # with the action buttons
    if name == "incident":
        expect(page.locator("figure.plot-figure svg")).to_be_visible()
    assert axe_violations(page) == []
    assert no_horizontal_scroll(page), f"{name} is wider than {width} px"
    shoot(page, f"{name}-{width}")


def test_the_incident_actions_work_from_the_keyboard(open_page, seeded, operator_key: str):
    gw, rows = seeded
    page = open_page(gw.url + incident_path(rows[50]), width=PHONE, credential=operator_key)
    page.locator("button[data-action=acknowledge]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-note")).to_be_focused()  # the note first, then the buttons
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("button[data-action=acknowledge]")).to_be_focused()  # focus returns


# --- live refresh (after the screenshots above: it adds incidents)


def test_a_new_incident_appears_without_a_reload(open_page, seeded):
    gw, rows = seeded
    page = open_page(gw.url + "/?status=open", credential=gw.read_key)
    wait_ids(page, expected_order([r for r in rows if r.is_open]))
    page.evaluate("() => { window.sameDocument = true; }")
    fresh = seed.incident(SEEDED + 1, status="open", severity="critical",
                          opened_at=seed.BASE + dt.timedelta(minutes=5))
    gw.run(gw.gateway.gateway.store.upsert_incidents([fresh]))
    row = page.locator(f"tr[data-id='{fresh.id}']")
    expect(row).to_be_visible()  # within a few refreshes (api.ui.poll_seconds: 1)
    expect(row).to_have_class(re.compile(r"\bfresh\b"))
    assert shown_ids(page)[0] == fresh.id
    expect(page.locator("#announce")).to_have_text("1 new incident")
    assert page.evaluate("() => window.sameDocument === true"), "the page reloaded"
    # closed again behind the page's back: its status follows
    gw.post(f"/v1/incidents/{fresh.id}/resolve", gw.admin_key)
    expect(row).to_have_count(0)  # no longer open, so no longer under status=open


# --- one incident


def test_incident_page_explains_the_incident(open_page, seeded):
    gw, rows = seeded
    rec = rows[0]
    detail = gw.get(f"/v1/incidents/{rec.id}", gw.read_key).json()
    assert detail["series"]["threshold_p"] is not None
    page = open_page(gw.url + incident_path(rec), credential=gw.read_key)
    expect(page.locator("h1")).to_have_text(f"{rec.service} · {rec.name}")
    expect(page.locator("p.lead")).to_have_text(rec.summary)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text(rec.stream_id)
    expect(facts).to_contain_text("still open")

    # the timeline: the incident shaded, the threshold, the change point, the anomalous buckets
    plot = page.locator("figure.plot-figure svg")
    expect(plot).to_be_visible()
    expect(plot.locator("rect.span")).to_have_count(1)
    expect(plot.locator("line.threshold")).to_have_count(1)
    expect(plot.locator("line.change")).to_have_count(1)
    anomalous = sum(1 for p in detail["series"]["points"] if p["anomalous"])
    assert anomalous > 0
    expect(plot.locator("circle.anomalous")).to_have_count(anomalous)
    expect(page.locator("#plot-desc")).to_contain_text(f"{anomalous} with anomalous windows")
    # the change point sits where the incident opened, left of the span's end
    change_x = float(plot.locator("line.change").get_attribute("x1"))
    span_x = float(plot.locator("rect.span").get_attribute("x"))
    assert change_x == pytest.approx(span_x, abs=1.0)

    # the field table: field, before, now, how unusual
    fields = page.locator("section[aria-labelledby=fields-title] tbody tr")
    expect(fields).to_have_count(len(seed.FIELDS))
    for row, f in zip(fields.all(), seed.FIELDS, strict=True):
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(f["field"])
        expect(cells.nth(1)).to_have_text(f["before"])
        expect(cells.nth(2)).to_have_text(f["now"])
        expect(cells.nth(3)).to_contain_text(f["unusual"])

    # the examples: real text with masked parts marked, trace ids, links to the trace viewer
    examples = page.locator("ul.evidence li")
    expect(examples).to_have_count(len(rec.evidence))
    for item, ev in zip(examples.all(), rec.evidence, strict=True):
        expect(item.locator("mark.mask")).to_have_count(3)  # <N3>, <IP>, <N1>
        expect(item.locator("mark.mask").first).to_have_attribute("title",
                                                                  "masked: an integer with 3 digit(s)")
        expect(item).to_contain_text(ev["trace_id"])
        link = item.get_by_role("link", name=re.compile("Open trace"))
        href = TRACE_TEMPLATE.format(trace_id=ev["trace_id"], span_id=ev["span_id"])
        expect(link).to_have_attribute("href", href)
        expect(link).to_have_attribute("rel", "noopener noreferrer")


def test_a_reader_sees_no_action_and_the_api_refuses_one(open_page, seeded):
    gw, rows = seeded
    rec = rows[50]
    assert rec.is_open
    page = open_page(gw.url + incident_path(rec), credential=gw.read_key)
    expect(page.locator("main")).to_contain_text("Your role (read) may look but not act on incidents.")
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator("#audit-title ~ table")).to_contain_text("No one has acted on this incident yet.")
    refused = gw.post(f"/v1/incidents/{rec.id}/resolve", gw.read_key)
    assert refused.status_code == 403
    assert gw.get(f"/v1/incidents/{rec.id}", gw.read_key).json()["status"] == "open"


def test_an_operator_acknowledges_then_resolves(open_page, seeded, operator_key: str):
    gw, rows = seeded
    rec = rows[100]
    assert rec.is_open
    page = open_page(gw.url + incident_path(rec), credential=operator_key)
    buttons = page.locator("button[data-action]")
    expect(buttons).to_have_text(["Acknowledge", "Resolve", "Accept as normal", "False positive"])

    # cancelling changes nothing
    page.get_by_role("button", name="Acknowledge").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.locator("#confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert gw.get(f"/v1/incidents/{rec.id}", operator_key).json()["acknowledged_at"] is None

    page.get_by_role("button", name="Acknowledge").click()
    page.fill("#confirm-note", "looking at the payment provider")
    page.locator("#confirm-ok").click()
    expect(page.locator(".notice-ok")).to_have_text("Incident acknowledged. The change is in the audit log.")
    expect(page.locator(".badges .badge.ack")).to_have_text("Acknowledged")
    expect(page.locator("dl.facts")).to_contain_text("key:")  # who acknowledged
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)  # done; the rest remain

    page.get_by_role("button", name="Resolve").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".notice-ok")).to_have_text("Incident resolved. The change is in the audit log.")
    expect(page.locator(".badges .badge.status-resolved")).to_have_text("Resolved")
    expect(page.locator("button[data-action]")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("This incident is resolved; no action applies.")
    stored = gw.get(f"/v1/incidents/{rec.id}", operator_key).json()
    assert stored["status"] == "resolved" and stored["acknowledged_by"].startswith("key:")

    # the incident's audit trail, on its page, for every role: the operator's own page, and a reader's
    trail = page.locator("#audit-title ~ table tbody tr")
    expect(trail).to_have_count(2)
    for viewer in (page, open_page(gw.url + incident_path(rec), credential=gw.read_key)):
        trail = viewer.locator("#audit-title ~ table tbody tr")
        expect(trail).to_have_count(2)
        expect(trail.nth(0)).to_contain_text("incident.resolve")
        expect(trail.nth(1)).to_contain_text("incident.acknowledge")
        expect(trail.nth(1)).to_contain_text("looking at the payment provider")
    assert gw.get("/v1/audit", operator_key).status_code == 403  # the whole log stays admin-only


def test_an_action_on_an_incident_closed_meanwhile_shows_the_409(open_page, ui_gateway: UiGateway,
                                                                    operator_key: str):
    rec = seed.incident(SEEDED + 2, status="open", opened_at=seed.BASE + dt.timedelta(minutes=1))
    ui_gateway.run(ui_gateway.gateway.gateway.store.upsert_incidents([rec]))
    page = open_page(ui_gateway.url + incident_path(rec), credential=operator_key)
    page.expect_console_error("status of 409")
    page.get_by_role("button", name="Accept as normal").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    # someone else closes it while this operator reads the confirmation
    assert ui_gateway.post(f"/v1/incidents/{rec.id}/false-positive", ui_gateway.admin_key).status_code == 200
    page.locator("#confirm-ok").click()
    error = page.locator(".notice-error")
    expect(error).to_contain_text("Accept as normal does not apply any more:")
    expect(error).to_contain_text(f"incident {rec.id} is false positive")
    expect(page.locator(".badges .badge.status-false_positive")).to_have_text("False positive")
    assert ui_gateway.get(f"/v1/incidents/{rec.id}", operator_key).json()["status"] == "false_positive"


def test_unknown_incident_says_so(open_page, seeded):
    gw, _ = seeded
    page = open_page(gw.url + "/incidents/inc_0000000000000000", credential=gw.read_key, wait_ready=False)
    page.expect_console_error("status of 404")
    wait_rendered(page)
    expect(page.locator("h1")).to_have_text("Incident not found")
    expect(page.get_by_role("link", name="All incidents")).to_have_attribute("href", "/")


FIRST_REQUESTS = """() => {
    const loaded = performance.getEntriesByType("navigation")[0].domContentLoadedEventStart;
    const rendered = performance.getEntriesByName("driftlock:rendered")[0].startTime;
    return performance.getEntriesByType("resource").filter((e) => e.startTime < rendered).map((e) => {
        const url = new URL(e.name);
        return [url.pathname + url.search, e.initiatorType, e.startTime < loaded];
    });
}"""


@pytest.mark.parametrize("which", ["list", "incident", "stream"])
def test_a_pages_first_requests_go_out_before_its_code_has_loaded_and_once(open_page, seeded, which: str):
    """js/early.js starts who is signed in and the page's first data (a stream's page: the stream, its
    incidents and its last hour of scores) while the modules still load (the cold-load waterfall), and
    the page takes those answers instead of asking again; the settings come in the shell. A stream whose
    last hour has no scores shows its latest incident's hour, in the answer to that same request."""
    gw, rows = seeded
    rec = rows[0]
    stream = "/".join(quote(part, safe="") for part in rec.stream_id.split("/"))
    path, first = {
        "list": ("/?status=open&severity=high", ["/v1/incidents?status=open&severity=high&limit=50"]),
        "incident": (incident_path(rec), [f"/v1/incidents/{rec.id}", f"/v1/incidents/{rec.id}/audit"]),
        "stream": (f"/streams/{stream}",
                   [f"/v1/streams/{stream}", "/v1/incidents?" + urlencode({"stream_id": rec.stream_id,
                                                                           "limit": 20})]),
    }[which]
    if which == "stream":
        gw.run(gw.gateway.gateway.store.upsert_stream(make_stream(rec.stream_id)))
    page = open_page(gw.url + path, credential=gw.read_key)
    requests = page.evaluate(FIRST_REQUESTS)
    api = [(url, before_dom) for url, kind, before_dom in requests if kind == "fetch"]
    for url in ["/v1/me", *first]:
        assert [before for u, before in api if u == url] == [True], (url, api)  # once, and early
    if which == "stream":  # and the last hour of its scores, ending when js/early.js ran
        scores = [u for u, _ in api if u.startswith(f"/v1/streams/{stream}/scores?")]
        recent = scores[0]
        assert [before for u, before in api if u == recent] == [True], (recent, api)
        asked = {name: dt.datetime.fromisoformat(values[0]) for name, values in
                 parse_qs(urlsplit(recent).query).items() if name != "fallback"}
        assert asked["until"] - asked["since"] == dt.timedelta(hours=1), recent
        # the seeded scores are all around rows[0], the stream's latest incident: the same answer has its
        # hour (fallback=latest_incident), no second request
        assert len(scores) == 1, scores
        assert parse_qs(urlsplit(recent).query)["fallback"] == ["latest_incident"], recent
        expect(page.locator("#score-range")).to_have_value("incident")
        expect(page.locator("svg circle.anomalous").first).to_be_visible()
    assert not [u for u, _ in api if u.startswith("/ui/settings.json")]
