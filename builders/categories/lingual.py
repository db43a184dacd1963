"""The `lingual` category: the prompt, the responses or both translated into another language (or there
and back into English) through the LLM engine.

Members of the `lingual` family (builders/catalog/families.toml) are named
`<base>__translate_<placement>_<language>` and `<base>__roundtrip_<placement>_<language>`, e.g.
`arc_easy__translate_response_es`. Every distinct text is sent once per language (templates
lingual/translate.j2 and lingual/round_trip.j2, temperature 0) and every answer is cached, so a round
trip reuses the translate member's requests and a rebuild with `--offline` comes entirely from the cache.
A row whose translation failed or was cut off is rejected with the reason and the raw answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from builders.catalog.families import Member
from builders.categories._derived import (
    PLACEMENTS,
    derived,
    edit_prompt,
    prompt_spans,
)
from builders.errors import GeniesError
from builders.llm import ChatRequest, ChatResult
from builders.registry import BuildContext, distribution_family
from builders.schema import Record
from builders.templating import render, template_id

TRANSLATE, BACK = "lingual/translate.j2", "lingual/round_trip.j2"


def _clean(text: str) -> str:
    """The translation without surrounding whitespace; an empty one is unusable (the engine re-asks)."""
    text = text.strip()
    if not text:
        raise ValueError("the translation is empty")
    return text


def _request(template: str, step: str, language: str, text: str) -> ChatRequest:
    """Temperature 0; room for twice as many tokens as the text has characters (scripts such as Devanagari
    take several tokens per English token), which bounds a runaway answer and sizes dry-run estimates."""
    prompt = render(template, language=language, text=text)
    return ChatRequest([{"role": "user", "content": prompt}], step=step, template=template_id(template),
                       parser=_clean, params={"temperature": 0, "max_tokens": 64 + 2 * len(text)})


def _translate(ctx: BuildContext, template: str, step: str, language: str, texts: Iterable[str]) -> dict[str, ChatResult]:
    """One request per distinct text, answers keyed by the text they translate."""
    unique = sorted(set(texts))
    results = ctx.llm.run_batch([_request(template, step, language, t) for t in unique])
    return dict(zip(unique, results))


def _answer(result: ChatResult, text: str) -> str:
    """The translation of `text`; in a dry run the text stands in for it (every placeholder is the same)."""
    return text if result.status == "dry_run" else result.parsed


def _usable(result: ChatResult) -> str | None:
    """Why an answer cannot be used as a translation, or None."""
    if not result.ok:
        return result.reason or result.status
    if result.finish_reason == "length":
        return "the translation was cut off at max_tokens"
    return None


def _texts(row: Record, placement: str) -> list[str]:
    """The texts of a row that its member translates."""
    edits_prompt, edits_responses = PLACEMENTS[placement]
    return (prompt_spans(row) if edits_prompt else []) + (list(row.responses) if edits_responses else [])


def _translations(ctx: BuildContext, member: Member, rows: list[Record]) -> dict[str, list[ChatResult]]:
    """For every text to shift, the chain of results that turns it into its shifted form."""
    language = member.value_text("language")
    texts = {t for row in rows for t in _texts(row, member.params["placement"])}
    there = _translate(ctx, TRANSLATE, f"{ctx.distribution}.translate", language, texts)
    chains = {text: [result] for text, result in there.items()}
    if member.params["mode"] == "roundtrip":
        done = {text: _answer(result, text) for text, result in there.items() if _usable(result) is None}
        back = _translate(ctx, BACK, f"{ctx.distribution}.back_translate", language, done.values())
        for text, translated in done.items():
            chains[text].append(back[translated])
    return chains


@distribution_family("lingual", needs_llm=True, templates=[TRANSLATE, BACK])
def build_translated(ctx: BuildContext, member: Member) -> Iterator[Record]:
    """Every row of the base with its prompt and/or responses translated; failures become rejects."""
    if ctx.llm is None:
        raise GeniesError("the lingual category needs the LLM engine", "set OPENAI_BASE_URL and OPENAI_API_KEY")
    rows = ctx.base_rows
    chains = _translations(ctx, member, rows)
    placement = member.params["placement"]
    edits_prompt, edits_responses = PLACEMENTS[placement]
    info = {"mode": member.params["mode"], "placement": placement, "language": member.params["language"]}
    for row in rows:
        needed = [chains[text] for text in _texts(row, placement)]
        problem = next((why for chain in needed for r in chain if (why := _usable(r)) is not None), None)
        if problem is not None:
            ctx.reject(f"translation failed: {problem}",
                       {"base_id": row.id, "raw": [r.raw or r.text for chain in needed for r in chain]})
            continue

        def shifted(_field: str, text: str) -> str:
            return _answer(chains[text][-1], text)

        changes = edit_prompt(row, shifted) if edits_prompt else {}
        if edits_responses:
            changes["responses"] = [shifted("response", text) for text in row.responses]
        keys = tuple(r.key for chain in needed for r in chain)
        provenance = replace(row.provenance, llm_model=ctx.llm.model, llm_requests=(*row.provenance.llm_requests, *keys))
        yield derived(row, ctx.distribution, {"lingual": info}, provenance=provenance, **changes)
