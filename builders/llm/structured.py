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
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
"""How a JSON schema reaches the server, most to least constrained: `response_format` json_schema (OpenAI,
recent vLLM); json_object with the schema attached (llama-cpp-python, Ollama: grammar-constrained);
json_object alone; no `response_format` at all. The last two also state the schema in the prompt."""
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
PLACEHOLDER_TEXT = "[dry-run placeholder]"


class ParseError(ValueError):
    """The answer arrived but does not have the declared shape; the message says what is wrong."""


class OutputSpec(Protocol):
    @property
    def reask(self) -> ReaskMode: ...

    @property
    def response_format(self) -> dict[str, Any] | None: ...

    def request(self, mode: str | None, messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict | None]:
        """The messages and `response_format` to send in structured-output `mode` (None: no schema)."""
        ...

    def parse(self, text: str) -> Any: ...

    def placeholder(self) -> str: ...


class _SameInEveryMode:
    """Specs without a JSON schema ask the same way whatever the server's structured-output mode."""

    response_format: dict[str, Any] | None

    def request(self, mode: str | None, messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict | None]:
        return [dict(m) for m in messages], self.response_format


@dataclass(frozen=True)
class Text(_SameInEveryMode):
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

    def request(self, mode: str | None, messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict | None]:
        """The messages and `response_format` that ask for this schema in structured-output `mode`."""
        messages = [dict(m) for m in messages]
        if mode in (None, "json_schema"):
            return messages, self.response_format
        if mode == "json_object_schema":
            return messages, {"type": "json_object", "schema": dict(self.schema)}
        messages = with_schema_instruction(messages, self.schema)
        return messages, ({"type": "json_object"} if mode == "json_object" else None)

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
class JsonObject(_SameInEveryMode):
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
class Parser(_SameInEveryMode):
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
    """JSON from an answer, tolerating one surrounding Markdown code fence (models add them unasked) and raw
    newlines or tabs inside strings (small models under a JSON grammar write them; the meaning is plain)."""
    fenced = _FENCE.match(text)
    try:
        return json.loads(fenced.group(1) if fenced else text, strict=False)
    except ValueError as exc:
        raise ParseError(f"not valid JSON ({exc})") from None


def with_schema_instruction(messages: list[dict[str, Any]], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conversation with the schema stated at the end of its last user turn, for servers that cannot
    constrain decoding to it."""
    instruction = ("\n\nReply with only a JSON value (no prose, no code fence) that is valid under this "
                   f"JSON schema:\n{json.dumps(schema, sort_keys=True)}")
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return [*messages, {"role": "user", "content": instruction.strip()}]
    turn = messages[last_user]
    messages[last_user] = {**turn, "content": f"{turn.get('content', '')}{instruction}"}
    return messages


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
