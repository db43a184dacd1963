"""The steps of the generic recipe. Each takes the candidates of one round and returns those it keeps.

A step is an object (registered in `STEPS` and named in a spec's `steps`). A step that asks the LLM is
an `LLMStep`: it names its template and output schema, builds one request per piece of work (`asks`) and
applies each parsed answer (`apply`), returning a reason when the answer disqualifies its candidate. One
driver, `RecipeRun.answers`, sends the requests as a batch, rejects the candidates whose call failed,
records request keys and leaves judging out of a dry run; every candidate a step drops is rejected with a
labelled reason and its raw material, so a build accounts for every candidate. Other steps add
candidates (`upstream`) or filter them (`quality`, `dedupe`, `balance_length`) and override `run`.
Steps marked `final` run once over the whole pool after the last round (they need every candidate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from builders.errors import GeniesError
from builders.llm import ChatRequest, ChatResult, JsonSchema
from builders.registries import Registry
from builders.registry import BuildContext
from builders.rows import RowCursor, TableRows
from builders.templating import render, template_id
from builders.text import has_repeats, text_digest

if TYPE_CHECKING:
    from builders.recipes.spec import Seed, Spec


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


@dataclass(frozen=True)
class Ask:
    """One request of a step: the template variables, the candidate it serves (None for new items) and,
    where one candidate needs several answers, which part this one is (`slot`)."""

    candidate: Candidate | None
    variables: dict[str, Any]
    schema: dict[str, Any]
    sample: int = 0
    max_tokens: int | None = None
    slot: str = ""

    @property
    def owner(self) -> Candidate:
        """The candidate this ask serves (steps that work per candidate only make such asks)."""
        if self.candidate is None:
            raise ValueError("this ask serves no candidate")
        return self.candidate


@dataclass
class RecipeRun:
    """One distribution's run of its spec: the build context, the round in progress, what was kept so far."""

    ctx: BuildContext
    spec: Spec
    need: int = 0
    calls: int = 0
    accepted: list[Candidate] = field(default_factory=list)
    rows: RowCursor | None = None

    @property
    def planning(self) -> bool:
        """A dry run: placeholder answers flow through, so filters must not judge them."""
        return bool(getattr(self.ctx.llm, "dry_run", False))

    def budget(self, chars: int) -> int:
        """A completion cap for an answer of about `chars` characters of text: room for twice that (at ~3
        characters a token) plus the JSON around it, never above the spec's `max_tokens`. It bounds what a
        runaway answer costs and makes dry-run estimates close to real use."""
        return min(self.spec.max_tokens, JSON_OVERHEAD_TOKENS + math.ceil(2 * chars / 3))

    def cursor(self, provider: Any) -> RowCursor:
        """The run's cursor over `provider`'s rows (one per run: later rounds take the rows that follow)."""
        if self.rows is None:
            self.rows = RowCursor(provider, self.ctx)
        return self.rows

    def reject(self, candidate: Candidate | None, step_name: str, reason: str, raw: Any = None) -> None:
        material = {"step": step_name, **(candidate.raw() if candidate else {})}
        if raw is not None:
            material["llm"] = raw
        self.ctx.reject(f"{step_name}: {reason}", material)

    def judged(self, candidate: Candidate, step_name: str, problem: str | None) -> bool:
        """Whether `candidate` stays: a problem rejects it, except in a dry run (placeholders are not judged)."""
        if problem is None or self.planning:
            return True
        self.reject(candidate, step_name, problem)
        return False

    def variant(self, text: str, index: object) -> str:
        """In a dry run, placeholder `text` made distinct by `index` (identical placeholders would be
        deduplicated away and the estimate would stop early); else `text` itself."""
        return f"{text} {index}" if self.planning else text

    def answers(self, step: LLMStep, asks: Sequence[Ask]) -> list[tuple[Ask, ChatResult]]:
        """Send `asks` as one batch; (ask, result) for each call that succeeded. A failed call rejects its
        candidate (once, with the reason and the raw answer), and that candidate's other answers are dropped."""
        template = step.template(self.spec)
        requests = [
            ChatRequest([{"role": "user", "content": render(template, **ask.variables)}],
                        step=f"{self.spec.name}.{step.name}", template=template_id(template), sample=ask.sample,
                        response_format=JsonSchema(ask.schema),
                        params={"temperature": self.spec.temperature if step.temperature is None else step.temperature,
                                "max_tokens": ask.max_tokens or self.spec.max_tokens})
            for ask in asks
        ]
        if self.ctx.llm is None:
            raise GeniesError(f"{self.spec.name} needs the LLM engine", "set OPENAI_BASE_URL (or use --dry-run to estimate)")
        results: list[ChatResult] = self.ctx.llm.run_batch(requests) if requests else []
        failed: set[int] = set()
        answered = []
        for ask, result in zip(asks, results):
            if ask.candidate is not None and id(ask.candidate) in failed:
                continue
            if not result.ok:
                self.reject(ask.candidate, step.name, result.reason or "no answer", {"request": result.key, "raw": result.raw})
                if ask.candidate is not None:
                    failed.add(id(ask.candidate))
                continue
            answered.append((ask, result))
        answered = [(ask, result) for ask, result in answered if ask.candidate is None or id(ask.candidate) not in failed]
        for ask, result in answered:
            if ask.candidate is not None:
                ask.candidate.requests.append(result.key)
        return answered


JSON_OVERHEAD_TOKENS = 64


def object_schema(**properties: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an object with exactly these required properties."""
    return {"type": "object", "required": list(properties), "additionalProperties": False, "properties": properties}


STRING = {"type": "string"}


def strings(count: int) -> dict[str, Any]:
    return {"type": "array", "items": STRING, "minItems": count, "maxItems": count}


def choice(count: int) -> dict[str, Any]:
    """An answer picking one of `count` numbered options."""
    return object_schema(best={"type": "integer", "enum": list(range(1, count + 1))})


class Step:
    """A recipe step: the candidates of a round in, the ones it keeps out."""

    name = ""
    final = False

    def templates(self, spec: Spec) -> list[str]:
        """The templates this step reads for `spec` (they enter the build fingerprint)."""
        return []

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        raise NotImplementedError


class LLMStep(Step):
    """A step around one LLM call per ask: `asks` formats the input, `apply` takes in the answer."""

    shared_template = ""  # a prompt under templates/recipes/ shared by every spec
    own_templates: tuple[str, ...] = ()  # the spec's own parts (`<name>/<part>.j2`) it renders
    temperature: float | None = None

    def template(self, spec: Spec) -> str:
        return self.shared_template or spec.template(self.own_templates[0])

    def templates(self, spec: Spec) -> list[str]:
        own = [spec.template(part) for part in self.own_templates]
        return [self.shared_template, *own] if self.shared_template else own

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        raise NotImplementedError

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        """Take in one answer; a returned reason rejects the candidate."""
        raise NotImplementedError

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates whose every answer was applied without a problem, in their order."""
        kept: set[int] = set()
        rejected: set[int] = set()
        for ask, result in run.answers(self, self.asks(run, candidates)):
            if id(ask.candidate) in rejected:
                continue
            if run.judged(ask.owner, self.name, self.apply(run, ask, result.parsed)):
                kept.add(id(ask.candidate))
            else:
                rejected.add(id(ask.candidate))
        return [c for c in candidates if id(c) in kept and id(c) not in rejected]


STEPS: Registry[Step] = Registry("recipe step")


StepClass = TypeVar("StepClass", bound=type[Step])


def register_step(cls: StepClass) -> StepClass:
    """Class decorator: register one instance of the step under its name (a spec lists it in `steps`)."""
    STEPS.add(cls.name, cls(), cls.__module__)
    return cls


ITEM_SCHEMA = object_schema(instruction=STRING, input=STRING, answer=STRING)


def _seed_view(seed: Seed) -> dict[str, Any]:
    return {"instruction": seed.instruction, "input": seed.input, "answer": seed.answer, "worse": list(seed.worse)}


def _seeds_for(run: RecipeRun, key: object, count: int = 3) -> list[dict[str, Any]]:
    """A seeded choice of seed examples for one request: different calls see different examples."""
    seeds = list(run.spec.seeds)
    return [_seed_view(s) for s in run.ctx.rng("seeds", key).sample(seeds, min(count, len(seeds)))]


@register_step
class Generate(LLMStep):
    """Write new items (instruction, optional input, preferred answer), few-shot from the spec's seeds."""

    name = "generate"
    shared_template = "recipes/generate.j2"

    def templates(self, spec: Spec) -> list[str]:
        return [self.shared_template, spec.template("task")]

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        spec = run.spec
        calls = math.ceil(run.need / spec.per_call)
        indices = list(range(run.calls, run.calls + calls))
        run.calls += calls
        schema = object_schema(items={"type": "array", "items": ITEM_SCHEMA, "minItems": 1, "maxItems": spec.per_call})
        task = render(spec.template("task"))
        seed_chars = max(len(s.instruction) + len(s.input) + len(s.answer) for s in spec.seeds)
        cap = run.budget(spec.per_call * seed_chars)
        return [Ask(None, {"task": task, "seeds": _seeds_for(run, i), "count": spec.per_call, "batch": i + 1},
                    schema, sample=i, max_tokens=cap, slot=str(i)) for i in indices]

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        for ask, result in run.answers(self, self.asks(run, candidates)):
            items = result.parsed["items"] * (run.spec.per_call if run.planning else 1)
            for position, item in enumerate(items):
                row_key = f"{ask.slot}.{position}"
                candidates.append(Candidate(
                    instruction=strip_debris(item["instruction"]), input=item["input"].strip(),
                    preferred=item["answer"], group=f"{run.spec.name}:{text_digest(run.variant(item['instruction'], row_key))}",
                    row_key=row_key, source="llm", requests=[result.key],
                ))
        return candidates


@register_step
class Upstream(Step):
    """Take the next items of an upstream table (e.g. Alpaca instructions and their reference answers)."""

    name = "upstream"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        up = run.spec.upstream
        assert up is not None, "load_spec requires [upstream] for this step"
        cursor = run.cursor(TableRows(up.source, [c for c in (up.key, up.instruction, up.input, up.answer) if c]))
        added = 0
        while added < run.need and (rows := cursor.take(1)):
            row = rows[0]
            candidate = Candidate(
                instruction=str(row[up.instruction] or "").strip(),
                input=str(row.get(up.input) or "").strip() if up.input else "",
                preferred=str(row[up.answer] or ""), group=f"{up.source}:{row[up.key]}", row_key=str(row[up.key]),
                source=up.source, revision=cursor.revision,
            )
            if len(candidate.preferred) > up.max_answer_chars:
                run.reject(candidate, self.name, f"reference answer longer than {up.max_answer_chars} characters")
                continue
            candidates.append(candidate)
            added += 1
        return candidates


def _answer_chars(run: RecipeRun, candidate: Candidate) -> int:
    """The preferred answer's length; in a dry run (placeholder answers) the longest seed answer's."""
    if run.planning and run.spec.seeds:
        return max(len(s.answer) for s in run.spec.seeds)
    return len(candidate.preferred)


@register_step
class Worse(LLMStep):
    """Ask for `responses - 1` subtly worse answers to each item, in the manner the spec's flaws template says."""

    name = "worse"
    shared_template = "recipes/worse.j2"
    own_templates = ("flaws",)

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        spec = run.spec
        flaws = render(spec.template("flaws"))
        schema = object_schema(answers=strings(spec.worse_count))
        examples = [s for s in _seeds_for(run, "worse", 2) if s["worse"]]
        return [Ask(c, {"instruction": c.instruction, "input": c.input, "answer": c.preferred, "flaws": flaws,
                        "count": spec.worse_count, "examples": examples}, schema,
                    max_tokens=run.budget(spec.worse_count * _answer_chars(run, c))) for c in candidates]

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        ask.owner.worse = [run.variant(text, i) for i, text in enumerate(parsed["answers"])]
        return None


CHECK_TOKENS = 32  # {"best": N}, with room for a code fence


@register_step
class Check(LLMStep):
    """A separate call, shown the responses in a seeded order, must pick the preferred one, else reject."""

    name = "check"
    shared_template = "recipes/check.j2"
    temperature = 0.0

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        asks = []
        for c in candidates:
            order = list(range(len(c.responses)))
            run.ctx.rng("check", c.group).shuffle(order)
            asks.append(Ask(c, {"instruction": c.instruction, "input": c.input, "preferred_is": run.spec.preferred_is,
                                "responses": [c.responses[i] for i in order]},
                            choice(run.spec.responses), max_tokens=CHECK_TOKENS, slot=str(order.index(0) + 1)))
        return asks

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        if parsed["best"] != int(ask.slot):
            return f"re-identification failed: picked response {parsed['best']}, the preferred was shown as {ask.slot}"
        return None


@register_step
class Translate(LLMStep):
    """Translate the instruction (and input) and/or every response into the spec's language."""

    name = "translate"
    shared_template = "recipes/translate.j2"

    def asks(self, run: RecipeRun, candidates: list[Candidate]) -> list[Ask]:
        schema = object_schema(translation=STRING)
        return [Ask(c, {"text": text, "language": run.spec.language}, schema, max_tokens=run.budget(len(text)), slot=slot)
                for c in candidates for slot, text in _translatable(c, run.spec.translate)]

    def apply(self, run: RecipeRun, ask: Ask, parsed: Any) -> str | None:
        candidate, text = ask.owner, run.variant(parsed["translation"], ask.slot)
        if ask.slot in ("instruction", "input"):
            setattr(candidate, ask.slot, text)
        else:
            responses = candidate.responses
            responses[int(ask.slot.split(".")[1])] = text
            candidate.preferred, candidate.worse = responses[0], responses[1:]
        candidate.meta["language"] = run.spec.language
        return None


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
    if has_repeats(responses):
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


@register_step
class Quality(Step):
    """Strip parse debris, then reject empty, too short/long, duplicated, unwanted refusals (labelled reasons)."""

    name = "quality"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        kept = []
        for candidate in candidates:
            candidate.preferred = strip_debris(candidate.preferred)
            candidate.worse = [strip_debris(w) for w in candidate.worse]
            if run.judged(candidate, self.name, quality_problem(run.spec, candidate.instruction, candidate.responses)):
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


@register_step
class Dedupe(Step):
    """Drop items whose instruction (plus input) has ROUGE-L >= the spec's threshold with an earlier one."""

    name = "dedupe"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        previous = [c.instruction + " " + c.input for c in run.accepted]
        tokens = _token_strings(previous + [c.instruction + " " + c.input for c in candidates])
        threshold = run.spec.dedupe_threshold
        kept_tokens = tokens[:len(previous)]
        kept = []
        for candidate, mine in zip(candidates, tokens[len(previous):]):
            match = process.extractOne(mine, kept_tokens, scorer=_lcs_f1, score_cutoff=threshold) if mine else None
            problem = None if match is None else (
                f"near-duplicate instruction: ROUGE-L {match[1]:.2f} >= {threshold:g} with an earlier item")
            if run.judged(candidate, self.name, problem):
                kept.append(candidate)
                kept_tokens.append(mine)
        return kept


def _extreme(candidate: Candidate, pick: Callable[[Sequence[int]], int]) -> bool:
    """The preferred response is strictly the longest (pick=max) or shortest (pick=min)."""
    lengths = [len(r) for r in candidate.responses]
    return lengths[0] == pick(lengths) and lengths.count(lengths[0]) == 1


@register_step
class BalanceLength(Step):
    """Keep the preferred response from being the longest (or shortest) in more than `max_extreme_share` of
    items, by rejecting the last items that carry the cue: length must not give the preferred away."""

    name = "balance_length"
    final = True

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        if run.spec.quality.length_cue == "off" or run.planning:
            return candidates
        share = run.spec.quality.max_extreme_share
        for label, pick in (("longest", max), ("shortest", min)):
            cued = [c for c in candidates if _extreme(c, pick)]
            excess = math.ceil((len(cued) - share * len(candidates)) / (1 - share)) if share < 1 else 0
            dropped = {id(c) for c in cued[len(cued) - excess:]} if excess > 0 else set()
            for candidate in cued:
                if id(candidate) in dropped:
                    run.reject(candidate, self.name, f"length cue: the preferred is the {label} response in too many items")
            candidates = [c for c in candidates if id(c) not in dropped]
        return candidates
