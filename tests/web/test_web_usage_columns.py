"""The Usage Overview's token column selector in Chromium, with data made through the
gateway by the official SDKs (the dashboard tests' gateway): columns hide and show, and the
choice is kept across visits in this browser."""

from __future__ import annotations

from conftest import screenshot
from playwright.sync_api import Page, expect

from irisgate.testing.server import IrisgateServer


def test_token_columns_hide_show_and_stay_chosen(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/usage")
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(10)
    writes = page.locator('#users-table [data-col="cache_write_tokens"]')
    reasoning = page.locator('#users-table [data-col="reasoning_tokens"]')
    expect(writes.first).to_be_hidden()
    expect(reasoning.first).to_be_visible()
    page.check('#token-columns [data-col="cache_write_tokens"]')
    page.uncheck('#token-columns [data-col="reasoning_tokens"]')
    expect(page.locator('#users-table [data-col="cache_write_tokens"]:visible')).to_have_count(11)
    expect(page.locator('#users-table [data-col="reasoning_tokens"]:visible')).to_have_count(0)
    # the next page of the table is drawn with the same columns
    page.click("#users-pager [data-page=next]")
    expect(page.locator("#page-info")).to_contain_text("Page 2")
    expect(page.locator('#users-table [data-col="reasoning_tokens"]:visible')).to_have_count(0)
    screenshot(page, "usage-columns")
    page.reload()
    expect(rows).to_have_count(10)
    expect(page.locator('#token-columns [data-col="cache_write_tokens"]')).to_be_checked()
    expect(page.locator('#users-table [data-col="reasoning_tokens"]:visible')).to_have_count(0)
    expect(page.locator('#users-table [data-col="input_tokens"]:visible')).to_have_count(11)
