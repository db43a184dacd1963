"""Rule-based checks: parse debris in responses, broken text encodings, labels that contradict the
prompt, metadata naming sources the data does not use."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from builders.sources.mojibake import has_mojibake
from builders.validation.data import LoadedVersion
from builders.validation.registry import (
    MAX_EXAMPLES,
    Finding,
    check,
    flagged_per_distribution,
)

# Rust-regex patterns (polars), each naming one way generation or parsing leaves debris in a response.
DEBRIS_PATTERNS = {
    "label": r"(?i)^\s*\**\s*(response|answer|option|completion|candidate|output)\s*(\d+|[a-d])\s*\**\s*[:.)\]]",
    "heading": r"(?i)^\s*#{2,6}\s*(response|answer|output|solution|option|completion)\b",
    "template echo": r"(?i)(#{2,}\s*(instruction|input)\b|below is an instruction that describes a task)",
    "dangling number": r"\n\s*\d{1,2}[.)]?\s*$",
    "lone list number": r"^\s*1[.)]\s",
}
SECOND_LIST_ITEM = r"(^|\s)2[.)]\s"
MAX_SOURCE_NAME_CHARS = 60


def debris_kinds(column: pl.Expr) -> dict[str, pl.Expr]:
    kinds = {kind: column.str.contains(pattern) for kind, pattern in DEBRIS_PATTERNS.items()}
    kinds["lone list number"] = kinds["lone list number"] & ~column.str.contains(SECOND_LIST_ITEM)
    return kinds


@check("parse_debris", "warning", "responses free of leftovers of parsing: 'Response 2:' labels, '### Answer' "
       "headings, echoed prompt templates, a dangling next-item number, a lone '1.' list marker")
def parse_debris(loaded: LoadedVersion) -> list[Finding]:
    exploded = loaded.frame.select("dist", "id", text=pl.col("responses")).explode("text")
    kinds = debris_kinds(pl.col("text"))
    flagged = exploded.with_columns(**{k: v.fill_null(False) for k, v in kinds.items()}).group_by("dist", "id").agg(
        pl.col(list(kinds)).any()
    ).filter(pl.any_horizontal(list(kinds)))
    totals = dict(loaded.frame.group_by("dist").len().iter_rows())
    findings = []
    for (dist,), rows in sorted(flagged.group_by("dist"), key=lambda item: item[0]):
        detail = ", ".join(f"{kind}: {int(rows[kind].sum())}" for kind in kinds if rows[kind].sum())
        findings.append(Finding(dist, rows.height, totals[dist], sorted(rows["id"].to_list())[:MAX_EXAMPLES], detail))
    return findings


@check("mojibake", "warning", "prompts and responses free of text saved in a broken encoding upstream "
       "('manÕs', 'rÃ©sumÃ©', 'shareholder‚Äôs'); builders repair it (builders/sources/mojibake.py)")
def mojibake(loaded: LoadedVersion) -> list[Finding]:
    texts = loaded.frame.select("dist", "id", text=pl.concat_list(pl.col("prompt"), pl.col("responses"))).explode("text")
    suspects = texts.filter(pl.col("text").str.contains(r"[^\x00-\x7F]"))
    broken = suspects.filter(pl.col("text").map_elements(has_mojibake, return_dtype=pl.Boolean))
    return flagged_per_distribution(loaded.frame, pl.col("id").is_in(broken["id"].implode()), "text in a broken encoding")


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text)


FORMAT_RULES: dict[str, Callable[[str], bool]] = {
    "use all caps": lambda t: bool(_words(t)) and t == t.upper(),
    "write in all lowercase": lambda t: bool(_words(t)) and t == t.lower(),
    "use commas": lambda t: "," in t,
    "use periods": lambda t: "." in t,
    "capitalize the first letter of each word": lambda t: all(w[0].isupper() for w in _words(t)),
    "capitalize the last letter of each word": lambda t: all(w[-1].isupper() for w in _words(t)),
}
_FORMAT_COMMAND = re.compile(
    r"(?i)(\bif you\s+)?\b(don't\s+|do not\s+|never\s+)?(" + "|".join(map(re.escape, FORMAT_RULES)) + r")\b"
)
_YES_NO_COMMAND = re.compile(r"(?i)\b(?:answer|respond|reply)(?: only)? with (?:a |an |just )?[\"']?(yes|no)\b")


def format_command(prompt: str) -> tuple[str, bool] | None:
    """The one formatting command a prompt gives (rule, negated), ignoring conditionals ("if you use...")."""
    commands = {(m.group(3).lower(), bool(m.group(2))) for m in _FORMAT_COMMAND.finditer(prompt) if not m.group(1)}
    return commands.pop() if len(commands) == 1 else None


def instruction_rule(prompt: str) -> tuple[str, Callable[[str], bool]] | None:
    """The prompt's rule-checkable instruction, if it has exactly one: its name ("use all caps", "do not use
    commas", "answer with yes") and a predicate saying whether a response obeys it."""
    command = format_command(prompt)
    if command is not None:
        rule, negated = FORMAT_RULES[command[0]], command[1]
        return ("do not " if negated else "") + command[0], lambda response: rule(response) != negated
    yes_no = {m.group(1).lower() for m in _YES_NO_COMMAND.finditer(prompt)}
    if len(yes_no) == 1:
        word = yes_no.pop()
        return f"answer with {word}", lambda response: response.strip().lower().startswith(word)
    return None


def obeys(prompt: str) -> Callable[[str], bool] | None:
    """A predicate saying whether a response obeys the prompt's rule-checkable instruction, if it has one."""
    rule = instruction_rule(prompt)
    return rule[1] if rule is not None else None


def contradicts(prompt: str, responses: list[str], preferred: int) -> bool:
    """The preferred response disobeys the prompt's own instruction while another response obeys it."""
    predicate = obeys(prompt)
    if predicate is None or not 0 <= preferred < len(responses):
        return False
    others = (r for i, r in enumerate(responses) if i != preferred)
    return not predicate(responses[preferred]) and any(predicate(r) for r in others)


@check("label_contradictions", "warning", "the preferred response obeys the prompt's own rule-checkable "
       "instruction (formatting commands such as 'use all caps', 'answer with yes') when another response does")
def label_contradictions(loaded: LoadedVersion) -> list[Finding]:
    prefilter = "(?i)(" + "|".join(FORMAT_RULES) + r"|answer with|respond with|reply with)"
    candidates = loaded.frame.filter(pl.col("prompt").str.contains(prefilter))
    flagged: dict[str, list[str]] = {}
    for dist, rid, prompt, responses, preferred in candidates.select(
        "dist", "id", "prompt", "responses", "preferred"
    ).iter_rows():
        if responses and preferred is not None and contradicts(prompt, list(responses), preferred):
            flagged.setdefault(dist, []).append(rid)
    totals = dict(loaded.frame.group_by("dist").len().iter_rows())
    return [Finding(d, len(ids), totals[d], ids[:MAX_EXAMPLES], "preferred disobeys the prompt's instruction")
            for d, ids in sorted(flagged.items())]


def _name_key(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _release_metadata(entry: Any) -> Iterable[dict]:
    """Every dict holding `external_datasets` anywhere under a manifest entry (imported release metadata)."""
    if isinstance(entry, dict):
        if "external_datasets" in entry:
            yield entry
        for value in entry.values():
            yield from _release_metadata(value)
    elif isinstance(entry, list):
        for value in entry:
            yield from _release_metadata(value)


def declared_source_sets(entry: dict) -> list[set[str]]:
    """Each list of source names the manifest entry declares: its `sources` (less its `dedupe_sources`,
    read only to remove cross-upstream duplicates, so no row names them), and the `external_datasets` of
    imported release metadata. They are checked separately: an import declares its own source besides
    the release's list."""
    dedupe_only = {str(s) for s in entry.get("dedupe_sources", [])}
    declared = [{str(s) for s in entry.get("sources", [])} - dedupe_only]
    for metadata in _release_metadata(entry):
        declared.append({str(d.get("name")) for d in metadata.get("external_datasets") or [] if d.get("name")})
    return [names for names in declared if names]


def _meta_string_fields(meta: pl.Series) -> dict[str, pl.Series]:
    """The string fields of the `meta` JSON objects; none when meta is not uniformly JSON objects (the
    schema check is where malformed meta matters)."""
    try:
        decoded = meta.fill_null("{}").replace("", "{}").str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return {}
    if not isinstance(decoded.dtype, pl.Struct):
        return {}
    return {f"meta.{f.name}": decoded.struct.field(f.name) for f in decoded.dtype.fields if f.dtype == pl.String}


def data_fields(rows: pl.DataFrame) -> dict[str, dict[str, list[str]]]:
    """Values (with a few ids using each) of every field that could name a source: provenance.source and
    each string field of `meta`; long values (texts, code) cannot be source names and are skipped."""
    columns = {"provenance.source": rows["source"]} | _meta_string_fields(rows["meta"])
    fields = {}
    for name, values in columns.items():
        named = pl.DataFrame({"value": values, "id": rows["id"]}).filter(
            pl.col("value").str.len_chars() <= MAX_SOURCE_NAME_CHARS)
        grouped = named.group_by("value").agg(pl.col("id").head(MAX_EXAMPLES))
        fields[name] = dict(grouped.iter_rows())
    return fields


def _unused_sources(dist: str, declared: set[str], fields: dict[str, dict[str, list[str]]]) -> Finding | None:
    """Declared names vs the data field whose values name sources (the one sharing a value with them)."""
    declared_keys = {_name_key(n): n for n in declared}
    for field_name, values in sorted(fields.items()):
        value_keys = {_name_key(v): v for v in values}
        if not set(declared_keys) & set(value_keys):
            continue
        unused = sorted(declared_keys[k] for k in set(declared_keys) - set(value_keys))
        undeclared = sorted(value_keys[k] for k in set(value_keys) - set(declared_keys))
        if not unused:
            return None
        detail = f"metadata names {', '.join(unused)}, which no {field_name} value uses"
        if undeclared:
            detail += f"; the data uses undeclared {', '.join(undeclared)}"
        examples = [rid for value in undeclared for rid in values[value]]
        return Finding(dist, len(unused), len(declared), examples[:MAX_EXAMPLES], detail)
    return None


def _wrong_ids(dist: str, entry: dict) -> list[str]:
    return [str(m["id"]) for m in _release_metadata(entry) if m.get("id") not in (None, dist)]


@check("metadata_sources", "warning", "metadata names only sources the data uses (manifest `sources`, imported "
       "release `external_datasets`) and names its own distribution")
def metadata_sources(loaded: LoadedVersion) -> list[Finding]:
    frame = loaded.frame.select("dist", "id", "meta", source=pl.col("provenance").struct.field("source"))
    findings = []
    for dist, entry in sorted(loaded.manifest.get("distributions", {}).items()):
        declared_sets = declared_source_sets(entry)
        fields = data_fields(frame.filter(pl.col("dist") == dist)) if declared_sets else {}
        for declared in declared_sets:
            finding = _unused_sources(dist, declared, fields)
            if finding is not None:
                findings.append(finding)
        for wrong in _wrong_ids(dist, entry):
            findings.append(Finding(dist, 1, 1, [], f"release metadata id is {wrong!r}, not {dist!r}"))
    return findings
