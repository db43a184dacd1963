"""A scripted LLM for recipe tests: answers any request with text shaped by its JSON schema, plus faults.

It plugs into tests/llm_server.py as `ServerConfig(responder=SchemaResponder(...))`. Strings are random
words drawn from a seeded generator keyed by the request, so different requests get different (not
near-duplicate) text and the same request always gets the same text. The re-identification step is
answered by picking the response without the `FLAW` marker the responder put into every worse answer,
so a well-behaved run keeps its rows. A request that asks for ordinary Python gets small valid programs. `fault_rate` of the answers are broken on purpose: invalid JSON,
wrong shapes, empty strings, parse debris ("Response 2:"), refusals and a wrong pick in the check.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

FLAW = "racecar"  # a palindrome: it survives counterfactual_python's lines written backwards
WORDS = [
    "river", "planet", "garden", "copper", "violin", "lantern", "meadow", "harbor", "pencil", "thunder",
    "orchard", "canvas", "falcon", "marble", "pepper", "glacier", "saddle", "cobalt", "tunnel", "feather",
    "puzzle", "basket", "comet", "walnut", "ribbon", "anchor", "desert", "cactus", "timber", "quartz",
    "velvet", "beacon", "pillow", "island", "shovel", "honey", "cedar", "kettle", "magnet", "prairie",
    "tulip", "ember", "summit", "ferry", "lemon", "candle", "crystal", "window", "ladder", "compass",
    "maple", "oyster", "parrot", "jigsaw",
]
FAULTS = ("invalid_json", "wrong_shape", "empty_strings", "debris", "refusal", "fenced", "wrong_pick")


@dataclass
class SchemaResponder:
    """Callable responder for `ServerConfig.responder`; `fault_rate` in [0, 1]."""

    fault_rate: float = 0.0
    seed: int = 0
    informed_check: bool = True  # False: the check is answered at random, as a server that knows nothing would

    def __call__(self, body: dict[str, Any], request_id: str) -> str | None:
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if schema is None:
            return None
        rng = random.Random(f"{self.seed}:{request_id}")
        fault = rng.choice(FAULTS) if rng.random() < self.fault_rate else None
        prompt = str(body["messages"][0]["content"])
        if fault == "invalid_json":
            return "Sure! Here are the items you asked for: 1. first 2. second"
        if fault == "wrong_shape":
            return json.dumps({"result": "nothing useful"})
        value = self.value(schema, rng, prompt, fault)
        text = json.dumps(value)
        return f"```json\n{text}\n```" if fault == "fenced" else text

    def value(self, schema: dict[str, Any], rng: random.Random, prompt: str, fault: str | None) -> Any:
        properties = schema.get("properties", {})
        if "best" in properties:
            choices = properties["best"]["enum"]
            if not self.informed_check:
                return {"best": rng.choice(choices)}
            return {"best": self.pick(choices, prompt, rng, fault == "wrong_pick")}
        write = self.program if "ordinary Python" in prompt else self.text
        if "answers" in properties:
            count = properties["answers"]["minItems"]
            good = re.search(r"Good answer:\n(.*?)\n\nWrite", prompt, re.DOTALL)
            words = len(good.group(1).split()) if good else 18
            return {"answers": [write(rng, fault, worse=True, index=i, words=words) for i in range(count)]}
        if "items" in properties:
            count = rng.randint(1, properties["items"]["maxItems"])
            return {"items": [{"instruction": sentence(rng, 12) + "?", "input": sentence(rng, 6) if rng.random() < 0.3 else "",
                               "answer": write(rng, fault)} for _ in range(count)]}
        if "translation" in properties:
            original = re.search(r"<<<\n(.*)\n>>>", prompt, re.DOTALL)
            return {"translation": "" if fault == "empty_strings" else f"ES {original.group(1) if original else ''}"}
        return {name: sentence(rng, 8) for name in schema.get("required", properties)}

    @staticmethod
    def pick(choices: list[int], prompt: str, rng: random.Random, wrong: bool) -> int:
        """The response number whose text lacks the FLAW marker (or another one when `wrong`)."""
        blocks = re.split(r"\n\[\[(\d+)\]\]\n", prompt)[1:]
        clean = [int(n) for n, text in zip(blocks[::2], blocks[1::2]) if FLAW not in text.split("\n\nWhich")[0]]
        right = clean[0] if len(clean) == 1 else rng.choice(choices)
        return rng.choice([c for c in choices if c != right]) if wrong else right

    @staticmethod
    def text(rng: random.Random, fault: str | None, worse: bool = False, index: int = 0, words: int = 18) -> str:
        """About `words` words (the good answer's length, for worse answers), or a broken text per `fault`."""
        if fault == "empty_strings":
            return ""
        if fault == "refusal" and index == 0:
            return "I'm sorry, but I can't help with that request."
        words = sentence(rng, max(2, round(words * rng.uniform(0.8, 1.2)))).split()
        if worse:
            words[rng.randrange(1, len(words))] = FLAW
        body = " ".join(words) + "."
        return f"Response {index + 2}: {body}" if fault == "debris" else body


    @staticmethod
    def program(rng: random.Random, fault: str | None, worse: bool = False, index: int = 0, words: int = 0) -> str:
        """A small valid Python function named with random words (a worse one uses the FLAW marker as a name),
        or a broken answer per `fault`."""
        if fault == "empty_strings":
            return ""
        if fault == "refusal" and index == 0:
            return "I'm sorry, but I can't help with that request."
        a, b, c, d, e = (rng.choice(WORDS) for _ in range(5))
        if worse:
            e = FLAW
        body = f"def {a}({b}, {c}):\n    {d} = [{b}, {c}]\n    if {b} == {c}:\n        return {e}\n    return {d}"
        return f"Response {index + 2}: {body}" if fault == "debris" else body


def sentence(rng: random.Random, length: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(length)).capitalize()
