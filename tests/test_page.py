"""The web page at /, in a real Chromium (Debian's) through Playwright, against a real
server with the packaged models: key prompt, upload with progress, a streamed answer,
citations and sources that open their passage, the guard's flags and blocks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from feldspar.config import Settings
from tests.serving import running

pytestmark = pytest.mark.integration

KEY = "test-page-key"
COLLECTION = "leave-policy"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MODEL_MS = 300_000
"""The packaged SmolLM2 on two cores takes tens of seconds to answer."""

POLICY = (
    "Leave policy of Acme Ltd.\n\n"
    "Staff get 25 days of annual leave each calendar year, plus public holidays. Up to five "
    "unused days may be carried over into the next year.\n\n"
    "Sick leave is paid in full for the first ten working days in a year. A doctor's note "
    "is needed after three consecutive days of absence.\n\n"
    "Parents get 16 weeks of paid parental leave. Leave requests go to your line manager at "
    "least two weeks in advance.\n")

RECORD = """() => {
  window.__log = [];
  const box = document.getElementById('answer');
  new MutationObserver((records) => {
    for (const r of records) {
      const target = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (target && target.closest('.draft') && r.addedNodes.length) {
        window.__log.push({kind: 'delta', text: target.textContent});
      }
      for (const node of r.addedNodes) {
        if (node.nodeType === 1 && node.classList.contains('answer-text')) {
          window.__log.push({kind: 'final', text: node.textContent});
        }
      }
    }
  }).observe(box, {childList: true, subtree: true, characterData: true});
}"""

WATCH_UPLOAD = """() => {
  window.__upload = [];
  const box = document.getElementById('upload-status');
  new MutationObserver(() => window.__upload.push(box.textContent))
    .observe(box, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Secrets in a question are blocked (they are only flagged by default), so that the
    # page's guard block can be seen without a model's answer.
    settings = Settings(home=tmp_path_factory.mktemp("page-home"), api_keys=KEY,
                        guard_policy={"input": {"secrets": {"action": "block"}}})
    with running(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI_REQUIRE_BROWSER"):  # CI installs it: never skip there
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def enter_key(page: Page, key: str) -> None:
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(key)
    dialog.get_by_role("button", name="Save key").click()


def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_wrong_key_asks_for_the_key_again(server: str, page: Page) -> None:
    page.goto(server)
    expect(page.locator("#health")).to_have_attribute("data-state", "ok")
    enter_key(page, "not-the-key")
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-error")).to_contain_text("did not accept")
    enter_key(page, KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#collections")).to_contain_text("No collections yet")
    page.reload()  # the key is remembered
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator("#collections")).to_contain_text("No collections yet")


def test_upload_ask_stream_and_read_the_passages(server: str, page: Page,
                                                 tmp_path: Path) -> None:
    document = tmp_path / "leave-policy.txt"
    document.write_text(POLICY, encoding="utf-8")
    page.goto(server)
    enter_key(page, KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()

    # Upload into a new collection, with progress, then the report.
    page.evaluate(WATCH_UPLOAD)
    page.locator("#upload-collection").fill(COLLECTION)
    page.locator("#upload-files").set_input_files(document)
    page.get_by_role("button", name="Upload").click()
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Added 1", timeout=MODEL_MS)
    expect(status).to_contain_text(f"“{COLLECTION}”")
    seen = page.evaluate("window.__upload")
    assert any("Uploading" in s or "Indexing" in s for s in seen), seen
    table = page.locator("#collections table")
    expect(table.get_by_role("row", name=COLLECTION)).to_be_visible()
    page.get_by_role("button", name=f"Documents of {COLLECTION}").click()
    expect(page.locator("#documents")).to_contain_text("leave-policy.txt")

    # Ask, and watch the answer arrive as it is written.
    page.locator("#ask-collection").select_option(COLLECTION)
    page.evaluate(RECORD)
    page.get_by_label("Question").fill("How many days of annual leave do staff get?")
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#answer")
    expect(answer).to_have_attribute("data-state", "done", timeout=MODEL_MS)
    log = page.evaluate("window.__log")
    kinds = [entry["kind"] for entry in log]
    assert "delta" in kinds, log
    assert "final" in kinds, log
    assert kinds.index("delta") < kinds.index("final"), log
    assert any(entry["text"].strip() for entry in log if entry["kind"] == "delta"), log
    expect(page.locator("#draft")).to_have_count(0)  # the draft is replaced by the answer
    expect(answer.locator(".answer-text")).not_to_be_empty()
    expect(answer.get_by_role("list", name="The guard's checks")).to_contain_text("Question")

    # The sources are listed, and each opens its passage.
    sources = answer.locator("button.source")
    expect(sources.first).to_be_visible()
    passage = page.locator("#passage-body")
    sources.first.click()
    expect(passage).to_contain_text("Staff get 25 days of annual leave each calendar year")
    expect(passage).to_contain_text("leave-policy.txt")
    expect(passage).to_contain_text("lines 1–")

    citations = answer.locator("button.cite")
    if citations.count():
        citations.first.click()
        expect(citations.first).to_have_attribute("aria-pressed", "true")
        expect(passage.locator("mark")).to_be_visible()
        quote = passage.locator("mark").text_content() or ""
        assert quote.strip(), "the cited quote is empty"
        assert quote in POLICY, quote
        expect(passage).to_contain_text("Supports sentence")
    else:
        expect(answer.locator(".notice.abstained")).to_contain_text("Abstained:")

    shot = artifacts(tmp_path) / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
    print(f"answer: {answer.locator('.answer-text').text_content()!r}")


def open_on_collection(server: str, page: Page, name: str) -> None:
    """A collection of POLICY (uploaded through the API), and the page open on it."""
    uploaded = httpx.post(f"{server}/api/collections/{name}/documents",
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=MODEL_MS / 1000,
                          files=[("files", ("policy.txt", POLICY.encode(), "text/plain"))])
    assert uploaded.status_code == 200, uploaded.text
    page.goto(server)
    enter_key(page, KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()
    page.locator("#ask-collection").select_option(name)


def test_a_blocked_question_shows_the_guards_block(server: str, page: Page) -> None:
    open_on_collection(server, page, "guarded")
    page.get_by_label("Question").fill(
        "Is AKIAIOSFODNN7EXAMPLE with secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ours?")
    page.get_by_role("button", name="Ask", exact=True).click()
    notice = page.locator("#answer .notice.blocked")
    expect(notice).to_contain_text("Blocked by the guard")
    expect(notice).to_contain_text("secrets")
    expect(page.locator("#answer")).to_have_attribute("data-state", "blocked")


def test_stop_ends_an_answer_being_written(server: str, page: Page) -> None:
    open_on_collection(server, page, "halted")
    page.get_by_label("Question").fill("Who approves leave requests?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#answer")).to_have_attribute("aria-busy", "true")
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#answer")).to_contain_text("Stopped.")
    expect(page.get_by_role("button", name="Ask", exact=True)).to_be_enabled()
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
