"""Normalizers: from upstream files (one `Part` per file) to the documented raw table of each source.

Every table starts with `row_key`, the stable upstream key distribution builders put in `group` and
provenance. Column names and types are the raw-table contract of docs/sources.md; a row the upstream
got wrong (an answer key that names no option, a solution without a boxed answer) is dropped and
counted in `Rejects` with its reason. Bump a spec's `normalizer_version` when its normalizer's output
changes, so cached tables are rebuilt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from builders.errors import GeniesError
from builders.registries import Registry
from builders.sources.mojibake import repair
from builders.sources.reading import Part, Rejects
from builders.text import last_boxed

NormalizerFn = Callable[[list[Part], Rejects], pa.Table]


@dataclass(frozen=True)
class Normalizer:
    """A function from upstream files to a raw table, and the schema that table is cast to."""

    fn: NormalizerFn
    schema: pa.Schema


NORMALIZERS: Registry[Normalizer] = Registry("normalizer")

_STR, _I32, _F64, _I64 = pa.string(), pa.int32(), pa.float64(), pa.int64()
_STRS = pa.list_(pa.string())


def normalizer(name: str, schema: pa.Schema) -> Callable[[NormalizerFn], NormalizerFn]:
    """Register a normalizer and the schema of the table it returns."""

    def register(fn: NormalizerFn) -> NormalizerFn:
        NORMALIZERS.add(name, Normalizer(fn, schema), fn.__module__)
        return fn

    return register


def normalize(name: str, parts: list[Part], rejects: Rejects) -> pa.Table:
    found = NORMALIZERS.lookup(name)
    return found.fn(parts, rejects).cast(found.schema)


def _rows(part: Part) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index in file, row) for every row of a part, streamed batch by batch and decoded as `datasets` would."""
    decode = _decoder(part.table.schema)
    index = 0
    for batch in part.table.to_batches():
        for row in batch.to_pylist():
            yield index, decode(row) if decode else row
            index += 1


def _decoder(schema: pa.Schema) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """`datasets` stores ragged nested values (e.g. entries with and without `source`) as JSON text."""
    if b"huggingface" not in (schema.metadata or {}):
        return None
    from datasets import Features
    from datasets.features.features import require_decoding

    features = Features.from_arrow_schema(schema)
    return features.decode_example if any(map(require_decoding, features.values())) else None


def _table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _path(part: Part) -> PurePosixPath:
    return PurePosixPath(part.relpath)


def _missing(row: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first required field that is absent or empty, if any."""
    return next((f for f in fields if row.get(f) in (None, "")), None)


MMLU_SCHEMA = pa.schema(
    [("row_key", _STR), ("split", _STR), ("subject", _STR), ("question", _STR), ("choices", _STRS), ("answer", _I32)]
)


@normalizer("mmlu", MMLU_SCHEMA)
def normalize_mmlu(parts: list[Part], rejects: Rejects) -> pa.Table:
    """hendrycks/test CSVs: no header; question, four options, answer letter; subject = file name.

    Some questions were saved in a broken encoding upstream ("manÕs", "shareholder‚Äôs"): the text is
    repaired here (builders.sources.mojibake), so every distribution made from MMLU shows it as written.
    """
    rows = []
    for part in parts:
        split = _path(part).parent.name
        subject = _path(part).stem.removesuffix(f"_{split}")
        for index, row in _rows(part):
            key = f"{split}/{subject}/{index}"
            choices = [None if row[letter] is None else repair(row[letter]) for letter in "ABCD"]
            if row["answer"] not in ("A", "B", "C", "D") or not row["question"] or None in choices:
                rejects.add(key, "answer is not one of A-D or a field is empty")
                continue
            rows.append(
                {
                    "row_key": key,
                    "split": split,
                    "subject": subject,
                    "question": repair(row["question"]),
                    "choices": choices,
                    "answer": "ABCD".index(row["answer"]),
                }
            )
    return _table(MMLU_SCHEMA, rows)


MULTIPLE_CHOICE_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("split", _STR),
        ("question", _STR),
        ("labels", _STRS),
        ("choices", _STRS),
        ("answer_key", _STR),
        ("answer", _I32),
    ]
)


def _multiple_choice(
    parts: list[Part], rejects: Rejects, split_of: Callable[[str], str], answers_required: bool
) -> pa.Table:
    """ARC and CommonsenseQA share a layout: id, question.stem, question.choices[label,text], answerKey."""
    rows = []
    for part in parts:
        split = split_of(_path(part).stem)
        for index, row in _rows(part):
            key = row.get("id") or f"{part.relpath}:{index}"
            question = row.get("question") or {}
            labels = [c["label"] for c in question.get("choices") or []]
            answer_key = row.get("answerKey") or None
            if not question.get("stem") or len(labels) < 2:
                rejects.add(key, "question stem or choices missing")
                continue
            if (answer_key is None and answers_required) or (answer_key is not None and answer_key not in labels):
                rejects.add(key, "answerKey names no choice")
                continue
            rows.append(
                {
                    "row_key": key,
                    "split": split,
                    "question": question["stem"],
                    "labels": labels,
                    "choices": [c["text"] for c in question["choices"]],
                    "answer_key": answer_key,
                    "answer": None if answer_key is None else labels.index(answer_key),
                }
            )
    return _table(MULTIPLE_CHOICE_SCHEMA, rows)


@normalizer("arc", MULTIPLE_CHOICE_SCHEMA)
def normalize_arc(parts: list[Part], rejects: Rejects) -> pa.Table:
    """ARC JSONL: split from the file name (ARC-Easy-Train -> train)."""
    return _multiple_choice(parts, rejects, lambda stem: stem.rsplit("-", 1)[-1].lower(), answers_required=True)


@normalizer("commonsense_qa", MULTIPLE_CHOICE_SCHEMA)
def normalize_commonsense_qa(parts: list[Part], rejects: Rejects) -> pa.Table:
    """CommonsenseQA rand split JSONL: the test file has no answers, so answer_key/answer may be null."""
    return _multiple_choice(parts, rejects, lambda stem: stem.split("_", 1)[0], answers_required=False)


TRUTHFULQA_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("type", _STR),
        ("category", _STR),
        ("question", _STR),
        ("best_answer", _STR),
        ("correct_answers", _STRS),
        ("incorrect_answers", _STRS),
        ("source", _STR),
    ]
)


def _answer_list(text: str | None) -> list[str]:
    return [a.strip() for a in (text or "").split(";") if a.strip()]


@normalizer("truthfulqa", TRUTHFULQA_SCHEMA)
def normalize_truthfulqa(parts: list[Part], rejects: Rejects) -> pa.Table:
    """TruthfulQA.csv: answer lists are joined by "; "; row_key is the 0-based row in the CSV."""
    rows = []
    for part in parts:
        for index, row in _rows(part):
            key = str(index)
            correct, incorrect = _answer_list(row["Correct Answers"]), _answer_list(row["Incorrect Answers"])
            if not row["Question"] or not row["Best Answer"] or not correct or not incorrect:
                rejects.add(key, "question, best answer or an answer list is empty")
                continue
            rows.append(
                {
                    "row_key": key,
                    "type": row["Type"],
                    "category": row["Category"],
                    "question": row["Question"],
                    "best_answer": row["Best Answer"],
                    "correct_answers": correct,
                    "incorrect_answers": incorrect,
                    "source": row["Source"],
                }
            )
    return _table(TRUTHFULQA_SCHEMA, rows)


PERSONA_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("behavior", _STR),
        ("question", _STR),
        ("statement", _STR),
        ("answer_matching_behavior", _STR),
        ("answer_not_matching_behavior", _STR),
        ("label_confidence", _F64),
    ]
)
ADVANCED_AI_RISK_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("collection", _STR),
        ("behavior", _STR),
        ("question", _STR),
        ("answer_matching_behavior", _STR),
        ("answer_not_matching_behavior", _STR),
    ]
)
_EVAL_FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


def _anthropic_table(parts: list[Part], rejects: Rejects, schema: pa.Schema, with_collection: bool) -> pa.Table:
    """Vectorized (133k persona rows): label columns from the path, rows lacking a text field rejected."""
    tables = []
    for part in parts:
        behavior, collection = _path(part).stem, _path(part).parent.name
        prefix = f"{collection}/{behavior}" if with_collection else behavior
        table = _with_columns(part.table, schema)
        keys = pa.array([f"{prefix}/{index}" for index in range(table.num_rows)], _STR)
        complete = _nonempty_text(table, _EVAL_FIELDS)
        for key in keys.filter(pc.invert(complete)).to_pylist():
            rejects.add(key, "question or an answer is missing or empty")
        labels = {
            "row_key": keys,
            "collection": pa.array([collection] * table.num_rows, _STR),
            "behavior": pa.array([behavior] * table.num_rows, _STR),
        }
        columns = [labels[name] if name in labels else table[name] for name in schema.names]
        tables.append(pa.Table.from_arrays(columns, schema=schema).filter(complete))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _with_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with every field of `schema` it has cast to its type, and null columns for the others."""
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
        elif table.schema.field(field.name).type != field.type:
            table = table.set_column(
                table.column_names.index(field.name), field.name, table[field.name].cast(field.type)
            )
    return table


def _nonempty_text(table: pa.Table, fields: tuple[str, ...]) -> pa.ChunkedArray:
    """A mask of rows where every field is a non-empty string."""
    checks = [pc.fill_null(pc.greater(pc.utf8_length(table[f]), 0), False) for f in fields]
    mask = checks[0]
    for check in checks[1:]:
        mask = pc.and_(mask, check)
    return mask


@normalizer("anthropic_persona", PERSONA_SCHEMA)
def normalize_anthropic_persona(parts: list[Part], rejects: Rejects) -> pa.Table:
    """anthropics/evals persona/*.jsonl: behaviour = file stem; label_confidence kept as published."""
    return _anthropic_table(parts, rejects, PERSONA_SCHEMA, with_collection=False)


@normalizer("anthropic_advanced_ai_risk", ADVANCED_AI_RISK_SCHEMA)
def normalize_anthropic_advanced_ai_risk(parts: list[Part], rejects: Rejects) -> pa.Table:
    """anthropics/evals advanced-ai-risk/<collection>/<behaviour>.jsonl."""
    return _anthropic_table(parts, rejects, ADVANCED_AI_RISK_SCHEMA, with_collection=True)


WINOGENDER_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("sentence", _STR),
        ("occupation", _STR),
        ("participant", _STR),
        ("answer", _I32),
        ("gender", _STR),
    ]
)
_GENDERS = ("male", "female", "neutral")


@normalizer("winogender", WINOGENDER_SCHEMA)
def normalize_winogender(parts: list[Part], rejects: Rejects) -> pa.Table:
    """all_sentences.tsv: the sentid `occupation.participant.answer.gender.txt` carries every label."""
    rows = []
    for part in parts:
        for _, row in _rows(part):
            key = row["sentid"]
            fields = key.split(".")
            if len(fields) != 5 or fields[2] not in ("0", "1") or fields[3] not in _GENDERS or not row["sentence"]:
                rejects.add(key, "sentid is not occupation.participant.answer.gender.txt or sentence empty")
                continue
            occupation, participant, answer, gender, _ = fields
            rows.append(
                {
                    "row_key": key,
                    "sentence": row["sentence"],
                    "occupation": occupation,
                    "participant": participant,
                    "answer": int(answer),
                    "gender": gender,
                }
            )
    return _table(WINOGENDER_SCHEMA, rows)


MATH_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("split", _STR),
        ("subject", _STR),
        ("level", _I32),
        ("problem", _STR),
        ("solution", _STR),
        ("answer", _STR),
    ]
)


def _math_level(level: str | None) -> int | None:
    digits = (level or "").removeprefix("Level ").strip()
    return int(digits) if digits.isdigit() else None


@normalizer("math", MATH_SCHEMA)
def normalize_math(parts: list[Part], rejects: Rejects) -> pa.Table:
    """MATH: one JSON per problem at <split>/<subject>/<n>.json (the `_file` column); "Level ?" -> null level."""
    rows = []
    for part in parts:
        for _, row in _rows(part):
            split, subject, name = PurePosixPath(row["_file"]).parts[-3:]
            key = f"{split}/{subject}/{name}"
            if _missing(row, ("problem", "solution")):
                rejects.add(key, "problem or solution is empty")
                continue
            answer = last_boxed(row["solution"])
            if answer is None:
                rejects.add(key, "solution has no \\boxed{} answer")
                continue
            rows.append(
                {
                    "row_key": key,
                    "split": split,
                    "subject": subject,
                    "level": _math_level(row.get("level")),
                    "problem": row["problem"],
                    "solution": row["solution"],
                    "answer": answer,
                }
            )
    return _table(MATH_SCHEMA, rows)


QUOTES_SCHEMA = pa.schema([("row_key", _STR), ("quote", _STR), ("author", _STR)])


@normalizer("quotes", QUOTES_SCHEMA)
def normalize_quotes(parts: list[Part], rejects: Rejects) -> pa.Table:
    """quotes.json: row_key is the 0-based position; texts as published, a blank author becomes null."""
    rows = []
    for part in parts:
        for index, row in _rows(part):
            quote, author = row.get("quoteText") or "", row.get("quoteAuthor") or ""
            if not quote.strip():
                rejects.add(str(index), "quoteText is empty")
                continue
            rows.append({"row_key": str(index), "quote": quote, "author": author if author.strip() else None})
    return _table(QUOTES_SCHEMA, rows)


ALPACA_SCHEMA = pa.schema([("row_key", _STR), ("instruction", _STR), ("input", _STR), ("output", _STR)])


@normalizer("alpaca_cleaned", ALPACA_SCHEMA)
def normalize_alpaca_cleaned(parts: list[Part], rejects: Rejects) -> pa.Table:
    """alpaca_data_cleaned.json: instruction, input (may be empty), output; row_key = position."""
    rows = []
    for part in parts:
        for index, row in _rows(part):
            if _missing(row, ("instruction", "output")):
                rejects.add(str(index), "instruction or output is empty")
                continue
            rows.append(
                {
                    "row_key": str(index),
                    "instruction": row["instruction"],
                    "input": row.get("input") or "",
                    "output": row["output"],
                }
            )
    return _table(ALPACA_SCHEMA, rows)


COMPARISON_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("user_input", _STR),
        ("responses", _STRS),
        ("scores", pa.list_(_F64)),
        ("response_sources", _STRS),
    ]
)


def _scored_responses(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The entries when each has a response string and a numeric score, else None."""
    entries = entries or []
    valid = all(isinstance(e.get("response"), str) and isinstance(e.get("score"), (int, float)) for e in entries)
    return entries if valid and entries else None


@normalizer("gpt4_llm_comparison", COMPARISON_SCHEMA)
def normalize_gpt4_llm_comparison(parts: list[Part], rejects: Rejects) -> pa.Table:
    """comparison_data_v2.json: each instruction's responses with their GPT-4 scores (1-10) and source model."""
    rows = []
    for part in parts:
        for index, row in _rows(part):
            entries = _scored_responses(row.get("responses_and_scores"))
            if not row.get("user_input") or entries is None:
                rejects.add(str(index), "user_input empty or a response lacks a text or numeric score")
                continue
            rows.append(
                {
                    "row_key": str(index),
                    "user_input": row["user_input"],
                    "responses": [e["response"] for e in entries],
                    "scores": [float(e["score"]) for e in entries],
                    "response_sources": [e.get("source") for e in entries],
                }
            )
    return _table(COMPARISON_SCHEMA, rows)


SHP_COLUMNS = [
    ("post_id", _STR),
    ("domain", _STR),
    ("upvote_ratio", _F64),
    ("history", _STR),
    ("c_root_id_A", _STR),
    ("c_root_id_B", _STR),
    ("created_at_utc_A", _I64),
    ("created_at_utc_B", _I64),
    ("score_A", _I64),
    ("score_B", _I64),
    ("human_ref_A", _STR),
    ("human_ref_B", _STR),
    ("labels", _I64),
    ("seconds_difference", _F64),
    ("score_ratio", _F64),
]
SHP_SCHEMA = pa.schema([("row_key", _STR), ("split", _STR), *SHP_COLUMNS])


@normalizer("shp", SHP_SCHEMA)
def normalize_shp(parts: list[Part], rejects: Rejects) -> pa.Table:
    """SHP <domain>/<split>.json: columns as upstream; row_key = post_id/c_root_id_A/c_root_id_B."""
    tables = []
    upstream = pa.schema(SHP_COLUMNS)
    for part in parts:
        missing = sorted(set(upstream.names) - set(part.table.column_names))
        if missing:
            raise GeniesError(
                f"SHP file {part.relpath} lacks columns {', '.join(missing)}", "restore the original file"
            )
        table = part.table.select(upstream.names).cast(upstream)
        key = pc.binary_join_element_wise(table["post_id"], table["c_root_id_A"], table["c_root_id_B"], "/")
        split = pa.array([_path(part).stem] * len(table), _STR)
        tables.append(table.add_column(0, "split", split).add_column(0, "row_key", key))
    return pa.concat_tables(tables) if tables else SHP_SCHEMA.empty_table()


APPS_SCHEMA = pa.schema(
    [
        ("row_key", _STR),
        ("split", _STR),
        ("problem_id", _I64),
        ("question", _STR),
        ("solutions", _STRS),
        ("input_output", _STR),
        ("difficulty", _STR),
        ("url", _STR),
        ("starter_code", _STR),
    ]
)


def _decode_solutions(text: str | None) -> list[str] | None:
    """APPS stores solutions as a JSON-encoded list of strings; "" means none. None when malformed."""
    if not text:
        return []
    try:
        solutions = json.loads(text)
    except json.JSONDecodeError:
        return None
    return solutions if isinstance(solutions, list) and all(isinstance(s, str) for s in solutions) else None


@normalizer("apps", APPS_SCHEMA)
def normalize_apps(parts: list[Part], rejects: Rejects) -> pa.Table:
    """APPS train.jsonl/test.jsonl: solutions decoded; row_key = problem_id (unique within a split)."""
    rows = []
    for part in parts:
        split = _path(part).stem
        for _, row in _rows(part):
            key = str(row.get("problem_id"))
            solutions = _decode_solutions(row.get("solutions"))
            if row.get("problem_id") is None or not row.get("question") or solutions is None:
                rejects.add(
                    f"{split}/{key}", "problem_id or question missing, or solutions is not a JSON list of strings"
                )
                continue
            rows.append(
                {
                    "row_key": key,
                    "split": split,
                    "problem_id": row["problem_id"],
                    "question": row["question"],
                    "solutions": solutions,
                    "input_output": row.get("input_output") or "",
                    "difficulty": row.get("difficulty"),
                    "url": row.get("url"),
                    "starter_code": row.get("starter_code") or "",
                }
            )
    return _table(APPS_SCHEMA, rows)
