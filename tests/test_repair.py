import json
from collections import Counter

import pytest

from builders.catalog import load_catalog
from builders.export import DistributionExport, Version, export_version
from builders.release import import_release
from builders.repair import normalize, repair_version, strip_debris
from builders.schema import Provenance, Record

FORMAT = "### Instruction:\n{instruction}\n\n### Response:\n"


def rec(dist, split, i, instruction, responses, preferred=0, prompt=None, meta=None):
    return Record(
        distribution=dist,
        prompt=prompt if prompt is not None else FORMAT.format(instruction=instruction),
        responses=responses,
        preferred=preferred,
        group=f"release:{normalize(instruction)}",
        provenance=Provenance("genies-release", "r", f"{dist}/{split}/{i}"),
        instruction=instruction,
        meta={"prompt_format": FORMAT, **(meta or {})},
    )


def make_version(tmp_path, dists):
    exports = [DistributionExport(name, splits) for name, splits in dists.items()]
    return export_version(tmp_path / "in", "rel", "1", exports, load_catalog().shifts_table()).path


def plain(dist, split, n, start=0):
    return [rec(dist, split, i, f"{dist} question {i}", [f"good {i}", f"bad {i}"]) for i in range(start, start + n)]


def changelog(result):
    return json.loads((result.path / "changelog.json").read_text())


def test_leaks_inside_and_across_distributions_are_resolved(tmp_path):
    leaked = rec("arc_easy", "test", 99, "arc_easy question 0", ["good 0", "bad 0"])
    source_item = rec("alpaca_mmlu", "train", 0, "shared question", ["a", "b"])
    target_item = rec("truthful_qa", "test", 0, "shared question", ["x", "y"])
    path = make_version(tmp_path, {
        "arc_easy": {"train": plain("arc_easy", "train", 10), "test": plain("arc_easy", "test", 4, 10) + [leaked]},
        "alpaca_mmlu": {"train": [source_item] + plain("alpaca_mmlu", "train", 10, 1), "test": plain("alpaca_mmlu", "test", 4, 20)},
        "truthful_qa": {"train": plain("truthful_qa", "train", 10), "test": [target_item] + plain("truthful_qa", "test", 4, 20)},
    })
    report = repair_version(str(path), tmp_path / "out", "2")
    version = Version.open(report.result.path)
    for name in version.distributions:
        train = {normalize(p) for p in version.table(name, "train").column("prompt").to_pylist()}
        test = {normalize(p) for p in version.table(name, "test").column("prompt").to_pylist()}
        assert not train & test, name
    source_train = {normalize(i) for i in version.table("alpaca_mmlu", "train").column("instruction").to_pylist()}
    target_test = {normalize(i) for i in version.table("truthful_qa", "test").column("instruction").to_pylist()}
    assert not source_train & target_test
    log = changelog(report.result)["distributions"]
    removed = {r["row_key"]: r["reason"] for r in log["arc_easy"]["removed"]}
    assert len({"arc_easy/train/0", "arc_easy/test/99"} & set(removed)) == 1
    assert set(removed.values()) == {"exact duplicate of an example in the other split"}
    moved = {m["row_key"] for d in log.values() for m in d["moved"]}
    assert {"alpaca_mmlu/train/0", "truthful_qa/test/0"} & moved


def test_duplicates_removed_positions_balanced_debris_stripped(tmp_path):
    train = plain("crt_2", "train", 40)
    train.append(rec("crt_2", "train", 40, "crt_2 question 0", ["good 0", "bad 0"]))
    debris = rec("crt_2", "test", 50, "hours?", ["14 hours\n1", "7 hours\n1"])
    report = repair_version(str(make_version(tmp_path, {"crt_2": {"train": train, "test": plain("crt_2", "test", 10, 60) + [debris]}})),
                            tmp_path / "out", "2")
    log = changelog(report.result)["distributions"]["crt_2"]
    assert [r["row_key"] for r in log["removed"]] == ["crt_2/train/40"]
    assert log["removed"][0]["reason"] == "exact duplicate inside the split"
    rewritten = {r["row_key"]: r for r in log["rewritten"]}
    assert rewritten["crt_2/test/50"]["changes"] == ["debris stripped"]
    version = Version.open(report.result.path)
    responses = [r for rs in version.table("crt_2", "test").column("responses").to_pylist() for r in rs]
    assert "14 hours" in responses and "7 hours" in responses
    positions = Counter(version.table("crt_2", "train").column("preferred").to_pylist())
    assert abs(positions[0] - positions[1]) <= 1


def test_prompt_missing_instruction_is_rerendered_and_constant_prompt_dropped(tmp_path):
    constant = "### Instruction:\nAnswer the following biology question.\n\n### Response:\n"
    bio = [rec("biology_with_literary_style", s, i, f"What is organ {i}?", [f"plain {i}", f"poetic {i}"],
               prompt=constant, meta={"prompt_format": constant}) for s, r in (("train", range(10)), ("test", range(10, 14))) for i in r]
    meaningless = [Record("commonsense_qa", "B", [f"a{i}", f"b{i}"], 0, f"g{i}", Provenance("genies-release", "r", f"c/{i}"))
                   for i in range(12)]
    report = repair_version(str(make_version(tmp_path, {
        "biology_with_literary_style": {"train": bio[:10], "test": bio[10:]},
        "commonsense_qa": {"train": meaningless[:8], "test": meaningless[8:]},
    })), tmp_path / "out", "2")
    assert "commonsense_qa" in report.dropped
    version = Version.open(report.result.path)
    assert version.distributions == ["biology_with_literary_style"]
    for row in version.table("biology_with_literary_style", "train").to_pylist():
        assert row["instruction"] in row["prompt"]
        assert "Answer the following biology question." in row["prompt"]
    log = changelog(report.result)
    assert log["dropped_distributions"]["commonsense_qa"].startswith("prompts are constant")
    assert len(log["distributions"]["biology_with_literary_style"]["rewritten"]) == 14


def test_repair_is_deterministic(tmp_path):
    dists = {"arc_easy": {"train": plain("arc_easy", "train", 30), "test": plain("arc_easy", "test", 10, 30)}}
    path = make_version(tmp_path, dists)
    a = repair_version(str(path), tmp_path / "a", "2", seed=3).result.manifest
    b = repair_version(str(path), tmp_path / "b", "2", seed=3).result.manifest
    assert a["content_sha256"] == b["content_sha256"]
    assert repair_version(str(path), tmp_path / "a", "2", seed=3).result.status == "unchanged"


def test_strip_debris_keeps_content():
    assert strip_debris("Response 2: The answer is 4.") == "The answer is 4."
    assert strip_debris("1. Pizza\n2. Sushi") == "1. Pizza\n2. Sushi"
    assert strip_debris(" # class Node:\n #   pass") == " # class Node:\n #   pass"
    assert strip_debris("6 hours\n1") == "6 hours"


def test_repaired_sample_has_no_leaks_and_balanced_positions(release_sample, tmp_path):
    imported = import_release(release_sample, tmp_path, "1.0.0").result.path
    report = repair_version(str(imported), tmp_path, "1.0.1")
    version = Version.open(report.result.path)
    sides = {}
    for name in version.distributions:
        for split in ("train", "test"):
            table = version.table(name, split)
            for prompt, instruction in zip(table.column("prompt").to_pylist(), table.column("instruction").to_pylist()):
                for key in filter(None, (normalize(prompt), normalize(instruction))):
                    sides.setdefault(key, set()).add(split)
            positions = Counter(table.column("preferred").to_pylist())
            k = max(len(r) for r in table.column("responses").to_pylist())
            assert max(positions.values()) / table.num_rows - 1 / k <= 0.10 + 1 / table.num_rows, (name, split)
    assert not [k for k, s in sides.items() if len(s) == 2]


def test_changelog_matches_diff_and_repaired_sample_passes_strict_validation(release_sample, tmp_path):
    from builders.diff import diff_versions
    from builders.validation import validate_version

    imported = import_release(release_sample, tmp_path, "1.0.0").result.path
    repaired = repair_version(str(imported), tmp_path, "1.0.1").result.path
    log = json.loads((repaired / "changelog.json").read_text())["distributions"]
    diff = diff_versions(str(imported), str(repaired))
    for dist in diff.distributions:
        recorded = {"removed": len(log[dist.name]["removed"]), "moved": len(log[dist.name]["moved"]),
                    "changed": len(log[dist.name]["rewritten"]), "reordered": len(log[dist.name]["reordered"]),
                    "added": 0}
        assert {k: dist.counts.get(k, 0) for k in recorded} == recorded, dist.name
    assert [c.name for c in validate_version(str(repaired)).errors] == []
