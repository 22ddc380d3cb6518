"""The overview page: the live volumes, their state and use, refreshed while it is open."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect


def test_overview_lists_the_live_volumes(page: Page, cluster: Any) -> None:
    page.goto(cluster.ui_url)
    rows = page.locator("#nodes tr")
    expect(rows).to_have_count(2)
    for node in cluster.api("/admin/network"):
        row = rows.filter(has_text=node["node"])
        expect(row).to_have_count(1)
        expect(row.locator(".badge").first).to_have_text("alive")
        expect(row).to_contain_text(node["url"])
        expect(row.get_by_role("progressbar")).to_have_count(1)
    expect(page.locator("#stat-volumes")).to_have_text("2 / 2")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#health-banner")).to_be_hidden()
    expect(page.locator("#repair .badge")).to_have_text("healthy")


def test_overview_refreshes_while_open(page: Page, cluster: Any) -> None:
    page.goto(cluster.ui_url + "#overview")
    count = page.locator("#stat-keys")
    expect(count).not_to_have_text("\u2013")
    before = int(count.inner_text().replace(",", ""))
    cluster.put("/overview/new-key.txt", b"counted")
    page.wait_for_function(
        "before => Number(document.querySelector('#stat-keys').textContent.replace(/,/g, ''))"
        " > before",
        arg=before,
    )
