"""The steps of the generic recipe. Each takes the candidates of one round and returns those it keeps.

A step either adds candidates (`generate`, `upstream`), asks the LLM for more of each candidate
(`worse`, `translate`), or filters (`check`, `quality`, `dedupe`, `balance_length`). Every candidate a
step drops is rejected through `RecipeRun.reject` with a labelled reason and its raw material, so a build
accounts for every candidate. New steps register with `@step("name")` and are named in a spec's `steps`.
Steps marked `final` run once over the whole pool after the last round (they need every candidate).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from builders.categories._sourced import text_key
from builders.llm import ChatRequest, ChatResult, JsonSchema
from builders.recipes.spec import Seed, Spec
from builders.registry import BuildContext
from builders.templating import render, template_id


@dataclass
class Candidate:
    """An item on its way to becoming a record: the preferred answer first, then the worse ones."""

    instruction: str
    input: str
    preferred: str
    group: str
    row_key: str
    source: str
    revision: str | None = None
    worse: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def responses(self) -> list[str]:
        return [self.preferred, *self.worse]

    def raw(self) -> dict[str, Any]:
        """What a reject keeps of the candidate."""
        return {"instruction": self.instruction, "input": self.input, "responses": self.responses,
                "group": self.group, "llm_requests": list(self.requests)}


@dataclass
class RecipeRun:
    """One distribution's run of its spec: the build context, the round in progress, what was kept so far."""

    ctx: BuildContext
    spec: Spec
    need: int = 0
    calls: int = 0
    accepted: list[Candidate] = field(default_factory=list)
    upstream_rows: list[dict[str, Any]] | None = None
    upstream_next: int = 0

    @property
    def planning(self) -> bool:
        """A dry run: placeholder answers flow through, so filters must not judge them."""
        return bool(getattr(self.ctx.llm, "dry_run", False))

    def budget(self, chars: int) -> int:
        """A completion cap for an answer of about `chars` characters of text: room for twice that (at ~3
        characters a token) plus the JSON around it, never above the spec's `max_tokens`. It bounds what a
        runaway answer costs and makes dry-run estimates close to real use."""
        return min(self.spec.max_tokens, JSON_OVERHEAD_TOKENS + math.ceil(2 * chars / 3))

    def reject(self, candidate: Candidate | None, step_name: str, reason: str, raw: Any = None) -> None:
        material = {"step": step_name, **(candidate.raw() if candidate else {})}
        if raw is not None:
            material["llm"] = raw
        self.ctx.reject(f"{step_name}: {reason}", material)

    def ask(self, step_name: str, template: str, variables: Sequence[dict[str, Any]], schema: dict[str, Any],
            samples: Sequence[int] | None = None, max_tokens: int | Sequence[int] | None = None,
            temperature: float | None = None) -> list[ChatResult]:
        """One chat request per entry of `variables` (rendered into `template`), sent as one batch.

        `max_tokens` is one cap for all requests or one per request (default: the spec's `max_tokens`).
        """
        samples = samples or [0] * len(variables)
        caps = max_tokens if isinstance(max_tokens, Sequence) else [max_tokens or self.spec.max_tokens] * len(variables)
        temperature = self.spec.temperature if temperature is None else temperature
        requests = [
            ChatRequest([{"role": "user", "content": render(template, **values)}], step=f"{self.spec.name}.{step_name}",
                        template=template_id(template), sample=sample, response_format=JsonSchema(schema),
                        params={"temperature": temperature, "max_tokens": cap})
            for values, sample, cap in zip(variables, samples, caps)
        ]
        return self.ctx.llm.run_batch(requests) if requests else []


JSON_OVERHEAD_TOKENS = 64
StepFn = Callable[[RecipeRun, list[Candidate]], list[Candidate]]


@dataclass(frozen=True)
class Step:
    name: str
    fn: StepFn
    final: bool = False


STEPS: dict[str, Step] = {}


def step(name: str, *, final: bool = False) -> Callable[[StepFn], StepFn]:
    """Register a recipe step under `name` (a spec lists it in `steps`)."""

    def register(fn: StepFn) -> StepFn:
        STEPS[name] = Step(name, fn, final)
        return fn

    return register


def _digest(text: str) -> str:
    return hashlib.sha256(text_key(text).encode("utf-8")).hexdigest()[:16]


def _strings(count: int) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "minItems": count, "maxItems": count}


ITEM_SCHEMA = {"type": "object", "required": ["instruction", "input", "answer"], "additionalProperties": False,
               "properties": {"instruction": {"type": "string"}, "input": {"type": "string"},
                              "answer": {"type": "string"}}}


def _seed_view(seed: Seed) -> dict[str, Any]:
    return {"instruction": seed.instruction, "input": seed.input, "answer": seed.answer, "worse": list(seed.worse)}


def _seeds_for(run: RecipeRun, key: object, count: int = 3) -> list[dict[str, Any]]:
    """A seeded choice of seed examples for one request: different calls see different examples."""
    seeds = list(run.spec.seeds)
    return [_seed_view(s) for s in run.ctx.rng("seeds", key).sample(seeds, min(count, len(seeds)))]


@step("generate")
def generate(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Write new items (instruction, optional input, preferred answer), few-shot from the spec's seeds."""
    spec = run.spec
    calls = math.ceil(run.need / spec.per_call)
    indices = list(range(run.calls, run.calls + calls))
    run.calls += calls
    schema = {"type": "object", "required": ["items"], "additionalProperties": False,
              "properties": {"items": {"type": "array", "items": ITEM_SCHEMA, "minItems": 1,
                                       "maxItems": spec.per_call}}}
    task = render(spec.template("task"))
    variables = [{"task": task, "seeds": _seeds_for(run, i), "count": spec.per_call, "batch": i + 1}
                 for i in indices]
    seed_chars = max(len(s.instruction) + len(s.input) + len(s.answer) for s in spec.seeds)
    cap = run.budget(spec.per_call * seed_chars)
    for index, result in zip(indices, run.ask("generate", "recipes/generate.j2", variables, schema, indices, cap)):
        if not result.ok:
            run.reject(None, "generate", result.reason or "no answer", {"request": result.key, "raw": result.raw})
            continue
        items = result.parsed["items"]
        if run.planning:
            items = items * spec.per_call
        for position, item in enumerate(items):
            row_key = f"{index}.{position}"
            group_text = item["instruction"] + (row_key if run.planning else "")
            candidates.append(Candidate(
                instruction=strip_debris(item["instruction"]), input=item["input"].strip(), preferred=item["answer"],
                group=f"{spec.name}:{_digest(group_text)}", row_key=row_key, source="llm", requests=[result.key],
            ))
    return candidates


def _upstream_rows(run: RecipeRun) -> list[dict[str, Any]]:
    """The upstream table's rows in a seeded order (read once per run)."""
    if run.upstream_rows is None:
        up = run.spec.upstream
        table = run.ctx.source(up.source)
        columns = [c for c in (up.key, up.instruction, up.input, up.answer) if c]
        rows = table.select(columns).to_pylist()
        run.ctx.rng("upstream").shuffle(rows)
        run.upstream_rows = rows
    return run.upstream_rows


@step("upstream")
def upstream(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Take the next items of an upstream table (e.g. Alpaca instructions and their reference answers)."""
    up = run.spec.upstream
    rows = _upstream_rows(run)
    revision = run.ctx.sources_used[up.source].revision
    added = 0
    while added < run.need and run.upstream_next < len(rows):
        row = rows[run.upstream_next]
        run.upstream_next += 1
        candidate = Candidate(
            instruction=str(row[up.instruction] or "").strip(), input=str(row.get(up.input) or "").strip() if up.input else "",
            preferred=str(row[up.answer] or ""), group=f"{up.source}:{row[up.key]}", row_key=str(row[up.key]),
            source=up.source, revision=revision,
        )
        if len(candidate.preferred) > up.max_answer_chars:
            run.reject(candidate, "upstream", f"reference answer longer than {up.max_answer_chars} characters")
            continue
        candidates.append(candidate)
        added += 1
    return candidates


def _answered(run: RecipeRun, step_name: str, candidates: list[Candidate], results: list[ChatResult]):
    """Pairs of (candidate, parsed answer) for the calls that succeeded; the others are rejected."""
    for candidate, result in zip(candidates, results):
        if not result.ok:
            run.reject(candidate, step_name, result.reason or "no answer", {"request": result.key, "raw": result.raw})
            continue
        candidate.requests.append(result.key)
        yield candidate, result.parsed


@step("worse")
def worse(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Ask for `responses - 1` subtly worse answers to each item, in the manner the spec's flaws template says."""
    spec = run.spec
    flaws = render(spec.template("flaws"))
    schema = {"type": "object", "required": ["answers"], "additionalProperties": False,
              "properties": {"answers": _strings(spec.worse_count)}}
    examples = [s for s in _seeds_for(run, "worse", 2) if s["worse"]]
    variables = [{"instruction": c.instruction, "input": c.input, "answer": c.preferred, "flaws": flaws,
                  "count": spec.worse_count, "examples": examples} for c in candidates]
    kept = []
    caps = [run.budget(spec.worse_count * _answer_chars(run, c)) for c in candidates]
    results = run.ask("worse", "recipes/worse.j2", variables, schema, max_tokens=caps)
    for candidate, parsed in _answered(run, "worse", candidates, results):
        candidate.worse = list(parsed["answers"])
        if run.planning:
            candidate.worse = [f"{text} {i}" for i, text in enumerate(candidate.worse)]
        kept.append(candidate)
    return kept


def _answer_chars(run: RecipeRun, candidate: Candidate) -> int:
    """The preferred answer's length; in a dry run (placeholder answers) the longest seed answer's."""
    if run.planning and run.spec.seeds:
        return max(len(s.answer) for s in run.spec.seeds)
    return len(candidate.preferred)


def _check_order(run: RecipeRun, candidate: Candidate) -> list[int]:
    order = list(range(len(candidate.responses)))
    run.ctx.rng("check", candidate.group).shuffle(order)
    return order


CHECK_TOKENS = 32  # {"best": N}, with room for a code fence


@step("check")
def check(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """A separate call, shown the responses in a seeded order, must pick the preferred one, else reject."""
    spec = run.spec
    orders = [_check_order(run, c) for c in candidates]
    choices = list(range(1, spec.responses + 1))
    schema = {"type": "object", "required": ["best"], "additionalProperties": False,
              "properties": {"best": {"type": "integer", "enum": choices}}}
    variables = [{"instruction": c.instruction, "input": c.input, "preferred_is": spec.preferred_is,
                  "responses": [c.responses[i] for i in order]} for c, order in zip(candidates, orders)]
    results = run.ask("check", "recipes/check.j2", variables, schema, max_tokens=CHECK_TOKENS, temperature=0.0)
    order_of = {id(c): order for c, order in zip(candidates, orders)}
    kept = []
    for candidate, parsed in _answered(run, "check", candidates, results):
        expected = order_of[id(candidate)].index(0) + 1
        if parsed["best"] != expected and not run.planning:
            run.reject(candidate, "check", f"re-identification failed: picked response {parsed['best']}, "
                                           f"the preferred was shown as {expected}")
            continue
        kept.append(candidate)
    return kept


@step("translate")
def translate(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Translate the instruction (and input) and/or every response into the spec's language."""
    spec = run.spec
    schema = {"type": "object", "required": ["translation"], "additionalProperties": False,
              "properties": {"translation": {"type": "string"}}}
    parts = [(c, part) for c in candidates for part in _translatable(c, spec.translate)]
    variables = [{"text": text, "language": spec.language} for _, (_, text) in parts]
    caps = [run.budget(len(text)) for _, (_, text) in parts]
    results = run.ask("translate", "recipes/translate.j2", variables, schema, max_tokens=caps)
    translated: dict[int, dict[str, str]] = {}
    failed: set[int] = set()
    for (candidate, (part, _)), result in zip(parts, results):
        if not result.ok:
            if id(candidate) not in failed:
                run.reject(candidate, "translate", result.reason or "no answer", {"request": result.key, "raw": result.raw})
            failed.add(id(candidate))
            continue
        candidate.requests.append(result.key)
        text = result.parsed["translation"]
        translated.setdefault(id(candidate), {})[part] = f"{text} {part}" if run.planning else text
    kept = []
    for candidate in candidates:
        if id(candidate) in failed:
            continue
        _apply_translation(candidate, translated.get(id(candidate), {}))
        candidate.meta["language"] = spec.language
        kept.append(candidate)
    return kept


def _translatable(candidate: Candidate, parts: Sequence[str]) -> list[tuple[str, str]]:
    """(slot, text) pairs to translate: `instruction`, `input` (when present), `response.<i>`."""
    slots = []
    if "instruction" in parts:
        slots.append(("instruction", candidate.instruction))
        if candidate.input:
            slots.append(("input", candidate.input))
    if "responses" in parts:
        slots.extend((f"response.{i}", text) for i, text in enumerate(candidate.responses))
    return slots


def _apply_translation(candidate: Candidate, texts: dict[str, str]) -> None:
    candidate.instruction = texts.get("instruction", candidate.instruction)
    candidate.input = texts.get("input", candidate.input)
    responses = [texts.get(f"response.{i}", text) for i, text in enumerate(candidate.responses)]
    candidate.preferred, candidate.worse = responses[0], responses[1:]


LABEL = r"(?:response|answer|option|choice|version|candidate|output|completion|example|instruction|question|task)"
LEADING_DEBRIS = re.compile(
    rf"^\s*(?:#+\s*[^\n]*{LABEL}[^\n]*\n+|\*\*\s*{LABEL}\s*\d*\s*:?\s*\*\*\s*:?\s*|{LABEL}\s*(?:\d{{1,2}}|[a-d])?\s*[:.)-]\s*"
    r"|\(?[a-dA-D]\)\s+)",
    re.IGNORECASE,
)
LEADING_NUMBER = re.compile(r"^\(?\d{1,2}[.)]\s+(?=\S)")
LIST_ITEM = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]\s")
INNER_DEBRIS = re.compile(r"(?im)^\s*(?:\*\*)?\s*(?:response|answer|completion|candidate)\s*\d+\s*(?:\*\*)?\s*:")
REFUSAL = re.compile(
    r"(?i)\bI(?:\s+(?:can(?:no|['’])t|won['’]t|will not|am not able to|am unable to)|['’]m (?:not able|unable) to)"
    r" (?:help|assist|provide|write|create|do|give|support|comply|share|fulfil)"
    r"|\bI must (?:decline|refuse)|\bas an AI(?: language model)?\b|\bI['’]m sorry, but I\b"
)


def strip_debris(text: str) -> str:
    """The response without the labels generation leaves in front of it ("Response 2:", "1.", "## Answer").

    A leading number is debris only when no other numbered item follows: "1. Rinse ... 2. Boil" is a list.
    """
    text = text.strip()
    while True:
        stripped = LEADING_DEBRIS.sub("", text, count=1).strip()
        after_number = LEADING_NUMBER.sub("", stripped, count=1)
        if after_number != stripped and not LIST_ITEM.search(after_number):
            stripped = after_number.strip()
        if stripped == text:
            return text
        text = stripped


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


def quality_problem(spec: Spec, instruction: str, responses: list[str]) -> str | None:
    """The first labelled reason these responses cannot make a record, or None."""
    q = spec.quality
    if not instruction.strip():
        return "empty instruction"
    lengths = [len(r) for r in responses]
    if min(lengths) == 0:
        return "empty response"
    if any(INNER_DEBRIS.search(r) for r in responses):
        return "parse debris: a response still holds a label such as 'Response 2:'"
    if min(lengths) < q.min_chars:
        return f"too short: a response has {min(lengths)} characters, minimum {q.min_chars}"
    if max(lengths) > q.max_chars:
        return f"too long: a response has {max(lengths)} characters, maximum {q.max_chars}"
    if len({text_key(r) for r in responses}) < len(responses):
        return "duplicate responses"
    if max(lengths) > q.max_length_ratio * min(lengths):
        return f"length gap: longest response is more than {q.max_length_ratio:g}x the shortest"
    return _refusal_problem(q.refusals, responses)


def _refusal_problem(mode: str, responses: list[str]) -> str | None:
    """Refusals where the spec does not want them. With "preferred" only the dispreferred responses are
    tested: a refusal can be worded in ways no pattern knows, and the check step already confirmed that
    the preferred one is the response that should be chosen."""
    refusing = [is_refusal(r) for r in responses]
    if mode == "reject" and any(refusing):
        return "refusal: a response refuses although refusals are not wanted"
    if mode == "preferred" and any(refusing[1:]):
        return "refusal: a dispreferred response refuses too"
    return None


@step("quality")
def quality(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Strip parse debris, then reject empty, too short/long, duplicated, unwanted refusals (labelled reasons)."""
    kept = []
    for candidate in candidates:
        candidate.preferred = strip_debris(candidate.preferred)
        candidate.worse = [strip_debris(w) for w in candidate.worse]
        problem = None if run.planning else quality_problem(run.spec, candidate.instruction, candidate.responses)
        if problem:
            run.reject(candidate, "quality", problem)
        else:
            kept.append(candidate)
    return kept


def _token_strings(texts: Sequence[str]) -> list[str]:
    """Each text as a string with one character per distinct word, so character LCS is word-level LCS."""
    vocabulary: dict[str, str] = {}
    return ["".join(vocabulary.setdefault(w, chr(0x4E00 + len(vocabulary))) for w in re.findall(r"\w+", t.lower()))
            for t in texts]


def _lcs_f1(x: str, y: str, *, score_cutoff: float | None = None, **_: Any) -> float:
    """ROUGE-L F1 of two token strings (a rapidfuzz scorer: 0 below `score_cutoff`)."""
    score = 2 * LCSseq.similarity(x, y) / (len(x) + len(y)) if x and y else 0.0
    return score if score_cutoff is None or score >= score_cutoff else 0.0


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 between two texts over lower-cased words."""
    return _lcs_f1(*_token_strings([a, b]))


@step("dedupe")
def dedupe(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Drop items whose instruction (plus input) has ROUGE-L >= the spec's threshold with an earlier one."""
    previous = [c.instruction + " " + c.input for c in run.accepted]
    texts = [c.instruction + " " + c.input for c in candidates]
    tokens = _token_strings(previous + texts)
    threshold = run.spec.dedupe_threshold
    kept_tokens = tokens[:len(previous)]
    kept = []
    for candidate, mine in zip(candidates, tokens[len(previous):]):
        match = process.extractOne(mine, kept_tokens, scorer=_lcs_f1, score_cutoff=threshold) if mine else None
        if match is not None and not run.planning:
            run.reject(candidate, "dedupe", f"near-duplicate instruction: ROUGE-L {match[1]:.2f} >= {threshold:g} "
                                            f"with an earlier item")
            continue
        kept.append(candidate)
        kept_tokens.append(mine)
    return kept


def _extreme(candidate: Candidate, pick: Callable[[Sequence[int]], int]) -> bool:
    """The preferred response is strictly the longest (pick=max) or shortest (pick=min)."""
    lengths = [len(r) for r in candidate.responses]
    return lengths[0] == pick(lengths) and lengths.count(lengths[0]) == 1


@step("balance_length", final=True)
def balance_length(run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
    """Keep the preferred response from being the longest (or shortest) in more than `max_extreme_share` of
    items, by rejecting the last items that carry the cue: length must not give the preferred away."""
    if run.spec.quality.length_cue == "off" or run.planning:
        return candidates
    share = run.spec.quality.max_extreme_share
    for label, pick in (("longest", max), ("shortest", min)):
        cued = [c for c in candidates if _extreme(c, pick)]
        excess = math.ceil((len(cued) - share * len(candidates)) / (1 - share)) if share < 1 else 0
        dropped = {id(c) for c in cued[len(cued) - excess:]} if excess > 0 else set()
        for candidate in cued:
            if id(candidate) in dropped:
                run.reject(candidate, "balance_length",
                           f"length cue: the preferred is the {label} response in too many items")
        candidates = [c for c in candidates if id(c) not in dropped]
    return candidates
