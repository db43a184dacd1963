"""What a step expects back, how to check it, and how to ask again when the answer does not fit.

A step declares its output as a JSON schema (sent as `response_format`, checked with `jsonschema`) or as
a parser function (raising ValueError with a reason). An answer that does not fit is re-asked a bounded
number of times, either as a follow-up turn that quotes the problem ("followup", works at temperature 0)
or as a fresh sample under a distinct re-ask index ("resample"); both are distinct cached requests, so a
rerun replays the same chain. After the last re-ask the row is rejected with the reason and raw text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

import jsonschema

ReaskMode = Literal["followup", "resample"]
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
PLACEHOLDER_TEXT = "[dry-run placeholder]"


class ParseError(ValueError):
    """The answer arrived but does not have the declared shape; the message says what is wrong."""


class OutputSpec(Protocol):
    reask: ReaskMode

    @property
    def response_format(self) -> dict[str, Any] | None: ...

    def parse(self, text: str) -> Any: ...

    def placeholder(self) -> str: ...


@dataclass(frozen=True)
class Text:
    """Free text: any non-empty answer is accepted as it is."""

    reask: ReaskMode = "followup"

    @property
    def response_format(self) -> None:
        return None

    def parse(self, text: str) -> str:
        return text

    def placeholder(self) -> str:
        return PLACEHOLDER_TEXT


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A checked, compiled validator per schema: `jsonschema.validate` would re-check the schema every call."""
    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@dataclass(frozen=True)
class JsonSchema:
    """A JSON answer valid under `schema`, requested from the server with `response_format`."""

    schema: Mapping[str, Any]
    name: str = "answer"
    strict: bool = True
    reask: ReaskMode = "followup"

    @property
    def response_format(self) -> dict[str, Any]:
        return {"type": "json_schema",
                "json_schema": {"name": self.name, "schema": dict(self.schema), "strict": self.strict}}

    def parse(self, text: str) -> Any:
        value = parse_json(text)
        try:
            _validator(json.dumps(self.schema, sort_keys=True)).validate(value)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
            raise ParseError(f"JSON does not match the schema at {where}: {exc.message}") from None
        return value

    def placeholder(self) -> str:
        return json.dumps(example_of(self.schema))


@dataclass(frozen=True)
class JsonObject:
    """Any JSON object (`response_format` json_object), for servers without schema support."""

    reask: ReaskMode = "followup"

    @property
    def response_format(self) -> dict[str, Any]:
        return {"type": "json_object"}

    def parse(self, text: str) -> Any:
        value = parse_json(text)
        if not isinstance(value, dict):
            raise ParseError(f"expected a JSON object, got {type(value).__name__}")
        return value

    def placeholder(self) -> str:
        return "{}"


@dataclass(frozen=True)
class Parser:
    """A function from text to value that raises ValueError (or KeyError/IndexError/TypeError) on bad text."""

    fn: Callable[[str], Any]
    reask: ReaskMode = "followup"
    placeholder_text: str = PLACEHOLDER_TEXT
    response_format: dict[str, Any] | None = field(default=None)

    def parse(self, text: str) -> Any:
        try:
            return self.fn(text)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ParseError(str(exc) or type(exc).__name__) from None

    def placeholder(self) -> str:
        return self.placeholder_text


def output_spec(
    response_format: OutputSpec | Mapping[str, Any] | None = None,
    parser: Callable[[str], Any] | None = None,
) -> OutputSpec:
    """Normalize what a caller declared: a spec object, a raw `response_format` dict, a parser, or nothing."""
    if response_format is not None and parser is not None:
        raise TypeError("give response_format or parser, not both (wrap the parser in Parser(fn, response_format=...))")
    if parser is not None:
        return Parser(parser)
    if response_format is None:
        return Text()
    if not isinstance(response_format, Mapping):
        return response_format
    kind = response_format.get("type")
    if kind == "json_schema":
        inner = response_format["json_schema"]
        return JsonSchema(inner["schema"], inner.get("name", "answer"), inner.get("strict", True))
    if kind == "json_object":
        return JsonObject()
    raise TypeError(f"unsupported response_format type {kind!r}: use json_schema, json_object or a Parser")


def parse_json(text: str) -> Any:
    """JSON from an answer, tolerating one surrounding Markdown code fence (models add them unasked)."""
    fenced = _FENCE.match(text)
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except ValueError as exc:
        raise ParseError(f"not valid JSON ({exc})") from None


def reask_messages(messages: Sequence[Mapping[str, Any]], answer: str, problem: str) -> list[dict[str, Any]]:
    """The conversation continued with the unusable answer and a request to fix exactly that problem."""
    follow_up = (f"Your reply could not be used: {problem}. "
                 "Reply again with the complete answer in exactly the requested format and nothing else.")
    return [*map(dict, messages), {"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]


def example_of(schema: Mapping[str, Any]) -> Any:
    """A minimal value valid for common schemas, so dry runs can walk multi-step builders end to end."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return example_of(schema[combinator][0])
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_of(properties[name]) for name in schema.get("required", properties)}
    if kind == "array":
        return [example_of(schema.get("items", {"type": "string"}))] * max(1, schema.get("minItems", 1))
    scalars = {"string": "placeholder", "integer": schema.get("minimum", 0), "number": schema.get("minimum", 0),
               "boolean": False, "null": None}
    return scalars.get(kind, PLACEHOLDER_TEXT)
