"""Repair an imported GENIES release: fix leaks, position cues, broken prompts and debris, log every change.

The repaired version keeps the original items and LLM-written answers. What changes, in order:

1. prompts that omit the example's own instruction are re-rendered from its fields;
2. parse debris (response labels, markdown headings, a stray trailing number) is stripped, by the same
   rule for every response of an example;
3. a response that repeats another (the same text under `builders.text.response_key`: whitespace or
   Unicode form aside) is dropped, keeping the preferred one; examples that are no longer valid (fewer
   than two distinct responses) are removed, and so are repeated prompts inside a split (the first
   example by upstream key is kept);
4. distributions whose prompts stay constant are dropped: there is nothing to re-render them from;
5. train/test are re-split so that no item is on both sides anywhere in the version: examples sharing a
   group key, a prompt or an instruction form one item, and each item is put on one side for every
   distribution at once (majority of its original splits), then items found in one distribution only are
   moved to bring each distribution back to its original test size where the data allows. Only whole
   items move, and before anything is written the result is checked with the overlap definition
   `genies validate` uses: a prompt or group on both sides of a distribution, or of any shift (source
   train vs target test), fails the repair instead of writing a leaking version;
6. response order is re-balanced with a seeded RNG.

Labels: when a rule-checkable instruction of the prompt (all caps, no capitals, capitalize each word,
answer yes/no: `builders.validation.rules`) is obeyed by exactly one response and the label prefers
another, the label is flipped to the obeying response and recorded as `relabelled` with the rule
(`relabel=False` flags it instead). Contradictions the rule cannot decide, and prompts that ask for a wrong
answer in a distribution that prefers right ones, are flagged, never flipped. Every change is recorded per
distribution in `changelog.json`, keyed by the example's stable upstream key (`provenance.row_key`), with
its id before and after.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
import pyarrow as pa

from builders.catalog import load_catalog
from builders.coverage import shifts_with_status
from builders.errors import GeniesError
from builders.export import DistributionExport, ExportResult, Version, export_version
from builders.schema import Record, records_to_table, table_to_records
from builders.splits import SPLITS, balance_positions, unit_hash
from builders.templating import render, template_id
from builders.text import is_unknown_group, response_key, text_key
from builders.validation.data import frame_of, labelled, with_text_keys
from builders.validation.overlap import leaks
from builders.validation.rules import contradicts, instruction_rule
from builders.validation.shortcuts import content_cues

_LABEL_WORDS = r"(?:response|answer|output|completion|solution)"
_LEADING_LABEL = re.compile(rf"^\s*(?:#{{1,6}}\s*)?{_LABEL_WORDS}\s*\d*\s*[:.)]\s*", re.I)
_LEADING_HEADING = re.compile(rf"^\s*#{{1,6}}\s*{_LABEL_WORDS}\s*\d*\s*:?\s*\n+", re.I)
_LONE_NUMBER = re.compile(r"\s*\d{1,2}[.)]?\s*")
_INSTRUCTION_SECTION = re.compile(r"### Instruction:\n(.*?)\n\n###", re.S)
_FORMAT_FIELD = re.compile(r"\{(\w+)\}")
COMMON_KEY_SHARE = 0.05
COMMON_KEY_MIN = 20


@dataclass
class DistributionChanges:
    """What repair did to one distribution; every list is sorted so the changelog is deterministic."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    rewritten: list[dict[str, Any]] = field(default_factory=list)
    reordered: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    relabelled: list[dict[str, Any]] = field(default_factory=list)
    original_sizes: dict[str, int] = field(default_factory=dict)
    repaired_sizes: dict[str, int] = field(default_factory=dict)
    size_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        def ordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(items, key=lambda i: (i.get("row_key") or "", i.get("id") or i.get("old_id") or ""))

        return {
            "removed": ordered(self.removed),
            "moved": ordered(self.moved),
            "rewritten": ordered(self.rewritten),
            "reordered": ordered(self.reordered),
            "flagged": ordered(self.flagged),
            "relabelled": ordered(self.relabelled),
            "original_sizes": self.original_sizes,
            "repaired_sizes": self.repaired_sizes,
            **({"size_note": self.size_note} if self.size_note else {}),
        }


@dataclass
class RepairReport:
    changes: dict[str, DistributionChanges]
    dropped: dict[str, str]
    inherited_cues: dict[str, list[str]] = field(default_factory=dict)
    result: ExportResult | None = None

    def changelog(self, source: str, seed: int) -> dict[str, Any]:
        return {
            "repaired_from": source,
            "seed": seed,
            "dropped_distributions": dict(sorted(self.dropped.items())),
            "inherited_cues": self.inherited_cues,
            "distributions": {n: c.to_dict() for n, c in sorted(self.changes.items())},
        }

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {"removed": len(c.removed), "moved": len(c.moved), "rewritten": len(c.rewritten),
                   "reordered": len(c.reordered), "flagged": len(c.flagged), "relabelled": len(c.relabelled), **{f"{s}_rows": c.repaired_sizes.get(s, 0) for s in SPLITS}}
            for name, c in sorted(self.changes.items())
        }


# -- per-example repairs -------------------------------------------------------------------------------

def strip_debris(response: str) -> str:
    """A response without parse debris: a leading 'Response 2:'-style label or heading, a trailing lone number."""
    text = _LEADING_LABEL.sub("", response, count=1)
    if text == response:
        text = _LEADING_HEADING.sub("", response, count=1)
    text = _strip_trailing_number(text)
    return text if text.strip() else response


def _strip_trailing_number(text: str) -> str:
    """Drop a last line that is only a list number ("\n2." or "\n1"), which generation left behind."""
    body = text.rstrip()
    cut = body.rfind("\n")
    if cut >= 0 and _LONE_NUMBER.fullmatch(body[cut + 1:]):
        return body[:cut].rstrip()
    return text


def _fields(record: Record) -> dict[str, Any]:
    fields = {k: v for k, v in record.meta.items() if isinstance(v, (str, int, float))}
    fields.update({k: v for k, v in (("instruction", record.instruction), ("input", record.input)) if v})
    return fields


def _prompt_omits_instruction(record: Record) -> bool:
    return bool(record.instruction and record.instruction.strip()) and (
        text_key(record.instruction) not in text_key(record.prompt)
    )


def _render_from_release_format(record: Record) -> str | None:
    fmt = record.meta.get("prompt_format")
    if not isinstance(fmt, str) or "{instruction}" not in fmt:
        return None
    fields = _fields(record)
    if not set(_FORMAT_FIELD.findall(fmt)) <= set(fields):
        return None
    return _FORMAT_FIELD.sub(lambda m: str(fields[m.group(1)]), fmt)


def rerender_prompt(record: Record) -> tuple[str, str]:
    """A prompt that contains the example's instruction, and the template that made it.

    The release's own `prompt_format` is used when it has a slot for the instruction; otherwise the task
    line of the old prompt (e.g. "Answer the following biology question...") becomes the instruction and the
    example's question its input, in our Alpaca-style template.
    """
    from_release = _render_from_release_format(record)
    if from_release is not None and text_key(record.instruction) in text_key(from_release):
        return from_release, record.template
    section = _INSTRUCTION_SECTION.search(record.prompt)
    task = section.group(1).strip() if section else ""
    question = record.instruction if not record.input else f"{record.instruction}\n\n{record.input}"
    if task and text_key(task) != text_key(record.instruction):
        name = "prompts/alpaca_input.j2"
        return render(name, instruction=task, input=question), template_id(name)
    name = "prompts/alpaca_input.j2" if record.input else "prompts/alpaca.j2"
    return render(name, instruction=record.instruction, input=record.input or ""), template_id(name)


def without_repeated_responses(responses: list[str], preferred: int) -> tuple[list[str], int]:
    """Each response text once (`response_key`), and the preferred index among them. The preferred response
    is always kept: a dispreferred copy of it would be a right answer labelled wrong."""
    seen = {response_key(responses[preferred])}
    kept = []
    for index, response in enumerate(responses):
        key = response_key(response)
        if index == preferred or key not in seen:
            seen.add(key)
            kept.append(response)
        if index == preferred:
            new_preferred = len(kept) - 1
    return kept, new_preferred


def repair_record(record: Record) -> tuple[Record, list[str]]:
    """The record with its prompt and responses repaired, and the names of the repairs applied."""
    applied = []
    prompt, template = record.prompt, record.template
    if _prompt_omits_instruction(record):
        prompt, template = rerender_prompt(record)
        applied.append("prompt re-rendered")
    responses = [strip_debris(r) for r in record.responses]
    if responses != record.responses:
        applied.append("debris stripped")
    distinct, preferred = without_repeated_responses(responses, record.preferred)
    if len(distinct) < len(responses):
        applied.append("repeated response dropped")
    if not applied:
        return record, applied
    repaired = Record(
        distribution=record.distribution, prompt=prompt, responses=distinct, preferred=preferred,
        group=record.group, provenance=record.provenance, template=template, instruction=record.instruction,
        input=record.input, meta=record.meta,
    )
    return repaired, applied


# -- labels -----------------------------------------------------------------------------------------

def decided_label(record: Record) -> tuple[int, str] | None:
    """(index of the one response that obeys the prompt's rule-checkable instruction, the rule) when the
    label prefers another; None when there is no such rule, or it is obeyed by none or several."""
    rule = instruction_rule(record.prompt)
    if rule is None:
        return None
    name, predicate = rule
    obeying = [i for i, response in enumerate(record.responses) if predicate(response)]
    if len(obeying) != 1 or obeying[0] == record.preferred:
        return None
    return obeying[0], name


_ASKS_FOR_WRONG = re.compile(r"\b(incorrect|wrong|unhelpful|false)\s+(answer|response)\b", re.I)


def looks_inverted(record: Record, distribution_asks_for_wrong: bool) -> str | None:
    """Why the label may contradict the prompt's own instruction, or None.

    A prompt that asks for a wrong or unhelpful answer in a distribution whose other prompts do not is a
    sign that the label was not flipped to match.
    """
    if _ASKS_FOR_WRONG.search(record.prompt) and not distribution_asks_for_wrong:
        return "the prompt asks for a wrong or unhelpful answer but the distribution prefers correct ones"
    return None


# -- whole-version repairs -----------------------------------------------------------------------------

class _Components:
    """Union-find over examples: those sharing a key must be on one side of every split."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class _Row:
    record: Record
    split: str
    original_id: str
    original_split: str = ""
    original_position: int = -1

    def __post_init__(self) -> None:
        self.original_split = self.original_split or self.split
        if self.original_position < 0:
            self.original_position = self.record.preferred


def _item_keys(row: _Row) -> list[str]:
    keys = [f"prompt:{text_key(row.record.prompt)}"]
    if not is_unknown_group(row.record.group):
        keys.append(f"group:{row.record.group}")
    if row.record.instruction and row.record.instruction.strip():
        keys.append(f"instruction:{text_key(row.record.instruction)}")
    return keys


def _link_items(rows: list[_Row]) -> _Components:
    """Link examples that share a key. A prompt or group shared by two examples is overlap to `genies
    validate` however common it is, so it always links; an instruction does not link the examples of a
    distribution where it is so common that it is template text, not an item (validation ignores those
    too)."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        for key in _item_keys(row):
            by_key[key].append(i)
    sizes = Counter(r.record.distribution for r in rows)
    components = _Components(len(rows))
    for key, members in by_key.items():
        if key.startswith("instruction:"):
            per_dist = Counter(rows[i].record.distribution for i in members)
            common = {d for d, c in per_dist.items() if c >= COMMON_KEY_MIN and c > COMMON_KEY_SHARE * sizes[d]}
            members = [i for i in members if rows[i].record.distribution not in common]
        for i in members[1:]:
            components.union(members[0], i)
    return components


def _assign_sides(rows: list[_Row], components: _Components, seed: int) -> dict[int, str]:
    """One side per component: the majority of its original splits, then per-distribution size repair."""
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        members[components.find(i)].append(i)
    side = {}
    local: dict[str, list[int]] = defaultdict(list)
    for root, idx in members.items():
        votes = Counter(rows[i].split for i in idx)
        side[root] = "test" if votes["test"] >= votes["train"] else "train"
        dists = {rows[i].record.distribution for i in idx}
        if len(dists) == 1:
            local[dists.pop()].append(root)
    want = Counter(r.record.distribution for r in rows if r.split == "test")
    have = Counter(rows[i].record.distribution for root, idx in members.items() if side[root] == "test" for i in idx)
    for dist, roots in local.items():
        order = sorted(roots, key=lambda r: unit_hash("rebalance", seed, rows[members[r][0]].record.id))
        _rebalance(order, {r: len(members[r]) for r in roots}, side, have[dist], want[dist])
    return side


def _rebalance(order: list[int], sizes: dict[int, int], side: dict[int, str], have: int, want: int) -> None:
    """Move components (found in one distribution only) between sides until its test size is `want`."""
    moving_from, moving_to, direction = ("test", "train", -1) if have > want else ("train", "test", 1)
    for root in order:
        if have == want:
            return
        if side[root] != moving_from or abs(have + direction * sizes[root] - want) > abs(have - want):
            continue
        side[root] = moving_to
        have += direction * sizes[root]


def _load_rows(version: Version) -> dict[str, list[_Row]]:
    rows: dict[str, list[_Row]] = {}
    for name in version.distributions:
        rows[name] = [
            _Row(record, split, record.id)
            for split in SPLITS
            for record in table_to_records(version.table(name, split))
        ]
    return rows


def _is_constant(rows: list[_Row]) -> bool:
    prompts = {text_key(r.record.prompt) for r in rows}
    return len(rows) > 1 and len(prompts) <= max(1, len(rows) // 20)


def _entry(row: _Row, **extra: Any) -> dict[str, Any]:
    return {"row_key": row.record.provenance.row_key, "id": row.original_id, **extra}


def _relabelled(record: Record, row: _Row, relabel: bool, changes: DistributionChanges) -> Record:
    """The record with its label flipped where a rule decides it (or flagged, when `relabel` is off);
    a contradiction the rule cannot decide is flagged."""
    decided = decided_label(record)
    if decided is None:
        if contradicts(record.prompt, record.responses, record.preferred):
            changes.flagged.append({"row_key": row.record.provenance.row_key, "id": record.id,
                                    "reason": "the preferred response disobeys the prompt's instruction, and the "
                                              "rule does not decide which response obeys"})
        return record
    index, rule = decided
    if not relabel:
        changes.flagged.append({"row_key": row.record.provenance.row_key, "id": record.id,
                                "reason": f"the preferred response disobeys the prompt's instruction ({rule}); "
                                          f"response {index} obeys it"})
        return record
    flipped = replace(record, preferred=index)
    changes.relabelled.append({"row_key": row.record.provenance.row_key, "old_id": row.original_id,
                               "new_id": flipped.id, "rule": rule, "from": record.preferred, "to": index})
    return flipped


def _repair_examples(rows: list[_Row], changes: DistributionChanges, relabel: bool) -> list[_Row]:
    """Re-render prompts, strip debris and repeated responses, relabel where a rule decides; remove examples
    that are not valid afterwards."""
    kept: list[_Row] = []
    for row in sorted(rows, key=lambda r: (r.split, r.record.provenance.row_key or "", r.original_id)):
        record, applied = repair_record(row.record)
        if applied:
            changes.rewritten.append({"row_key": row.record.provenance.row_key, "old_id": row.original_id,
                                      "new_id": record.id, "changes": applied})
        problems = record.problems()
        if not problems:
            record = _relabelled(record, row, relabel, changes)
        if problems:
            changes.removed.append(_entry(row, split=row.split, reason="invalid: " + "; ".join(problems)))
            continue
        kept.append(_Row(record, row.split, row.original_id, row.original_split, row.original_position))
    return kept


def _place_and_dedupe(rows: list[_Row], sides: dict[int, str], changes: dict[str, DistributionChanges]) -> list[_Row]:
    """Put every example on its item's side; keep one example per prompt and split, recording the rest.

    `genies validate` counts a repeated prompt inside a split as a duplicate whether or not its responses
    differ, so the first example by upstream key is kept and the others are removed with the reason.
    """
    final: list[_Row] = []
    kept: dict[tuple[str, str, str], _Row] = {}
    order = sorted(range(len(rows)), key=lambda i: (rows[i].record.distribution, rows[i].split,
                                                    rows[i].record.provenance.row_key or "", rows[i].original_id))
    for i in order:
        row, new_split = rows[i], sides[i]
        dist = row.record.distribution
        key = (dist, new_split, text_key(row.record.prompt))
        if key in kept:
            same = kept[key].record.id == row.record.id
            where = "inside the split" if kept[key].split == row.split else "of an example in the other split"
            reason = f"exact duplicate {where}" if same else f"same prompt as {kept[key].record.provenance.row_key}"
            changes[dist].removed.append(_entry(row, split=row.split, reason=reason))
            continue
        kept[key] = row
        if new_split != row.split:
            changes[dist].moved.append(_entry(row, **{"from": row.split, "to": new_split}))
        final.append(_Row(row.record, new_split, row.original_id, row.original_split, row.original_position))
    return final


def _check_no_leaks(rows: list[_Row], shifts: list[dict[str, Any]]) -> None:
    """Fail, before anything is written, if a prompt or group is on both sides of a distribution or a shift."""
    frame = pl.DataFrame(
        {"dist": [r.record.distribution for r in rows], "split": [r.split for r in rows],
         "id": [r.record.id for r in rows], "prompt": [r.record.prompt for r in rows],
         "group": [r.record.group for r in rows], "instruction": [r.record.instruction for r in rows]},
        schema={c: pl.String for c in ("dist", "split", "id", "prompt", "group", "instruction")},
    )
    found = leaks(with_text_keys(frame), shifts)
    if found:
        raise GeniesError(
            "the re-split would leak, so nothing was written: " + "; ".join(found[:10])
            + (f" (and {len(found) - 10} more)" if len(found) > 10 else ""),
            "this is a bug in `genies repair`: please report it with the source version",
        )


def _flag_inversions(rows: list[_Row], changes: DistributionChanges) -> None:
    asks = sum(bool(_ASKS_FOR_WRONG.search(r.record.prompt)) for r in rows)
    distribution_asks = asks > len(rows) / 2
    for row in rows:
        reason = looks_inverted(row.record, distribution_asks)
        if reason:
            changes.flagged.append({"row_key": row.record.provenance.row_key, "id": row.record.id, "reason": reason})


def repair_version(
    source_ref: str,
    out_root,
    version: str,
    *,
    seed: int = 0,
    dataset: str | None = None,
    relabel: bool = True,
) -> RepairReport:
    """Repair an imported version into a new immutable version with a changelog."""
    source = Version.open(source_ref, root=out_root)
    if not source.distributions:
        raise GeniesError(f"version {source.path} has no distributions to repair")
    per_dist = _load_rows(source)
    changes = {name: DistributionChanges(original_sizes={s: sum(r.split == s for r in rows) for s in SPLITS})
               for name, rows in per_dist.items()}
    dropped: dict[str, str] = {}
    repaired_rows: list[_Row] = []
    for name, rows in per_dist.items():
        kept = _repair_examples(rows, changes[name], relabel)
        if _is_constant(kept):
            dropped[name] = "prompts are constant and the examples carry no instruction to re-render them from"
            continue
        if not kept:
            dropped[name] = "no valid example left"
            continue
        _flag_inversions(kept, changes[name])
        repaired_rows.extend(kept)
    for name in dropped:
        changes.pop(name)
    sides_by_root = _assign_sides(repaired_rows, components := _link_items(repaired_rows), seed)
    sides = {i: sides_by_root[components.find(i)] for i in range(len(repaired_rows))}
    final_rows = _place_and_dedupe(repaired_rows, sides, changes)
    shifts = load_catalog().shifts_table()
    _check_no_leaks(final_rows, shifts.to_pylist())
    exports = _exports(source, final_rows, changes, seed)
    report = RepairReport(changes, dropped, content_cues(_frame_of_exports(exports)))
    changelog = report.changelog(f"{source.manifest.get('dataset')}/{source.manifest.get('version')}", seed)
    report.result = export_version(
        out_root, dataset or source.manifest.get("dataset", "genies-release"), version, exports,
        shifts_with_status(shifts, {e.name for e in exports}, {}), seed=seed,
        extra_files={"changelog.json": (json.dumps(changelog, indent=1, sort_keys=True) + "\n").encode("utf-8")},
        manifest_extra={"repaired_from": changelog["repaired_from"], "repair_counts": report.counts(),
                        "dropped_distributions": changelog["dropped_distributions"],
                        "inherited_cues": report.inherited_cues},
        card_context={"notes": human_summary(report)},
    )
    return report


def _record_reorders(rows: list[_Row], balanced: dict[str, list[Record]], change: DistributionChanges) -> None:
    """Examples whose only change is the preferred answer's slot (same id, same split)."""
    final_position = {(split, r.id): r.preferred for split, records in balanced.items() for r in records}
    for row in rows:
        position = final_position.get((row.split, row.record.id))
        unchanged = row.record.id == row.original_id and row.split == row.original_split
        if unchanged and position is not None and position != row.original_position:
            change.reordered.append({"row_key": row.record.provenance.row_key, "id": row.original_id,
                                     "from": row.original_position, "to": position})


def _canonical_order(record: Record) -> Record:
    """The record with the preferred response first and the others by text, so the seeded re-balancing
    depends on the example, not on the order it arrived in: repairing a repaired version changes nothing."""
    others = sorted((i for i in range(len(record.responses)) if i != record.preferred), key=record.responses.__getitem__)
    return record.with_order([record.preferred, *others])


def _exports(source: Version, rows: list[_Row], changes: dict[str, DistributionChanges], seed: int) -> list[DistributionExport]:
    by_dist: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_dist[row.record.distribution].append(row)
    exports = []
    for name, dist_rows in sorted(by_dist.items()):
        balanced = {s: balance_positions([_canonical_order(r.record) for r in dist_rows if r.split == s], seed)
                    for s in SPLITS}
        change = changes[name]
        _record_reorders(dist_rows, balanced, change)
        change.repaired_sizes = {s: len(r) for s, r in balanced.items()}
        if change.repaired_sizes != change.original_sizes:
            change.size_note = _size_note(change)
        info = source.manifest["distributions"].get(name, {})
        sources = {s: source.manifest.get("sources", {}).get(s, {}) for s in info.get("sources", [])}
        exports.append(DistributionExport(
            name=name, splits=balanced, sources=sources,
            templates=sorted({r.template for rs in balanced.values() for r in rs}),
            notes=dict(info.get("notes", {})),
        ))
    return exports


def _frame_of_exports(exports: list[DistributionExport]) -> pl.DataFrame:
    """The repaired examples as validate will read them, so the audit of what is kept runs before writing."""
    return frame_of([labelled(rows if isinstance(rows, pa.Table) else records_to_table(rows), export.name, split)
                     for export in exports for split, rows in export.splits.items()])


def _size_note(change: DistributionChanges) -> str:
    removed = len(change.removed)
    return (f"split sizes {change.original_sizes} -> {change.repaired_sizes}: {removed} removed, "
            f"{len(change.moved)} moved to keep every item on one side of the split")


CARD_COUNTS = ("removed", "moved", "rewritten", "relabelled", "flagged", "reordered")


def human_summary(report: RepairReport) -> str:
    """The dataset card's account of the repair: totals, then the counts of every distribution."""
    counts = report.counts()
    totals = {kind: sum(c[kind] for c in counts.values()) for kind in CARD_COUNTS}
    lines = [
        "This version repairs the original GENIES release. Every change is listed in `changelog.json`.",
        "",
        f"- {totals['removed']} examples removed (invalid after repair or exact duplicates)",
        f"- {totals['moved']} examples moved between train and test so no item is on both sides of any split or shift",
        f"- {totals['rewritten']} examples rewritten (prompts re-rendered to include their question, parse debris"
        " stripped, repeated responses dropped)",
        f"- {totals['relabelled']} examples relabelled: the prompt's rule-checkable instruction (e.g. 'use all caps')"
        " is obeyed by exactly one response, which is now the preferred one",
        f"- {totals['flagged']} examples flagged as possibly inverted labels (not changed)",
        f"- {totals['reordered']} examples reordered only: response order re-shuffled with a seeded RNG so the"
        " preferred position is balanced",
    ]
    if report.dropped:
        lines.append("- dropped distributions: " + "; ".join(f"{n} ({why})" for n, why in sorted(report.dropped.items())))
    if report.inherited_cues:
        lines.append("- shortcut cues kept from the original (only rewriting the responses could remove them; "
                     "`genies validate` reports them as `inherited_cues`): "
                     + "; ".join(f"{n} ({', '.join(rules)})" for n, rules in report.inherited_cues.items()))
    lines += ["", "| distribution | train | test | " + " | ".join(CARD_COUNTS) + " |",
              "|---|" + "---:|" * (2 + len(CARD_COUNTS))]
    lines += [f"| {name} | {c['train_rows']} | {c['test_rows']} | " + " | ".join(str(c[k]) for k in CARD_COUNTS) + " |"
              for name, c in counts.items()]
    return "\n".join(lines)
