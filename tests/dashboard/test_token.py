"""A cluster that needs a token: the dashboard asks for it, keeps it in the browser, and sends
it with every call, to the master and to the volumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import FilePayload, Page, expect


def test_the_dashboard_asks_for_the_token_and_then_works(page: Page, guarded_cluster: Any) -> None:
    guarded_cluster.put("/guarded/secret.txt", b"for token holders")
    page.goto(guarded_cluster.ui_url)
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "auth")
    dialog.get_by_label("Token").fill(guarded_cluster.admin_token)
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#nodes tr")).to_have_count(2)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # Reads follow the 307 with the master's read ticket; uploads carry the token to the volume.
    page.goto(f"{guarded_cluster.ui_url}#keys?prefix=/guarded/")
    page.get_by_role("button", name="/guarded/secret.txt").click()
    with page.expect_download() as download:
        page.locator("#key-download").click()
    assert Path(download.value.path()).read_bytes() == b"for token holders"
    page.locator("#upload-file").set_input_files(
        files=[FilePayload(name="up.txt", mimeType="text/plain", buffer=b"uploaded with a token")]
    )
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-message")).to_contain_text("Stored /guarded/up.txt")
    assert guarded_cluster.get("/guarded/up.txt").content == b"uploaded with a token"

    # Launching runs code: it needs the admin token, which this browser holds.
    page.goto(f"{guarded_cluster.ui_url}#jobs")
    page.locator("#launch-job").select_option("demo/hello")
    page.locator("#launch-submit").click()
    expect(page.locator("#launch-message")).to_contain_text("launched")


def test_a_wrong_token_is_reported_not_retried_silently(page: Page, guarded_cluster: Any) -> None:
    page.goto(guarded_cluster.ui_url)
    dialog = page.locator("#token-dialog")
    dialog.get_by_label("Token").fill("wrong")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "auth")
    expect(page.locator("#connection")).to_contain_text("Token needed")
