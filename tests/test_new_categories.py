"""The perturbation and lingual categories, and docs/adding-a-category.md followed literally.

Statistical tolerance of the edit-rate test: every word is edited independently with probability p, so
the number of edits E over N words is Binomial(N, p) and the measured rate E/N has standard deviation
sqrt(p(1-p)/N). The test accepts |E/N - p| <= 4 standard deviations (about 0.022 for p = 0.3 over the
~7,000 words of the build below): a correct implementation fails it for fewer than 1 seed in 15,000,
while a rate off by a tenth of p fails it. The same bound holds for the share of each edit (1/3 each).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import pytest
from rapidfuzz.distance import Levenshtein
from typer.testing import CliRunner

from builders import discovery, registry, templating
from builders.categories.perturbation import EDITS, perturb_text, word_list
from builders.cli import app
from builders.export import Version
from builders.llm import ChatResult, Engine, LLMConfig
from builders.pipeline import BUILT, BuildOptions, build_distribution
from tests.conftest import REPO
from tests.llm_server import LLMServer

GUIDE = REPO / "docs" / "adding-a-category.md"
# A file label on its own line (`path`:), a blank line, then the fenced block that is the file.
GUIDE_FILE = re.compile(r"^`(toy_category/[^`]+)`:\n\n```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SIGMAS = 4
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def rows(result, split: str | None = None) -> list:
    splits = [split] if split else ["train", "test"]
    return [r for s in splits for r in result.splits[s]]


@pytest.fixture
def use_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Name a plugin in GENIES_PLUGINS, as the guide says; everything it registered is undone afterwards."""
    discovery.discover()  # modules first imported inside the snapshot would lose their builders on restore
    catalog_dirs = list(registry.PLUGIN_CATALOG_DIRS)
    template_dirs = list(templating._extra_dirs)

    def use(module: Path) -> None:
        monkeypatch.setenv("GENIES_PLUGINS", str(module))
        discovery.reset_discovery()

    with registry.BUILDERS.snapshot(), registry.FAMILIES.snapshot():
        yield use
    registry.PLUGIN_CATALOG_DIRS[:] = catalog_dirs
    templating._extra_dirs[:] = template_dirs
    templating.environment.cache_clear()
    discovery.reset_discovery()


def write_guide_plugin(root: Path) -> Path:
    """The files docs/adding-a-category.md labels with a path, written as it shows them; the module's path."""
    files = GUIDE_FILE.findall(GUIDE.read_text(encoding="utf-8"))
    for relative, text in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    assert {relative for relative, _ in files} >= {"toy_category/toy_category.py", "toy_category/templates/toy/question.j2",
                                                   "toy_category/catalog/shifts.toml"}
    return root / "toy_category" / "toy_category.py"


def test_the_guide_toy_category_is_discovered_listed_built_and_validated(use_plugin, tmp_path: Path) -> None:
    use_plugin(write_guide_plugin(tmp_path / "plugin"))
    listed = json.loads(cli("list", "--json"))
    assert {"toy_arithmetic", "perturbation", "lingual"} <= {c["name"] for c in listed["categories"]}
    toy = {d["name"]: d["buildable"] for d in listed["distributions"] if d["name"].startswith("toy_")}
    assert toy == {"toy_addition": "yes", "toy_subtraction": "yes"}
    cli("build", "--category", "toy_arithmetic", "--out", str(tmp_path), "--version", "1", "--limit", "40")
    version = Version.open(tmp_path / "genies" / "1")
    assert {s["category"] for s in version.shifts().to_pylist() if s["status"] == "built"} == {"toy_arithmetic"}
    assert version.table("toy_subtraction", "test").num_rows == 40
    report = tmp_path / "validation.json"
    cli("validate", str(version.path), "--strict", "--json", str(report))
    assert json.loads(report.read_text())


def test_new_category_scaffold_builds_and_validates_as_written(use_plugin, tmp_path: Path) -> None:
    cli("new-category", "legal_reasoning", "--dir", str(tmp_path / "plugins"))
    use_plugin(tmp_path / "plugins" / "legal_reasoning" / "legal_reasoning.py")
    cli("build", "--category", "legal_reasoning", "--out", str(tmp_path / "art"), "--version", "1")
    cli("validate", str(tmp_path / "art" / "genies" / "1"), "--strict")
    again = runner.invoke(app, ["new-category", "legal_reasoning", "--dir", str(tmp_path / "plugins")])
    assert again.exit_code != 0 and "already exists" in str(again.exception)


def test_default_members_are_listed_and_any_p_builds_by_name() -> None:
    listed = json.loads(cli("list", "--json", "--category", "perturbation"))
    targets = {s["target"] for s in listed["shifts"]}
    assert {f"arc_easy__perturb_{place}_p0.{k}" for place in ("prompt", "response", "both") for k in range(1, 10)} <= targets
    assert {s["label"] for s in listed["shifts"]} == {"robustness"}
    assert {f["name"]: f["member"] for f in listed["families"]} == {
        "perturbation": "{base}__perturb_{placement}_p{p}{ops}", "lingual": "{base}__{mode}_{placement}_{language}"}
    lingual = {s["target"] for s in json.loads(cli("list", "--json", "--category", "lingual"))["shifts"]}
    assert {f"alpaca_mmlu__roundtrip_both_{lang}" for lang in ("es", "fr", "de", "ru", "zh", "hi")} <= lingual
    assert discovery.resolve("arc_hard__perturb_prompt_p0.35_delete") is not None
    assert discovery.resolve("arc_hard__perturb_prompt_p0.30") is None  # one spelling per p


def test_perturbation_at_p0_is_the_identity(sources_mirror: Path) -> None:
    options = BuildOptions(train_size=40, test_size=20, mirror=sources_mirror)
    base = build_distribution("arc_easy", options)
    same = build_distribution("arc_easy__perturb_both_p0", options)
    assert same.status == BUILT
    for split in ("train", "test"):
        by_group = {r.group: r for r in rows(base, split)}
        assert {r.group for r in rows(same, split)} == set(by_group)
        for record in rows(same, split):
            original = by_group[record.group]
            assert (record.prompt, record.instruction) == (original.prompt, original.instruction)
            assert sorted(record.responses) == sorted(original.responses)
            assert record.responses[record.preferred] == original.responses[original.preferred]
            assert record.meta["perturbation"]["edits"] == dict.fromkeys(EDITS, 0)


def _words(text: str) -> list[str]:
    return text.split()


def _aligned_distance(old: list[str], new: list[str]) -> int:
    """Word-level edit distance between two response lists, matched the cheapest way (the build reshuffles
    response order, so the i-th perturbed response need not come from the i-th original)."""
    return min(sum(Levenshtein.distance(_words(a), _words(b)) for a, b in zip(old, order))
               for order in itertools.permutations(new))


def test_measured_edit_rate_matches_p(sources_mirror: Path) -> None:
    p = 0.3
    options = BuildOptions(train_size=150, test_size=50, mirror=sources_mirror)
    base = {r.id: r for r in rows(build_distribution("arc_easy", options))}
    vocabulary = set(word_list())
    words = edits = distance = 0
    made: Counter[str] = Counter()
    for record in rows(build_distribution(f"arc_easy__perturb_both_p{p}", options)):
        original, info = base[record.meta["base_id"]], record.meta["perturbation"]
        head, tail = original.prompt.split(original.instruction)
        assert record.prompt == head + record.instruction + tail  # the prompt format is untouched
        texts_before = [original.instruction, *original.responses]
        texts_after = [record.instruction, *record.responses]
        assert info["words"] == sum(len(_words(t)) for t in texts_before)
        counts = info["edits"]
        assert sum(len(_words(t)) for t in texts_after) == info["words"] + counts["insert"] - counts["delete"]
        new_words = {w for t in texts_after for w in _words(t)} - {w for t in texts_before for w in _words(t)}
        assert new_words <= vocabulary
        distance += Levenshtein.distance(_words(original.instruction), _words(record.instruction))
        distance += _aligned_distance(original.responses, record.responses)
        words += info["words"]
        edits += sum(counts.values())
        made.update(counts)
    sd = math.sqrt(p * (1 - p) / words)
    assert words > 3000
    assert abs(edits / words - p) <= SIGMAS * sd, (edits / words, p, sd)
    for op in EDITS:
        assert abs(made[op] / edits - 1 / 3) <= SIGMAS * math.sqrt(2 / 9 / edits), made
    # The text agrees with the counts: the word-level edit distance never exceeds the edits made, and
    # falls short only where a deletion merges with the next word's insertion (expected p/9 of edits).
    assert edits * (1 - p / 9) - SIGMAS * math.sqrt(edits) <= distance <= edits, (distance, edits)


def test_perturbations_are_nested_across_p() -> None:
    text = "The quick brown fox jumps over the lazy dog near the quiet river bank today"
    words = word_list()
    runs = [perturb_text(text, p, random.Random(7), words) for p in (0.0, 0.2, 0.5, 0.9)]
    assert runs[0][0] == text
    totals = [sum(c[op] for op in EDITS) for _, c in runs]
    assert totals == sorted(totals) and totals[-1] > totals[1] > 0
    only_deletes = perturb_text("single", 1.0, random.Random(1), words, ("delete",))
    assert only_deletes[0].strip() and only_deletes[1]["replace"] == 1


LINGUAL = ["arc_easy__translate_response_es", "arc_easy__roundtrip_both_fr"]
SHIFTED = ["arc_easy", "arc_easy__perturb_response_p0.5", *LINGUAL]


def version_files(root: Path) -> dict[str, bytes]:
    """Every file of a version but the manifest and the card: they carry the command line (which names the
    output folder) and the build fingerprint (which hashes the code tree, edited by others while tests run)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}


def test_lingual_builds_then_replays_offline_and_both_categories_flow_through_every_command(
    sources_mirror: Path, tmp_path: Path
) -> None:
    """The test server's answer is a deterministic function of the request (a hash of the conversation),
    which stands in for a translation: distinct texts get distinct "translations", and a replay must
    reproduce them from the cache alone."""
    build = ["build", *SHIFTED, "--mirror", str(sources_mirror), "--version", "1", "--limit", "30"]
    with LLMServer() as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "test", "GENIES_LLM_CACHE": str(tmp_path / "llm")}
        cli(*build, "--out", str(tmp_path / "a"), env=env)
        sent = sum(server.hits.values())
        cli(*build, "--out", str(tmp_path / "b"), "--offline", env=env)
        assert sum(server.hits.values()) == sent > 0
    first, replay = tmp_path / "a" / "genies" / "1", tmp_path / "b" / "genies" / "1"
    assert version_files(replay) == version_files(first)
    assert json.loads((replay / "manifest.json").read_text())["content_sha256"] == \
        json.loads((first / "manifest.json").read_text())["content_sha256"]

    version = Version.open(first)
    translated = version.table("arc_easy__translate_response_es", "train").to_pylist()[0]
    assert all(r.startswith("answer ") for r in translated["responses"])
    assert json.loads(translated["meta"])["lingual"] == {"mode": "translate", "placement": "response", "language": "es"}
    assert len(translated["provenance"]["llm_requests"]) == len(translated["responses"])
    round_trip = version.table("arc_easy__roundtrip_both_fr", "train").to_pylist()[0]
    assert len(round_trip["provenance"]["llm_requests"]) == 2 * (1 + len(round_trip["responses"]))
    shifts = {(s["source"], s["target"]): s["category"] for s in version.shifts().to_pylist() if s["status"] == "built"}
    assert shifts == {("arc_easy", "arc_easy__perturb_response_p0.5"): "perturbation",
                      **{("arc_easy", name): "lingual" for name in LINGUAL}}

    report = tmp_path / "validation.json"
    cli("validate", str(first), "--strict", "--json", str(report))
    cli("publish", str(first), "--repo", "lab/genies", "--dry-run", str(tmp_path / "hub"))
    assert {f"data/{n}/test-00000-of-00001.parquet" for n in SHIFTED} <= {
        p.relative_to(tmp_path / "hub").as_posix() for p in (tmp_path / "hub").rglob("*.parquet")}
    published = datasets.load_dataset(str(tmp_path / "hub"), "arc_easy__perturb_response_p0.5")
    assert published["test"].num_rows == version.table("arc_easy__perturb_response_p0.5", "test").num_rows
    cli("eval", str(first), "--shifts", "all", "--scorer", "bow", "--out", str(tmp_path / "eval"))
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert {r["category"] for r in results if r["status"] == "ok"} == {"perturbation", "lingual"}


class _DigitlessTranslator:
    """An engine stand-in: wraps each text in «», and fails every text that holds a digit."""

    model = "stub"

    def run_batch(self, requests, show_progress: bool = True) -> list[ChatResult]:
        results = []
        for i, request in enumerate(requests):
            text = re.search(r"<<<TEXT\n(.*)\nTEXT>>>", request.messages[0]["content"], re.DOTALL).group(1)
            if re.search(r"\d", text):
                results.append(ChatResult(f"k{i}", request.step, "failed", reason="server down", raw="502"))
            else:
                results.append(ChatResult(f"k{i}", request.step, "answer", text=f"«{text}»", parsed=f"«{text}»"))
        return results


def test_a_failed_translation_rejects_its_row_with_the_reason(sources_mirror: Path) -> None:
    options = BuildOptions(train_size=60, test_size=20, mirror=sources_mirror)
    result = build_distribution("arc_easy__roundtrip_response_de", options, _DigitlessTranslator())
    kept = rows(result)
    assert result.status == BUILT and kept
    assert all(r.startswith("««") and r.endswith("»»") for record in kept for r in record.responses)
    assert not any(re.search(r"\d", "".join(record.responses)) for record in kept)
    rejected = [r for r in result.context.rejects if r.reason.startswith("translation failed")]
    assert rejected and all(r.reason == "translation failed: server down" and "502" in r.raw["raw"] for r in rejected)


def test_a_dry_run_counts_one_request_per_distinct_text_and_leg(sources_mirror: Path, tmp_path: Path) -> None:
    options = BuildOptions(train_size=10, test_size=5, mirror=sources_mirror)
    texts = {t for row in rows(build_distribution("arc_easy", options)) for t in (row.instruction, *row.responses)}
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", api_key="k", model="m", cache_path=tmp_path, dry_run=True)
    with Engine(config) as engine:
        result = build_distribution("arc_easy__roundtrip_both_ru", options, engine)
        planned = {step: stats.planned for step, stats in engine.stats.by_step.items()}
    assert result.status == BUILT
    assert planned == {"arc_easy__roundtrip_both_ru.translate": len(texts),
                       "arc_easy__roundtrip_both_ru.back_translate": len(texts)}
