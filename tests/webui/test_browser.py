"""The web UI in headless Chromium against a real embedded stack: the overview of a running
experiment fills in live, the concurrency is raised and a trial killed through the page."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesweep.cli.client import ApiClient
from kubesweep.cli.embedded import EmbeddedStack
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

ACTIVE = {"WAITING", "RUNNING"}
CHROMIUM = os.environ.get("KUBESWEEP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "webui-overview.png"

TRIAL = """\
import math, time, nni
p = nni.get_next_parameter()
score = 0.0
for step in range(1, 6):
    time.sleep({sleep})
    score = (1 - math.exp(-step * p["lr"] * 40)) * (0.75 + 0.2 * p["dropout"]) \\
        + (0.04 if p["optimizer"] == "adam" else 0.0) - abs(p["batch"] - 64) / 2000
    nni.report_intermediate_result(round(score, 4))
nni.report_final_result(round(score, 4))
"""
SPACE = """{
  "lr": {"_type": "loguniform", "_value": [0.001, 0.1]},
  "dropout": {"_type": "uniform", "_value": [0.0, 0.5]},
  "batch": {"_type": "choice", "_value": [16, 32, 64, 128]},
  "optimizer": {"_type": "choice", "_value": ["sgd", "adam"]}
}"""


def write_experiment(folder: Path, *, trials: int, sleep: float) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "train.py").write_text(TRIAL.format(sleep=sleep))
    (folder / "search_space.json").write_text(SPACE)
    config = folder / "config.yml"
    config.write_text(
        "experimentName: mnist-webui\nsearchSpaceFile: search_space.json\n"
        "trialCommand: python3 train.py\ntrialCodeDirectory: code\n"
        f"trialConcurrency: 1\nmaxTrialNumber: {trials}\nmaxExperimentDuration: 30m\n"
        "tuner:\n  name: Random\n  classArgs:\n    optimize_mode: maximize\n"
        "trainingService:\n  platform: local\n"
    )
    return config


def until(probe: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium, or set KUBESWEEP_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_overview_live_update_concurrency_and_kill(
    stack: EmbeddedStack, browser: Any, tmp_path: Path
) -> None:
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(write_experiment(tmp_path / "exp", trials=12, sleep=0.5))
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept())
    console_errors: list[str] = []
    late_kills: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    # The page runs under its Content-Security-Policy: no inline or eval'd code, so the
    # waits below use locators, never page-side JavaScript strings.
    page.on(
        "console",
        lambda msg: (
            console_errors.append(msg.text)
            if msg.type == "error" and "401" not in msg.text
            else None
        ),
    )

    page.on(
        "response",
        lambda r: console_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.goto(f"{stack.api_url}/oview?id={exp_id}#token={stack.api_token}")
    expect(page.locator("#exp-id")).to_have_text(exp_id)
    assert stack.api_token not in page.url, "the token stays out of the address bar"
    expect(page.locator("#live.on")).to_be_visible()
    assert page.inner_text("#exp-name") == "mnist-webui"

    # Trials appear without a reload, pushed by the event stream.
    rows = "#trial-table tbody tr"
    expect(page.locator(rows).first).to_be_attached()
    first_count = page.locator(rows).count()
    expect(page.locator(rows).nth(first_count)).to_be_attached(timeout=60_000)

    # Raise the concurrency through the overview; the API holds the new value and the
    # tuner runs more trials at once.
    page.fill("#edit-concurrency", "3")
    page.click("form[data-field=trial_concurrency] button")
    expect(page.locator("form[data-field=trial_concurrency] .field-ok")).to_have_text("saved")
    assert client.experiment(exp_id)["trial_concurrency"] == 3
    running_rows = page.locator("#trial-table tr[data-status=RUNNING]")
    expect(running_rows.nth(1)).to_be_attached(timeout=60_000)

    # Kill a running trial with its button: the newest running one (top row), which has
    # the most time left. Should it end before the click lands (a 409), take the next.
    for _attempt in range(3):
        running = page.locator("#trial-table tr[data-status=RUNNING]").first
        victim = running.get_attribute("data-trial-id")
        assert victim
        running.locator("button.kill").click()
        ended = until(
            lambda victim=victim: _trial_status(client, exp_id, victim) not in ACTIVE,
            "the killed trial to end",
        )
        if _trial_status(client, exp_id, victim) == "USER_CANCELED":
            break
        late_kills.append(victim)
        expect(running_rows.first).to_be_attached(timeout=60_000)
    assert ended
    assert _trial_status(client, exp_id, victim) == "USER_CANCELED"
    expect(page.locator(f"#trial-table tr[data-trial-id='{victim}']")).to_have_attribute(
        "data-status", "USER_CANCELED"
    )

    # Enough results for every chart, then a trial's log through its link.
    expect(page.locator("#chart-metric circle").nth(4)).to_be_attached(timeout=90_000)
    assert page.locator("#chart-best path.step").count() == 1
    assert page.locator("#chart-intermediate path.series").count() >= 5
    assert page.locator("#chart-params path.pc-line").count() >= 5
    assert page.locator("#chart-params .pc-axis").count() == 5  # four parameters + metric
    best = client.experiment(exp_id)["best"]
    expect(page.locator("#exp-best")).to_contain_text(best["trial_id"])
    done = page.locator("#trial-table tr[data-status=SUCCEEDED]").first
    done.locator("a.log-trial-log").click()
    expect(page.locator("#log-text")).to_contain_text("exit code 0")
    page.click("#log-close")

    # Search and filter narrow the table.
    page.select_option("#status-filter", "USER_CANCELED")
    expect(page.locator(rows)).to_have_count(1)
    page.select_option("#status-filter", "")
    page.fill("#trial-search", victim)
    expect(page.locator(rows)).to_have_count(1)
    page.fill("#trial-search", "")

    shot = tmp_path / "webui-overview.png"
    page.wait_for_timeout(300)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("KUBESWEEP_SAVE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    # A kill that lost the race is a 409 on a cancel (and the console's report of it).
    lost_race = [e for e in console_errors if late_kills and "409" in e]
    assert all("/cancel" in e or "CONFLICT" in e for e in lost_race)
    assert [e for e in console_errors if e not in lost_race] == []
    client.stop(exp_id)


def _trial_status(client: ApiClient, exp_id: str, trial_id: str) -> str:
    return str(next(t["status"] for t in client.trials(exp_id) if t["id"] == trial_id))


def test_sign_in_dialog_keeps_the_token_in_the_tab(stack: EmbeddedStack, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{stack.api_url}/")
    dialog = page.locator("dialog#login")
    expect(dialog).to_be_visible()
    expect(page.locator("#live")).to_have_text("offline")
    page.fill("#token-input", "not-the-token")
    page.click("#login-form button")
    expect(dialog).to_be_visible()  # refused again
    page.fill("#token-input", stack.api_token)
    page.click("#login-form button")
    expect(dialog).to_be_hidden()
    expect(page.locator("#experiment-picker")).to_be_attached()
    expect(page.locator("#banner.error")).to_have_count(0)
    page.click("#forget-token")
    expect(dialog).to_be_visible()


def test_unknown_experiment_id_is_named(stack: EmbeddedStack, browser: Any, tmp_path: Path) -> None:
    client = ApiClient(stack.api_url, stack.api_token)
    exp_id = client.submit(write_experiment(tmp_path / "exp", trials=1, sleep=0))
    page = browser.new_page()
    page.goto(f"{stack.api_url}/detail?id=nosuchexp#token={stack.api_token}")
    expect(page.locator("#banner")).to_contain_text("There is no experiment nosuchexp")
    expect(page.locator("#exp-id")).to_have_text(exp_id)
    assert page.locator("#experiment-picker option").count() >= 1
    wait_for(client, exp_id, {"DONE"}, timeout=60)
