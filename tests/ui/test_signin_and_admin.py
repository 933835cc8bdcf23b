"""Sign-in (API key or JWT, kept for the tab), clear messages when the gateway refuses, the gateway without
authentication on loopback, and the admin pages: API keys (secret shown once, copy, rotate, revoke) and the
audit log. A real gateway, real keys, Debian's Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from otlp_gateway.api import make_jwt

from .conftest import JWT_SECRET, PHONE, UiGateway, no_horizontal_scroll, shoot, wait_rendered

REFUSED_401 = "status of 401"


def test_sign_in_with_an_api_key_is_kept_for_this_tab_only(open_page, ui_gateway: UiGateway):
    page = open_page(ui_gateway.url + "/streams", wait_ready=False)
    # no credential: straight to the sign-in page, saying why, and back to /streams afterwards
    expect(page.locator("h1")).to_have_text("Sign in")
    assert "/signin?next=%2Fstreams" in page.url
    expect(page.locator("#banner")).to_contain_text("Sign in with an API key or a token")
    shoot(page, "signin-1920")

    page.expect_console_error(REFUSED_401)  # the refused attempt below is a real 401 response
    page.fill("#credential", "dlk_0123456789abcdef.not-the-right-secret-at-all")
    page.press("#credential", "Enter")
    expect(page.get_by_role("status").or_(page.get_by_role("alert")).filter(has_text="refused")).to_contain_text(
        "the API key is unknown, revoked or rotated, or its secret is wrong")
    expect(page.locator("#credential")).to_have_attribute("aria-invalid", "true")

    page.fill("#credential", ui_gateway.read_key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/streams$"))
    wait_rendered(page)
    expect(page.locator("#who")).to_have_text(re.compile(r"^key:[0-9a-f]{16} · read$"))
    expect(page.get_by_role("link", name="API keys")).to_be_hidden()  # not an admin: no admin pages offered
    page.reload()
    wait_rendered(page)
    expect(page.locator("#who")).to_contain_text("· read")  # kept across reloads of the tab

    other_tab = page.context.new_page()  # same browser profile, another tab: sessionStorage is per tab
    other_tab.goto(ui_gateway.url + "/streams")
    other_tab.wait_for_url(re.compile(r"/signin"))

    page.click("#signout")
    page.wait_for_url(re.compile(r"/signin$"))
    expect(page.locator("#banner")).to_contain_text("Signed out")
    assert page.evaluate("() => sessionStorage.length") == 0


def test_sign_in_with_a_jwt(open_page, ui_gateway: UiGateway):
    token = make_jwt(JWT_SECRET, "alice@example.com", "admin", ttl_seconds=600)
    page = open_page(ui_gateway.url + "/signin?next=/admin/keys", wait_ready=True)
    page.fill("#credential", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/keys$"))
    wait_rendered(page)
    expect(page.locator("#who")).to_have_text("jwt:alice@example.com · admin")
    expect(page.locator("h1")).to_have_text("API keys")


def test_an_offsite_next_is_ignored(open_page, ui_gateway: UiGateway):
    page = open_page(ui_gateway.url + "/signin?next=//evil.example/x")
    page.fill("#credential", ui_gateway.read_key)
    page.click("button[type=submit]")
    page.wait_for_url(ui_gateway.url + "/")


def test_a_key_revoked_while_signed_in_sends_the_tab_to_sign_in_with_why(open_page, ui_gateway: UiGateway):
    doomed = ui_gateway.new_key("read", "doomed")
    page = open_page(ui_gateway.url + "/streams", credential=doomed)
    expect(page.locator("#who")).to_contain_text("· read")
    key_id = doomed.split(".")[0].removeprefix("dlk_")
    revoked = ui_gateway.post(f"/v1/api-keys/{key_id}/revoke", ui_gateway.admin_key)
    assert revoked.status_code == 200, revoked.text
    page.expect_console_error(REFUSED_401)
    page.reload()
    page.wait_for_url(re.compile(r"/signin\?next=%2Fstreams"))
    expect(page.locator("#banner")).to_contain_text("The gateway refused the credentials")


def test_read_role_sees_why_admin_pages_are_closed(open_page, ui_gateway: UiGateway):
    page = open_page(ui_gateway.url + "/admin/audit", credential=ui_gateway.read_key)
    expect(page.locator("main")).to_contain_text("Reading the audit log needs an admin key or token")
    page.goto(ui_gateway.url + "/admin/keys")
    wait_rendered(page)
    expect(page.locator("main")).to_contain_text("Managing API keys needs an admin key or token")


def test_without_auth_on_loopback_every_page_works_unsigned(open_page, open_gateway: UiGateway):
    page = open_page(open_gateway.url + "/streams")
    expect(page.locator("#who")).to_have_text("No sign-in needed (auth off)")
    expect(page.get_by_role("link", name="API keys")).to_be_visible()
    page.goto(open_gateway.url + "/signin")
    wait_rendered(page)
    expect(page.locator("main")).to_contain_text("does not require credentials (api.auth_required: false)")
    page.goto(open_gateway.url + "/admin/keys")
    wait_rendered(page)
    expect(page.locator("h2", has_text="Create a key")).to_be_visible()


def test_api_keys_create_copy_rotate_revoke_and_the_audit_log(open_page, ui_gateway: UiGateway):
    page = open_page(ui_gateway.url + "/admin/keys", credential=ui_gateway.admin_key,
                     permissions=["clipboard-read", "clipboard-write"])
    # a name the API would refuse is caught next to the field, before any request
    page.fill("#key-name", "no <html> please")
    page.click("text=Create key")
    expect(page.locator("#key-name-error")).to_have_text(re.compile("Use letters, digits"))
    expect(page.locator("#key-name")).to_have_attribute("aria-invalid", "true")

    page.fill("#key-name", "grafana")
    page.select_option("#key-role", "read")
    page.click("text=Create key")
    secret = page.locator("#new-secret")
    expect(secret).to_have_value(re.compile(r"^dlk_[0-9a-f]{16}\..{20,}$"))
    created = secret.input_value()
    expect(page.locator("main")).to_contain_text("shown now and never again")
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == created
    assert ui_gateway.get("/v1/me", created).json()["role"] == "read"
    shoot(page, "keys-created-1920")

    page.reload()
    wait_rendered(page)
    expect(page.locator("#new-secret")).to_have_count(0)  # shown once: gone after a reload
    row = page.locator("tr", has_text="grafana")
    expect(row).to_contain_text("active")

    row.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("the current secret stops working at once")
    dialog.get_by_role("button", name="Rotate key").click()
    rotated = page.locator("#new-secret")
    expect(rotated).to_have_value(re.compile(r"^dlk_"))
    new_secret = rotated.input_value()
    assert new_secret != created and new_secret.split(".")[0] == created.split(".")[0]
    assert ui_gateway.get("/v1/me", created).status_code == 401
    assert ui_gateway.get("/v1/me", new_secret).status_code == 200

    page.locator("tr", has_text="grafana").get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    expect(page.locator("main")).to_contain_text("Key “grafana” revoked.")
    expect(page.locator("tr", has_text="grafana")).to_contain_text("revoked")
    assert ui_gateway.get("/v1/me", new_secret).status_code == 401

    key_id = created.split(".")[0].removeprefix("dlk_")
    page.goto(ui_gateway.url + f"/admin/audit?target=api_key:{key_id}")
    wait_rendered(page)
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    actions = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(3)]
    assert actions == ["api_key.revoke", "api_key.rotate", "api_key.create"]  # newest first
    admin_id = ui_gateway.admin_key.split(".")[0].removeprefix("dlk_")
    expect(rows.first).to_contain_text(f"key:{admin_id}")
    expect(rows.first).to_contain_text("revoked_at: null →")
    shoot(page, "audit-1920")


def test_key_pages_at_phone_width(open_page, ui_gateway: UiGateway):
    page = open_page(ui_gateway.url + "/admin/keys", width=PHONE, credential=ui_gateway.admin_key)
    page.fill("#key-name", "phone")
    page.click("text=Create key")
    expect(page.locator("#new-secret")).to_be_visible()
    # every control of the first key's card fits the 390 px screen
    box = page.locator("tr", has_text="phone").get_by_role("button", name="Revoke").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE
    assert no_horizontal_scroll(page)
    shoot(page, "keys-390")
