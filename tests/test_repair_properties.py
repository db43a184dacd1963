"""Property tests of `genies repair`: every release shaped like the original, hazards included, repairs into
a version that passes `validate --strict`, whose diff agrees with its changelog, and that a second repair
leaves alone.

The releases are written in the original's JSON layout (distributions/<name>/{train,test}.json, responses
as an ordered {text: score} object) and go through `import_release`, as the original does. Distribution
names come from the catalog's shifts, so shift overlap is checked as it is for the real release.
"""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders.catalog import load_catalog
from builders.diff import diff_versions
from builders.release import import_release
from builders.repair import repair_version
from builders.validation import validate_version
from tests.test_repair import expected_diff_counts

FORMAT = "### Instruction:\n{instruction}\n\n### Response:\n"
SHIFTS = [(s["source"], s["target"]) for s in load_catalog().shifts_table().to_pylist()]
TOPICS = ("rivers", "tariffs", "enzymes", "sonnets", "glaciers", "compilers", "orchids", "treaties")
WHITESPACE_VARIANTS = (lambda t: t + " ", lambda t: " " + t, lambda t: t.replace(" ", "  "),
                       lambda t: t.replace(" ", "\n    ", 1), lambda t: t + "\n")


def instruction(item: int, caps: bool) -> str:
    text = f"Explain item {item} about {TOPICS[item % len(TOPICS)]} in two sentences."
    return text + " Please use all caps." if caps else text


def example(item: int, caps: bool, preferred: int, n_responses: int, variant: int | None) -> dict:
    """One release example about `item`; `caps` asks for all caps with the lowercase answer preferred
    (an inverted formatting label); `variant` repeats a response with whitespace changed."""
    responses = [f"answer {r} to item {item}: the {TOPICS[(item + r) % len(TOPICS)]} view" for r in range(n_responses)]
    if caps:
        responses[(preferred + 1) % n_responses] = responses[(preferred + 1) % n_responses].upper()
    if variant is not None:
        original = responses[variant % n_responses]
        responses.append(WHITESPACE_VARIANTS[variant % len(WHITESPACE_VARIANTS)](original))
    text = instruction(item, caps)
    return {"prompt": FORMAT.format(instruction=text), "instruction": text, "prompt_format": FORMAT,
            "responses": {r: float(i == preferred) for i, r in enumerate(responses)}}


@st.composite
def examples(draw, item: int) -> dict:
    n_responses = draw(st.integers(2, 3))
    return example(item, caps=item % 3 == 0 and draw(st.booleans()), preferred=draw(st.integers(0, n_responses - 1)),
                   n_responses=n_responses, variant=draw(st.none() | st.integers(0, 9)))


@st.composite
def releases(draw) -> dict[str, dict[str, list[dict]]]:
    """{distribution: {split: examples}} over 1-3 catalog shifts. Each distribution has several items,
    drawn from one small pool shared by all, so prompts and groups repeat across splits, across
    distributions and across the sides of shifts; examples are also copied verbatim, inside a split and
    into the other split."""
    shifts = draw(st.lists(st.sampled_from(SHIFTS), min_size=1, max_size=3, unique=True))
    names = sorted({name for shift in shifts for name in shift})
    pool = st.integers(0, draw(st.integers(8, 40)))
    release = {}
    for name in names:
        splits = {split: [draw(examples(item)) for item in draw(st.lists(pool, min_size=size, max_size=3 * size,
                                                                             unique=True))]
                  for split, size in (("train", 4), ("test", 2))}
        for split in ("train", "test"):
            for copy in draw(st.lists(st.sampled_from(splits[split]), max_size=3)):
                splits[draw(st.sampled_from(("train", "test")))].append(copy)
        release[name] = splits
    return release


def write_release(root: Path, release: dict[str, dict[str, list[dict]]]) -> Path:
    for name, splits in release.items():
        folder = root / "distributions" / name
        folder.mkdir(parents=True)
        for split, rows in splits.items():
            (folder / f"{split}.json").write_text(json.dumps(rows, indent=1))
    return root


def assert_diff_agrees(counts: dict[str, int], log: dict, name: str) -> None:
    """Diff and changelog agree on what left the distribution. Where every item occurs once, they agree kind
    by kind (`expected_diff_counts`). Copies of an item (same id, or same prompt and group) are ambiguous to
    diff, which pairs ids occurrence by occurrence in row order and changed examples one pair per item,
    not by which copy repair kept; there only the net number of removals must match."""
    assert counts["removed"] - counts["added"] == len(log["removed"]), name
    copies = any(not entry["reason"].startswith("invalid") for entry in log["removed"])
    if not copies:
        assert {k: counts.get(k, 0) for k in expected_diff_counts(log)} == expected_diff_counts(log), name


def changelog(path: Path) -> dict:
    return json.loads((path / "changelog.json").read_text())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(releases())
def test_repair_of_any_release_shaped_like_the_original_passes_strict_validation(release):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        imported = import_release(write_release(root / "release", release), root / "out", "1.0.0").result.path
        repaired = repair_version(str(imported), root / "out", "1.0.1").result.path
        errors = {result.check.name for result in validate_version(str(repaired)).errors}
        assert errors == set(), errors

        log = changelog(repaired)["distributions"]
        for dist in diff_versions(str(imported), str(repaired)).distributions:
            if dist.name in log:
                assert_diff_agrees(dist.counts, log[dist.name], dist.name)

        again = repair_version(str(repaired), root / "out", "1.0.2")
        assert again.dropped == {}
        assert {kind: n for counts in again.counts().values() for kind, n in counts.items()
                if not kind.endswith("_rows") and n} == {}
        assert data_files(again.result.manifest) == data_files(json.loads((repaired / "manifest.json").read_text()))


def data_files(manifest: dict) -> dict[str, str]:
    """sha256 of each split's data file (the manifest's content hash also covers the changelog, which names
    the version repaired from)."""
    return {path: entry["sha256"] for path, entry in manifest["files"].items() if path.endswith(".arrow")}
