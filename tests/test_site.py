"""`genies site`: the static site's files and pages, and the site in headless Chromium (Selenium +
Debian's chromium-driver): the shift table in the DOM, following a link, searching, escaping, screenshots."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from builders.catalog import load_catalog
from builders.cli import app
from builders.errors import GeniesError
from builders.evaluation.synthetic import synthetic_version
from builders.export import DistributionExport, Version, export_version
from builders.schema import Provenance, Record, records_to_table, table_to_records
from builders.site import CHUNK_ROWS, build_site, distribution_href, shift_href
from tests.conftest import REPO

ARTIFACTS = Path(os.environ.get("GENIES_TEST_ARTIFACTS", REPO / "test-artifacts")) / "site"
BUILT = ["alpaca_easy", "alpaca_hard", "code_easy", "code_hard"]
HOSTILE = "<script>window.pwned = true</script><img src=x onerror=\"window.pwned = true\">"
runner = CliRunner()


def _catalog_shifts(names: list[str]) -> pa.Table:
    catalog = load_catalog()
    return catalog.shifts_table().filter(pa.array([s.source in names and s.target in names for s in catalog.shifts]))


def _record(dist: str, i: int, prompt: str, responses: list[str], preferred: int) -> Record:
    return Record(distribution=dist, prompt=prompt, responses=responses, preferred=preferred, template="test@0",
                  group=f"test:{dist}:{i}", meta={"i": i}, provenance=Provenance(source="test", row_key=str(i)))


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Version:
    """A synthetic version of two built shifts, with one distribution whose texts carry markup and a word
    (`zebracorn`) in exactly three train examples."""
    root = tmp_path_factory.mktemp("artifacts")
    base = Version.open(synthetic_version(root / "base", _catalog_shifts(BUILT), BUILT, train=120, test=60, seed=2))
    hostile = [
        _record("alpaca_easy", 1000 + i, f"{HOSTILE} question {i}" + (" zebracorn" if i in (3, 17, 61) else ""),
                [f"answer {i} a", f"answer {i} b " + "long " * (300 if i == 5 else 1)], i % 2)
        for i in range(80)
    ]
    exports = []
    for name in BUILT:
        splits = {s: base.table(name, s) for s in ("train", "test")}
        if name == "alpaca_easy":
            splits["train"] = records_to_table(table_to_records(splits["train"]) + hostile)
        exports.append(DistributionExport(name, splits))
    return Version.open(export_version(root, "genies", "1.0.0", exports, _catalog_shifts(BUILT)).path)


def _validation(version: Version) -> dict:
    """A report with checks this site has never heard of, scoped to a distribution and to a shift."""
    return {
        "version": {"content_sha256": version.manifest["content_sha256"]},
        "summary": {"errors": 1, "warnings": 1, "infos": 0, "passed": 1},
        "checks": [
            {"name": "shortcut_cues", "severity": "error", "description": "no label-free rule picks the answer",
             "status": "fail", "count": 40,
             "findings": {"code_hard": {"count": 40, "total": 180, "examples": ["abc123"], "detail": "longest wins",
                                        "rule": "longest", "accuracy": 0.91}}},
            {"name": "fidelity", "severity": "warning", "description": "shape matches the reference",
             "status": "fail", "count": 1,
             "findings": {"alpaca_easy->alpaca_hard": {"count": 1, "total": 1, "examples": [], "detail": "k differs"}}},
            {"name": "schema", "severity": "error", "description": "record schema", "status": "pass", "count": 0,
             "findings": {}},
        ],
    }


@pytest.fixture(scope="module")
def site(version, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    result = build_site(version, out, load_catalog(), validation=_validation(version))
    assert result.path == out and result.examples == 80 + 4 * 180
    return out


def test_site_has_a_page_per_distribution_and_shift_and_chunked_examples(site, version) -> None:
    catalog_shifts = [s for s in load_catalog().shifts if s.target not in load_catalog().members]
    for name in BUILT:
        assert (site / distribution_href(name)).exists()
    for shift in catalog_shifts:
        assert (site / shift_href(shift.source, shift.target)).exists()
    chunks = sorted((site / "d" / "alpaca_easy").glob("train-*.js"))
    assert len(chunks) == -(-200 // CHUNK_ROWS)
    first = chunks[0].read_text()
    key, payload = re.fullmatch(r"geniesSite\.chunk\((\"[^\"]+\"),(.*)\);\n", first, re.DOTALL).groups()
    rows = json.loads(payload)
    assert json.loads(key) == "alpaca_easy/train/0" and len(rows) == CHUNK_ROWS
    assert set(rows[0]) >= {"id", "group", "prompt", "responses", "preferred", "provenance"}
    assert json.loads((site / "genies-site.json").read_text())["content_sha256"] == version.manifest["content_sha256"]


def test_pages_need_nothing_from_the_network(site) -> None:
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page


def test_home_page_marks_benchmark_shifts_and_says_why_a_shift_is_missing(site) -> None:
    home = (site / "index.html").read_text()
    row = re.search(r'<tr class="shift built" data-shift="alpaca_easy-&gt;alpaca_hard">(.*?)</tr>', home, re.DOTALL)
    assert row and "GENIES benchmark" in row.group(1)
    missing = re.search(r'data-shift="arc_easy-&gt;arc_hard">(.*?)</tr>', home, re.DOTALL).group(1)
    assert "missing: source arc_easy (not in this version); target arc_hard (not in this version)" in missing
    assert "1 error check(s) failed, 1 warning(s)" in home


def test_findings_of_any_check_appear_where_their_scope_is(site) -> None:
    page = (site / distribution_href("code_hard")).read_text()
    assert 'data-check="shortcut_cues"' in page and "longest wins" in page
    assert "rule: longest" in page and "accuracy: 0.91" in page
    shift_page = (site / shift_href("alpaca_easy", "alpaca_hard")).read_text()
    assert 'data-check="fidelity"' in shift_page and "k differs" in shift_page
    assert "passes every check" in (site / distribution_href("code_easy")).read_text()


def test_text_from_data_is_escaped_in_pages(version, tmp_path) -> None:
    catalog = load_catalog()
    catalog.distributions["code_easy"] = replace(catalog.distributions["code_easy"], description=HOSTILE)
    build_site(version, tmp_path / "site", catalog)
    page = (tmp_path / "site" / distribution_href("code_easy")).read_text()
    assert "&lt;script&gt;window.pwned" in page and "<script>window.pwned" not in page


def test_shift_status_from_the_shifts_table_is_shown(version, tmp_path) -> None:
    shifts = version.shifts().append_column("status", pa.array(["built", "missing: target withheld"]))
    exports = [DistributionExport(n, {s: version.table(n, s) for s in ("train", "test")}) for n in BUILT]
    with_status = Version.open(export_version(tmp_path / "art", "genies", "2", exports, shifts).path)
    build_site(with_status, tmp_path / "site", load_catalog())
    home = (tmp_path / "site" / "index.html").read_text()
    assert "missing: target withheld" in home


def test_an_earlier_site_is_replaced_and_a_foreign_folder_refused(version, tmp_path) -> None:
    out = tmp_path / "site"
    build_site(version, out, load_catalog())
    (out / "stale.html").write_text("old")
    build_site(version, out, load_catalog())
    assert not (out / "stale.html").exists() and (out / "index.html").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(GeniesError, match="not a folder written by `genies site`"):
        build_site(version, foreign, load_catalog())
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_with_eval_results_shows_means_rows_and_plots(version, tmp_path) -> None:
    results = tmp_path / "eval"
    evaluated = runner.invoke(app, ["eval", str(version.path), "--shifts", "all", "--out", str(results)])
    assert evaluated.exit_code == 0, evaluated.output
    out = tmp_path / "site"
    made = runner.invoke(app, ["site", str(version.path), "--out", str(out), "--eval", str(results)])
    assert made.exit_code == 0, made.output
    home = (out / "index.html").read_text()
    assert "mean target accuracy" in home and "scorer <code>bow</code>" in home
    shift_page = (out / shift_href("code_easy", "code_hard")).read_text()
    rows = json.loads((results / "results.json").read_text())["rows"]
    expected = next(r for r in rows if r["shift"] == "code_easy->code_hard")["target_accuracy"]
    assert f"{expected:.3f}" in shift_page and "assets/eval/accuracy.png" in shift_page
    assert (out / "assets" / "eval" / "accuracy.png").exists()


def test_results_of_another_version_are_refused(version, tmp_path) -> None:
    report = _validation(version)
    report["version"]["content_sha256"] = "0" * 64
    stale = tmp_path / "report.json"
    stale.write_text(json.dumps(report))
    made = runner.invoke(app, ["site", str(version.path), "--out", str(tmp_path / "site"), "--validation", str(stale)])
    assert made.exit_code != 0 and "rerun it on" in str(made.exception.hint)
    assert not (tmp_path / "site").exists()


def test_site_of_the_imported_release_sample(release_sample, tmp_path) -> None:
    from builders.release import import_release

    import_release(release_sample, tmp_path / "art", "1.0.0")
    release = Version.open(tmp_path / "art" / "genies-release" / "1.0.0")
    made = runner.invoke(app, ["site", str(release.path), "--out", str(tmp_path / "site")])
    assert made.exit_code == 0, made.output
    for name in release.distributions:
        page = (tmp_path / "site" / distribution_href(name)).read_text()
        assert "Shortcut audit and validation findings" in page
    home = (tmp_path / "site" / "index.html").read_text()
    assert home.count('<tr class="distribution"') == len(release.distributions)


# --- in a real browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven through Debian's chromedriver; skipped only when they are absent outside CI."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        reason = "needs Debian's chromium and chromium-driver (bash install.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have them")
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(driver))
    yield session
    session.quit()


def _wait_for_examples(browser, status_text: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(driver):
        root = driver.find_element(By.CSS_SELECTOR, ".example-browser")
        status = root.find_element(By.CSS_SELECTOR, ".browser-status").text
        done = root.get_attribute("aria-busy") is None and root.get_attribute("data-shown") is not None
        return root if done and (status_text is None or status_text in status) else False

    return WebDriverWait(browser, 20).until(ready)


def _screenshot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def test_home_page_lists_every_shift_in_the_dom(browser, site) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "table.shift-table tr.shift")
    catalog = load_catalog()
    expected = {s.name for s in catalog.shifts if s.target not in catalog.members}
    assert {r.get_attribute("data-shift") for r in rows} == expected
    built = {r.get_attribute("data-shift") for r in browser.find_elements(By.CSS_SELECTOR, "tr.shift.built")}
    assert built == {"alpaca_easy->alpaca_hard", "code_easy->code_hard"}
    assert browser.find_element(By.TAG_NAME, "main") and browser.find_element(By.CSS_SELECTOR, "nav[aria-label]")
    _screenshot(browser, "home.png")


def test_follow_a_link_and_search_leaves_exactly_the_matching_examples(browser, site, version) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get((site / "index.html").as_uri())
    browser.find_element(By.CSS_SELECTOR, 'tr[data-distribution="alpaca_easy"] a').click()
    root = _wait_for_examples(browser, "Showing 1–50 of 200 train examples")
    assert browser.current_url.endswith(distribution_href("alpaca_easy"))
    assert len(root.find_elements(By.CSS_SELECTOR, "article.example")) == CHUNK_ROWS
    train = version.table("alpaca_easy", "train").to_pylist()
    expected = {r["id"] for r in train if "zebracorn" in r["prompt"] or any("zebracorn" in x for x in r["responses"])}
    assert len(expected) == 3
    search = browser.find_element(By.CSS_SELECTOR, "input.search-input")
    search.send_keys("ZebraCorn", Keys.ENTER)
    root = _wait_for_examples(browser, "3 of 200 train examples match")
    shown = root.find_elements(By.CSS_SELECTOR, "article.example")
    assert {a.get_attribute("data-id") for a in shown} == expected
    assert all("zebracorn" in a.text for a in shown)
    _screenshot(browser, "distribution-search.png")


def test_markup_in_an_example_is_shown_as_text_and_never_run(browser, site) -> None:
    from selenium.webdriver.common.by import By

    browser.get((site / distribution_href("alpaca_easy")).as_uri() + "?q=question%201")
    root = _wait_for_examples(browser, "match")
    prompt = root.find_element(By.CSS_SELECTOR, "article.example .prompt .text")
    assert prompt.text.startswith("<script>window.pwned = true</script><img src=x")
    assert browser.execute_script("return window.pwned === undefined")
    assert not root.find_elements(By.CSS_SELECTOR, ".example-list script, .example-list img")


def test_long_texts_collapse_and_expand_from_the_keyboard(browser, site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get((site / distribution_href("alpaca_easy")).as_uri() + "?q=answer%205%20b")
    root = _wait_for_examples(browser, "match")
    toggle = root.find_element(By.CSS_SELECTOR, "button.toggle")
    text = toggle.find_element(By.XPATH, "preceding-sibling::div[contains(@class, 'text')]")
    assert "collapsed" in text.get_attribute("class") and toggle.get_attribute("aria-expanded") == "false"
    toggle.send_keys(Keys.ENTER)
    assert "collapsed" not in text.get_attribute("class") and toggle.get_attribute("aria-expanded") == "true"


def test_shift_page_shows_source_and_target_side_by_side_on_a_narrow_screen(browser, site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(420, 900)
    try:
        browser.get((site / shift_href("alpaca_easy", "alpaca_hard")).as_uri())
        loaded = ".example-browser[data-shown]"
        WebDriverWait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, loaded)) == 2)
        source, target = browser.find_elements(By.CSS_SELECTOR, ".side")
        assert "train" in source.find_element(By.CSS_SELECTOR, ".browser-status").text
        assert "test" in target.find_element(By.CSS_SELECTOR, ".browser-status").text
        assert len(source.find_elements(By.CSS_SELECTOR, "article.example")) == 5
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        _screenshot(browser, "shift-narrow.png")
    finally:
        browser.set_window_size(1280, 1000)
