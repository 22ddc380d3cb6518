"""The jobs board: launching from the catalog's form, runs reaching their end state in the
browser and in the API, logs, cancel, schedules."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect


def open_jobs(page: Page, cluster: Any) -> None:
    page.goto(f"{cluster.ui_url}#jobs")
    expect(page.locator("#launch-job option").first).to_be_attached()


def run_row(page: Page, job_id: int) -> Any:
    return page.locator(f'#jobs tr[data-key="{job_id}"]')


def show(page: Page, view: str) -> None:
    page.locator("#job-tabs").get_by_role("button", name=view).click()


def launched_id(page: Page) -> int:
    message = page.locator("#launch-message")
    expect(message).to_have_attribute("data-job-id", re.compile(r"^\d+$"))
    return int(message.get_attribute("data-job-id") or 0)


def test_the_launch_form_lists_the_catalog_with_its_docs(page: Page, cluster: Any) -> None:
    open_jobs(page, cluster)
    options = page.locator("#launch-job option")
    expect(options).to_have_text(["demo/fail", "demo/hello", "demo/sleep"])
    page.locator("#launch-job").select_option("demo/hello")
    expect(page.locator("#launch-doc")).to_contain_text("greets someone")
    expect(page.locator("#launch-doc")).to_contain_text("dashboard tests")


def test_a_job_launched_from_the_browser_reaches_ready(page: Page, cluster: Any) -> None:
    open_jobs(page, cluster)
    page.locator("#launch-job").select_option("demo/hello")
    page.locator("#launch-params").fill('{"name": "browser"}')
    page.locator("#launch-submit").click()
    job_id = launched_id(page)
    expect(page.locator("#launch-message")).to_contain_text(f"Job {job_id} launched")

    # In the browser: the board polls the master until the run is ready.
    expect(run_row(page, job_id).locator(".badge")).to_have_text("ready")
    expect(run_row(page, job_id)).to_contain_text("demo/hello")
    # In the API.
    job = cluster.api(f"/admin/jobs/{job_id}")
    assert job["status"] == "ready"
    assert job["params"] == {"name": "browser"}
    assert job["result"] == {"greeting": "hello, browser!", "letters": 7}

    run_row(page, job_id).get_by_role("button", name="Logs").click()
    dialog = page.locator("#job-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#job-dialog-title")).to_have_text(f"Job {job_id} · demo/hello")
    expect(dialog.locator("#job-result")).to_contain_text('"greeting": "hello, browser!"')
    expect(dialog.locator("#job-log")).to_contain_text("hello, browser!")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_a_failed_run_shows_its_error(page: Page, cluster: Any) -> None:
    job_id = cluster.launch("demo/fail", {})
    open_jobs(page, cluster)
    show(page, "Failed")
    expect(run_row(page, job_id).locator(".badge")).to_have_text("failed")
    run_row(page, job_id).get_by_role("button", name="Logs").click()
    expect(page.locator("#job-error")).to_contain_text("this job fails on purpose")


def test_cancel_a_running_job_from_the_board(page: Page, cluster: Any) -> None:
    job_id = cluster.launch("demo/sleep", {"seconds": 60})
    open_jobs(page, cluster)
    show(page, "Running")
    row = run_row(page, job_id)
    expect(row.locator(".badge")).to_have_text("running")
    row.get_by_role("button", name=f"Cancel job {job_id}").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel job").click()
    expect(row).to_have_count(0)
    show(page, "Cancelled")
    expect(run_row(page, job_id).locator(".badge")).to_have_text("cancelled")
    assert cluster.job_status(job_id) == "cancelled"


def test_a_schedule_made_in_the_form_shows_and_cancels(page: Page, cluster: Any) -> None:
    open_jobs(page, cluster)
    page.locator("#launch-job").select_option("demo/hello")
    page.get_by_label("Every", exact=True).check()
    page.locator("#launch-every-n").fill("2")
    page.locator("#launch-every-unit").select_option("hours")
    page.locator("#launch-submit").click()
    schedule_id = launched_id(page)
    expect(page.locator("#launch-message")).to_contain_text(f"Schedule {schedule_id} created")

    show(page, "Scheduled")
    row = page.locator(f'#jobs tr[data-key="s{schedule_id}"]')
    expect(row).to_contain_text("every 2 hours")
    row.get_by_role("button", name=f"Cancel schedule {schedule_id}").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel schedule").click()
    expect(row).to_have_count(0)
    schedules = {s["job_id"]: s for s in cluster.api("/admin/scheduled_jobs")}
    assert schedules[schedule_id]["status"] == "cancelled"


def test_parameters_that_are_not_a_json_object_are_refused_in_the_form(
    page: Page, cluster: Any
) -> None:
    open_jobs(page, cluster)
    before = _job_ids(cluster)
    for text, says in (("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        page.locator("#launch-params").fill(text)
        page.locator("#launch-submit").click()
        expect(page.locator("#launch-message")).to_contain_text(says)
    assert _job_ids(cluster) == before


def _job_ids(cluster: Any) -> set[int]:
    return {job["job_id"] for jobs in cluster.api("/admin/jobs").values() for job in jobs}
