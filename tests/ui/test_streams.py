"""The streams list and a stream's page against a gateway fed by the OpenTelemetry SDK: live state, the
profile and settings editable by admins with the errors next to the field (the browser's and the API's),
read-only for a reader, every change in the audit log."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.sync_api import expect

from .conftest import (
    LOG_STREAM,
    SERVICE,
    SPAN_STREAM,
    UiGateway,
    shoot,
    stream_url,
    wait_rendered,
)


def test_streams_list_links_every_stream(open_page, fed_gateway: UiGateway):
    page = open_page(fed_gateway.url + "/streams", credential=fed_gateway.read_key)
    expect(page.get_by_role("link", name=SPAN_STREAM)).to_be_visible()
    page.get_by_role("link", name=LOG_STREAM).click()
    page.wait_for_url(re.compile(r"/streams/logs/checkout/"))
    wait_rendered(page)
    expect(page.locator("h1")).to_have_text(f"sdk.{SERVICE}.grpc")
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text(LOG_STREAM)
    expect(facts).to_contain_text("warming")
    warmup = fed_gateway.get("/v1/streams/" + quote(LOG_STREAM), fed_gateway.read_key).json()["warmup"]
    assert 0 < warmup["events"] < warmup["needed"]
    expect(page.locator("#warmup-text")).to_have_text(f"{warmup['events']:,}/{warmup['needed']:,} events")
    expect(page.locator("#warmup-progress")).to_have_attribute("max", str(warmup["needed"]))
    expect(facts).to_contain_text("Open incident")
    incidents = page.locator("section[aria-labelledby=incidents-title]")
    expect(incidents).to_contain_text("No incidents on this stream.")
    expect(facts).to_contain_text("balanced: baseline 400, window 50, hop 10")
    # a reader sees the settings but no form to change them
    expect(page.locator("#settings-title")).to_have_text("Profile and settings")
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("Changing them needs an admin key or token.")


def test_admin_edits_settings_with_errors_next_to_the_field(open_page, fed_gateway: UiGateway):
    page = open_page(stream_url(fed_gateway, SPAN_STREAM), credential=fed_gateway.admin_key)
    save = page.get_by_role("button", name="Save settings")

    # the browser's own check: out of bounds, said next to the field, nothing sent
    page.fill("#st-window", "0")
    save.click()
    expect(page.locator("#st-window-error")).to_have_text("Must be a whole number from 1 to 1,000,000.")
    expect(page.locator("#st-window")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#st-window")).to_be_focused()

    # valid alone, impossible with the stream's other settings: the API's 409, placed next to the field
    page.expect_console_error("status of 409")
    page.fill("#st-window", "")
    page.fill("#st-hop", "60")
    save.click()
    expect(page.locator("#st-hop-error")).to_contain_text("hop <= window")
    expect(page.locator("#st-window-error")).to_be_hidden()

    page.fill("#st-hop", "")
    page.select_option("#st-profile", "strict")
    page.fill("#st-false_alarm_target", "0.0005")
    save.click()
    expect(page.locator("main")).to_contain_text("Settings saved. The change is in the audit log.")
    profile = "strict: baseline 800, window 100, hop 20, false-alarm target 5.0e-4"
    expect(page.locator("dl.facts").first).to_contain_text(profile)
    stored = fed_gateway.get("/v1/streams/" + quote(SPAN_STREAM), fed_gateway.admin_key).json()
    assert stored["settings"] == {"profile": "strict", "false_alarm_target": 0.0005}
    page.reload()  # what the gateway says now, not what the page remembered
    wait_rendered(page)
    expect(page.locator("dl.facts").first).to_contain_text(profile)
    expect(page.locator("#st-profile")).to_have_value("strict")
    shoot(page, "stream-1920")

    page.goto(fed_gateway.url + f"/admin/audit?target=stream:{SPAN_STREAM}")
    wait_rendered(page)
    entry = page.locator("tbody tr").first
    expect(entry).to_contain_text("stream.update")
    expect(entry).to_contain_text('profile: "balanced" → "strict"')
