"""The key browser: prefix search with paging, metadata, download, upload and delete, against
real processes; what the browser writes is read back with curl and httpx."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import FilePayload, Page, expect


def open_keys(page: Page, cluster: Any, prefix: str = "") -> None:
    page.goto(f"{cluster.ui_url}#keys")
    page.locator("#key-prefix").fill(prefix)
    page.locator("#key-prefix").press("Enter")


def file(name: str, mime_type: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": data}


def key_button(page: Page, key: str) -> Any:
    return page.locator("#keys").get_by_role("button", name=key, exact=True)


def test_a_key_put_with_the_cli_appears_in_the_browser_and_downloads(
    page: Page, cluster: Any, tmp_path: Path
) -> None:
    data = os.urandom(150_000) + b"\x00end"
    source = tmp_path / "report.bin"
    source.write_bytes(data)
    done = cluster.run_cli("put", "/cli/report.bin", str(source))
    assert done.returncode == 0, done.stderr

    open_keys(page, cluster, "/cli/")
    row = page.locator("#keys tr", has=page.get_by_role("button", name="/cli/report.bin"))
    expect(row).to_contain_text("146 KiB")
    key_button(page, "/cli/report.bin").click()
    expect(page.locator("#key-details-key")).to_have_text("/cli/report.bin")
    expect(page.locator("#key-facts")).to_contain_text(f"{len(data):,} bytes")
    expect(page.locator("#key-replicas li")).to_have_count(2)

    with page.expect_download() as download_info:
        page.locator("#key-download").click()
    download = download_info.value
    assert download.suggested_filename == "report.bin"
    assert Path(download.path()).read_bytes() == data


def test_the_listing_refreshes_while_open(page: Page, cluster: Any) -> None:
    open_keys(page, cluster, "/live/")
    expect(page.locator("#keys-empty")).to_be_visible()
    cluster.put("/live/arrived.txt", b"later")
    expect(key_button(page, "/live/arrived.txt")).to_be_visible()
    expect(page.locator("#keys-empty")).to_be_hidden()


def test_a_file_uploaded_from_the_browser_is_readable_with_curl_and_httpx(
    page: Page, cluster: Any
) -> None:
    data = os.urandom(300_000)
    open_keys(page, cluster, "/browser/")
    page.locator("#upload-file").set_input_files(files=[file("photo.png", "image/png", data)])
    expect(page.locator("#upload-key")).to_have_value("/browser/photo.png")
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-message")).to_contain_text("Stored /browser/photo.png")
    expect(key_button(page, "/browser/photo.png")).to_be_visible()

    answer = cluster.get("/browser/photo.png")
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["Content-Type"] == "image/png"
    assert shutil.which("curl"), "this test needs curl"
    curl = subprocess.run(
        ["curl", "-sS", "-f", "-L", f"{cluster.master_url}/get_key/browser/photo.png"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout == data


def test_keys_with_spaces_and_url_characters_round_trip(page: Page, cluster: Any) -> None:
    key = "/odd/h\u00e9 llo?#%+.txt"
    open_keys(page, cluster, "/odd/")
    page.locator("#upload-file").set_input_files(
        files=[file("x.txt", "text/plain", b"odd but fine")]
    )
    page.locator("#upload-key").fill(key)
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-message")).to_contain_text(f"Stored {key}")
    stat = cluster.api("/stat_key/odd/h%C3%A9%20llo%3F%23%25%2B.txt")
    assert stat["key"] == key

    key_button(page, key).click()
    expect(page.locator("#key-details-key")).to_have_text(key)
    with page.expect_download() as download_info:
        page.locator("#key-download").click()
    assert Path(download_info.value.path()).read_bytes() == b"odd but fine"


def test_an_upload_with_an_invalid_key_says_why(page: Page, cluster: Any) -> None:
    open_keys(page, cluster, "/bad/")
    page.locator("#upload-file").set_input_files(files=[file("x.txt", "text/plain", b"x")])
    page.locator("#upload-key").fill("/bad/../escape.txt")
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-message")).to_contain_text("Upload failed")
    expect(page.locator("#upload-message")).to_contain_text("'..'")
    expect(page.locator("#upload-message")).to_have_class("form-message bad")
    assert cluster.get("/escape.txt").status_code == 404
    page.locator("#upload-key").fill("/bad/a\u0001b")
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-message")).to_contain_text("control character")


def test_delete_from_the_browser(page: Page, cluster: Any) -> None:
    cluster.put("/trash/old.txt", b"bye")
    open_keys(page, cluster, "/trash/")
    key_button(page, "/trash/old.txt").click()
    page.locator("#key-delete").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("/trash/old.txt")
    dialog.get_by_role("button", name="Delete").click()
    expect(key_button(page, "/trash/old.txt")).to_have_count(0)
    expect(page.locator("#key-details-empty")).to_be_visible()
    assert cluster.get("/trash/old.txt").status_code == 404


def test_cancelling_the_delete_keeps_the_key(page: Page, cluster: Any) -> None:
    cluster.put("/trash/keep.txt", b"stay")
    open_keys(page, cluster, "/trash/keep")
    key_button(page, "/trash/keep.txt").click()
    page.locator("#key-delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert cluster.get("/trash/keep.txt").content == b"stay"


def test_pages_of_keys_follow_next(page: Page, cluster: Any) -> None:
    per_page = 50
    for n in range(per_page + 5):
        cluster.put(f"/paged/k{n:03d}", b"v")
    open_keys(page, cluster, "/paged/")
    page.locator("#key-limit").select_option(str(per_page))
    expect(page.locator("#keys tr")).to_have_count(per_page)
    expect(page.locator("#keys-page")).to_have_text(f"Keys 1\u2013{per_page}")
    page.locator("#keys-next").click()
    expect(page.locator("#keys tr")).to_have_count(5)
    expect(key_button(page, f"/paged/k{per_page + 4:03d}")).to_be_visible()
    expect(page.locator("#keys-next")).to_be_disabled()
    page.locator("#keys-prev").click()
    expect(key_button(page, "/paged/k000")).to_be_visible()
    expect(page.locator("#keys-prev")).to_be_disabled()


def test_an_invalid_prefix_is_said_in_the_list(page: Page, cluster: Any) -> None:
    open_keys(page, cluster, "/a/../b")
    expect(page.locator("#keys-empty")).to_contain_text("Invalid prefix")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
