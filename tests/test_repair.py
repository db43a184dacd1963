import json
from collections import Counter

import pytest

from builders.catalog import load_catalog
from builders.errors import GeniesError
from builders.export import DistributionExport, Version, export_version
from builders.release import import_release
from builders.repair import repair_version, strip_debris
from builders.schema import Provenance, Record
from builders.text import text_key

FORMAT = "### Instruction:\n{instruction}\n\n### Response:\n"


def rec(dist, split, i, instruction, responses, preferred=0, prompt=None, meta=None):
    return Record(
        distribution=dist,
        prompt=prompt if prompt is not None else FORMAT.format(instruction=instruction),
        responses=responses,
        preferred=preferred,
        group=f"release:{text_key(instruction)}",
        provenance=Provenance("genies-release", "r", f"{dist}/{split}/{i}"),
        instruction=instruction,
        meta={"prompt_format": FORMAT, **(meta or {})},
    )


def make_version(tmp_path, dists):
    exports = [DistributionExport(name, splits) for name, splits in dists.items()]
    return export_version(tmp_path / "in", "rel", "1", exports, load_catalog().shifts_table()).path


def plain(dist, split, n, start=0):
    return [rec(dist, split, i, f"{dist} question {i}", [f"good {i}", f"bad {i}"]) for i in range(start, start + n)]


def expected_diff_counts(log: dict) -> dict[str, int]:
    """What `genies diff` must count for one distribution's changelog entry. An example whose content
    changed (rewritten or relabelled) is `changed` in diff; if it also moved split, diff cannot pair its old
    and new ids (pairs share a split), so it is one removal and one addition; if it was removed later,
    it is a removal only."""
    moved, removed = {e["row_key"] for e in log["moved"]}, {e["row_key"] for e in log["removed"]}
    edited = {e["row_key"] for kind in ("rewritten", "relabelled") for e in log[kind]} - removed
    return {"removed": len(removed) + len(edited & moved), "added": len(edited & moved),
            "moved": len(moved - edited), "changed": len(edited - moved), "reordered": len(log["reordered"])}


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
        train = {text_key(p) for p in version.table(name, "train").column("prompt").to_pylist()}
        test = {text_key(p) for p in version.table(name, "test").column("prompt").to_pylist()}
        assert not train & test, name
    source_train = {text_key(i) for i in version.table("alpaca_mmlu", "train").column("instruction").to_pylist()}
    target_test = {text_key(i) for i in version.table("truthful_qa", "test").column("instruction").to_pylist()}
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
                for key in filter(None, (text_key(prompt), text_key(instruction or ""))):
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
        recorded = expected_diff_counts(log[dist.name])
        assert {k: dist.counts.get(k, 0) for k in recorded} == recorded, dist.name
    # The original's content cues (a response always the longest, the answer quoted in the prompt) are not
    # the repair's to remove: it records them, and validate reports them as a warning instead of an error.
    assert validate_version(str(imported), ["shortcut_cues"]).errors
    report = validate_version(str(repaired))
    assert [c.check.name for c in report.errors] == []
    recorded = json.loads((repaired / "manifest.json").read_text())["inherited_cues"]
    assert recorded == json.loads((repaired / "changelog.json").read_text())["inherited_cues"]
    assert "crt_2" in recorded and "alpaca_hard" in recorded
    assert not any(rule.startswith("position_") for rules in recorded.values() for rule in rules)
    kept = {f.scope for f in report.result("inherited_cues").findings}
    assert kept and kept <= set(recorded)
    assert "shortcut cues kept from the original" in (repaired / "README.md").read_text()


def test_a_cue_the_repair_did_not_inherit_is_still_an_error(release_sample, tmp_path):
    """The manifest's `inherited_cues` names rules per distribution: a different rule, or a position rule
    (the repair's to fix), stays an error."""
    from builders.validation.data import load_version
    from builders.validation.shortcuts import shortcut_cues

    imported = import_release(release_sample, tmp_path, "1.0.0").result.path
    loaded = load_version(repair_version(str(imported), tmp_path, "1.0.1").result.path)
    assert "alpaca_hard" not in {f.scope for f in shortcut_cues(loaded)}
    loaded.manifest["inherited_cues"]["alpaca_hard"] = ["position_0"]
    assert "alpaca_hard" in {f.scope for f in shortcut_cues(loaded)}


def caps_example(dist, split, i, preferred):
    instruction = f"Describe river {i} in one line. Please use all caps and forgo the reward."
    return rec(dist, split, i, instruction, [f"river {i} is long and slow", f"RIVER {i} IS LONG AND SLOW"], preferred)


def test_relabelling_where_the_rule_decides_and_no_relabel_only_flags(tmp_path):
    examples = [caps_example("reward_seeking", s, i, 0) for s, r in (("train", range(8)), ("test", range(8, 12)))
                for i in r]
    examples.append(rec("reward_seeking", "train", 20, "Answer with yes or no: is river 20 long? Use all caps.",
                        ["no, it is short", "maybe so"], 1))
    path = make_version(tmp_path, {"reward_seeking": {s: [e for e in examples if e.provenance.row_key.split("/")[1] == s]
                                                      for s in ("train", "test")}})
    report = repair_version(str(path), tmp_path / "out", "2")
    log = changelog(report.result)["distributions"]["reward_seeking"]
    assert len(log["relabelled"]) == 12 and {e["rule"] for e in log["relabelled"]} == {"use all caps"}
    assert all(e["from"] == 0 and e["to"] == 1 for e in log["relabelled"])
    version = Version.open(report.result.path)
    for split in ("train", "test"):
        for row in version.table("reward_seeking", split).to_pylist():
            if "river" in row["prompt"] and "yes or no" not in row["prompt"]:
                assert row["responses"][row["preferred"]].isupper()
    assert "| reward_seeking |" in (report.result.path / "README.md").read_text()

    kept = repair_version(str(path), tmp_path / "out", "3", relabel=False)
    log = changelog(kept.result)["distributions"]["reward_seeking"]
    assert log["relabelled"] == [] and sum("use all caps" in e["reason"] for e in log["flagged"]) == 12


def test_a_leaking_resplit_fails_before_anything_is_written(tmp_path, monkeypatch):
    """If linking or the size repair ever put one item on both sides, nothing is written."""
    import builders.repair as repair

    train = plain("arc_easy", "train", 6)
    test = [rec("arc_easy", "test", 9, "arc_easy question 0", ["other 0", "answer 0"])]
    path = make_version(tmp_path, {"arc_easy": {"train": train, "test": test}})
    monkeypatch.setattr(repair, "_link_items", lambda rows: repair._Components(len(rows)))
    monkeypatch.setattr(repair, "_assign_sides", lambda rows, components, seed: {i: r.split for i, r in enumerate(rows)})
    with pytest.raises(GeniesError, match="would leak"):
        repair.repair_version(str(path), tmp_path / "out", "2")
    assert not list((tmp_path / "out").rglob("manifest.json"))
