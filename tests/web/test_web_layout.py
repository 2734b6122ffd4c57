"""Every dashboard page at desktop widths (1280-1440 px), at phone width (390 px) and in dark
mode: nothing overflows its container sideways, no button is clipped, and the bar charts'
value axis starts at zero. Screenshots of each page, width and theme go to test-artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import (
    ADMIN,
    CROWD,
    USER,
    anthropic_as,
    chat,
    context_as,
    dashboard_config,
    screenshot,
    wait_recorded,
)
from playwright.sync_api import Browser, Page

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer
from irisgate.web.nav import PAGES

# one of the suite's longest modules (~111 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

#: Each element that is cut off: a button or link-button whose box sticks out of an ancestor
#: that clips or scrolls (or out of the viewport), any element whose own content is wider
#: than its box without scrolling, and the page itself scrolling sideways.
CLIPPED = """(phone) => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  const cls = (el) => typeof el.className === "string" && el.className
    ? "." + el.className.split(" ").join(".") : "";
  const name = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${cls(el)}` +
    ` "${(el.textContent || "").trim().slice(0, 30)}"`;
  if (document.documentElement.scrollWidth > vw + 1) {
    const wide = [...document.querySelectorAll("body *")].filter((e) =>
      e.getBoundingClientRect().right > vw + 1 && !e.parentElement.closest(".table-wrap"));
    out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${vw} ` +
      `(${wide.slice(-3).map(name).join(", ")})`);
  }
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden" &&
      !el.closest("dialog:not([open]), [hidden], .tip-body, .sr-only, .visually-hidden, .skip");
  };
  for (const el of document.querySelectorAll("button, .button, input, select, textarea")) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    const scroller = el.closest(".table-wrap");
    if (phone && scroller) continue;
    if (r.left < -1 || r.right > vw + 1) { out.push(`${name(el)} outside the viewport`); continue; }
    if (el.tagName === "BUTTON" && el.scrollWidth > el.clientWidth + 1)
      out.push(`${name(el)} text wider than the button`);
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox === "visible") continue;
      const pr = p.getBoundingClientRect();
      if (r.left < pr.left - 1 || r.right > pr.right + 1) {
        out.push(`${name(el)} clipped by ${name(p)}`);
        break;
      }
    }
  }
  for (const el of document.querySelectorAll("main *")) {
    if (!shown(el) || el.classList.contains("chart")) continue;
    const s = getComputedStyle(el);
    if (s.overflowX === "hidden" && s.textOverflow !== "ellipsis" &&
        el.scrollWidth > el.clientWidth + 1)
      out.push(`${name(el)} hides ${el.scrollWidth - el.clientWidth}px of its content`);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """The dashboard tests' gateway plus per-user and team quotas, so that every table (the
    Quotas page's buckets with their buttons too) has rows with long names in it."""
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["quotas"] = {
        "daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day"},
        "team-anthropic-research-and-development": {"capacity": "$50.00", "rate": "$50.00/month"},
    }
    config["grants"][1]["app"]["tailscale.com/cap/aperture"].append(
        {
            "models": "**",
            "quotas": [
                {"bucket": "daily:<user>"},
                {"bucket": "team-anthropic-research-and-development"},
            ],
        }
    )
    server = IrisgateServer(
        "// layout tests\n" + json.dumps(config, indent=2),
        data_dir=tmp_path_factory.mktemp("irisgate-layout"),
        identity="serve",
    )
    with server:
        chat(server, ADMIN, text="admin question")
        for login in CROWD[:4]:
            chat(server, login, text=f"question from {login}")
        anthropic_as(server, USER).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        wait_recorded(server, chat(server, USER, "gpt-5-mini", "bob again"))
        yield server


def _pages() -> list[str]:
    return [p.path for p in PAGES.values()]


def _check(page: Page, url: str, phone: bool) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    problems: list[str] = page.evaluate(CLIPPED, phone)
    return problems


#: phone width in both themes; the desktop range at the width where a table once clipped its
#: buttons and at its upper end, one theme each (every page takes ~15 s per case)
CASES = [(390, "light"), (390, "dark"), (1300, "light"), (1440, "dark")]


@pytest.mark.parametrize(("width", "theme"), CASES)
def test_no_page_clips_or_overflows(
    gateway: IrisgateServer, browser: Browser, width: int, theme: str
) -> None:
    context = context_as(
        browser, ADMIN, viewport={"width": width, "height": 900}, color_scheme=theme
    )
    page = context.new_page()
    found: dict[str, list[str]] = {}
    try:
        for path in _pages():
            problems = _check(page, gateway.url + path, width < 760)
            assert page.evaluate("document.documentElement.dataset.theme") == theme
            screenshot(page, f"layout-{theme}-{width}-{path.strip('/').replace('/', '-')}")
            if problems:
                found[path] = problems
    finally:
        context.close()
    assert found == {}, json.dumps(found, indent=1)


def test_bar_and_line_charts_start_at_zero(gateway: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        for path in (
            "/ui/dashboard",
            "/ui/usage",
            "/ui/admin/model-activity",
            "/ui/admin/agent-activity",
            "/ui/admin/user-activity",
        ):
            page.goto(gateway.url + path)
            page.wait_for_load_state("networkidle")
            charts = page.locator(".chart canvas")
            assert charts.count() >= 1, path
            mins = page.eval_on_selector_all(
                ".chart", "cs => cs.filter(c => c.__chart).map(c => c.__chart.scales.y.min)"
            )
            assert mins and all(m == 0 for m in mins), (path, mins)
    finally:
        context.close()
