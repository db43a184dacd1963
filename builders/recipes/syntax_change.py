"""The `syntax_change` recipe step: counterfactual_python's hypothetical Python.

The LLM writes a task, its correct program and buggy versions of it, all in ordinary Python. This step
checks them (each must compile, and no buggy version may be the correct program reformatted), then
states one or two changes to Python's syntax, seeded per item, and applies them by code to every
response. So every response is written in the changed syntax, exactly as the stated changes say, and the
responses differ only in what the program does: the preferred one is the correct program.

A change is one of three kinds, at most one of each per item, applied in this order: `tokens` (a keyword
or operator spelled differently, found with Python's own tokenizer so names and strings are untouched),
`characters` (two characters exchanged everywhere) and `layout` (how lines are written). A change is only
chosen when it alters the correct program.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass

from builders.recipes.steps import Candidate, RecipeRun, Step, register_step

KINDS = ("tokens", "characters", "layout")
FENCE = re.compile(r"^```[a-zA-Z0-9]*\n(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class SyntaxChange:
    """One stated change: `statement` is the line the prompt lists, `apply` rewrites ordinary Python."""

    name: str
    kind: str
    statement: str
    apply: Callable[[str], str]


def respell(mapping: dict[str, str]) -> Callable[[str], str]:
    """Rewrite the keyword or operator tokens in `mapping` (by the tokenizer, so "returned" or "if" inside a
    string stay as they are)."""

    def apply(code: str) -> str:
        lines = code.splitlines(keepends=True)
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        edits = [(t.start, t.end[1], mapping[t.string]) for t in tokens
                 if t.type in (tokenize.NAME, tokenize.OP) and t.string in mapping]
        for (row, column), end, new in reversed(edits):
            line = lines[row - 1]
            lines[row - 1] = line[:column] + new + line[end:]
        return "".join(lines)

    return apply


def exchange(first: str, second: str) -> Callable[[str], str]:
    """Exchange two characters everywhere in the text."""
    table = str.maketrans({first: second, second: first})
    return lambda code: code.translate(table)


def exchange_pairs(first: str, second: str) -> Callable[[str], str]:
    """Exchange two bracket pairs everywhere: `first`'s opening with `second`'s, closing with closing."""
    table = str.maketrans({first[0]: second[0], second[0]: first[0], first[1]: second[1], second[1]: first[1]})
    return lambda code: code.translate(table)


def _indent_with_hyphens(code: str) -> str:
    def hyphens(match: re.Match[str]) -> str:
        return match.group().replace("\t", "    ").replace(" ", "-")

    return re.sub(r"(?m)^[ \t]+", hyphens, code)


def _every_third_line_twice(code: str) -> str:
    lines = code.split("\n")
    return "\n".join(line for number, line in enumerate(lines, 1) for _ in range(2 if number % 3 == 0 else 1))


CHANGES = (
    SyntaxChange("return_give", "tokens", "the keyword `return` is written `give`", respell({"return": "give"})),
    SyntaxChange("def_fun", "tokens", "the keyword `def` is written `fun`", respell({"def": "fun"})),
    SyntaxChange("if_when", "tokens", "the keyword `if` is written `when`", respell({"if": "when"})),
    SyntaxChange("for_each", "tokens", "the keyword `for` is written `each`", respell({"for": "each"})),
    SyntaxChange("while_during", "tokens", "the keyword `while` is written `during`", respell({"while": "during"})),
    SyntaxChange("booleans_yes_no", "tokens", "`True` is written `yes` and `False` is written `no`",
                 respell({"True": "yes", "False": "no"})),
    SyntaxChange("and_or_swapped", "tokens", "the keywords `and` and `or` are swapped",
                 respell({"and": "or", "or": "and"})),
    SyntaxChange("equality_swapped", "tokens", "the operators `==` and `!=` are swapped",
                 respell({"==": "!=", "!=": "=="})),
    SyntaxChange("parentheses_swapped", "characters", "opening and closing parentheses are swapped",
                 exchange("(", ")")),
    SyntaxChange("square_brackets_swapped", "characters", "opening and closing square brackets are swapped",
                 exchange("[", "]")),
    SyntaxChange("brackets_braces_swapped", "characters", "square brackets and curly braces are swapped",
                 exchange_pairs("[]", "{}")),
    SyntaxChange("quotes_swapped", "characters", "single and double quotes are swapped", exchange("'", '"')),
    SyntaxChange("lines_backwards", "layout", "every line is written backwards, from its last character to its first",
                 lambda code: "\n".join(line[::-1] for line in code.split("\n"))),
    SyntaxChange("hyphen_indentation", "layout", "indentation is written with hyphens instead of spaces "
                 "(one hyphen per space)", _indent_with_hyphens),
    SyntaxChange("third_line_twice", "layout", "every third line is written twice", _every_third_line_twice),
    SyntaxChange("lines_reversed", "layout", "the lines of the program are written in reverse order, last line first",
                 lambda code: "\n".join(reversed(code.split("\n")))),
)


def unfenced(code: str) -> str:
    """The program without a Markdown code fence around it."""
    code = code.strip()
    match = FENCE.match(code)
    return match.group(1).strip() if match else code


def program_problem(programs: list[str]) -> str | None:
    """Why these ordinary-Python programs (the correct one first) cannot make an item, or None."""
    trees = []
    for index, program in enumerate(programs):
        try:
            trees.append(ast.dump(ast.parse(program)))
        except SyntaxError as error:
            return f"response {index + 1} is not valid Python ({error.msg}, line {error.lineno})"
    if trees[0] in trees[1:]:
        return "a buggy version is the correct program, only reformatted"
    return None


def choose_changes(run: RecipeRun, candidate: Candidate) -> list[SyntaxChange]:
    """One or two changes of different kinds, seeded per item, each one altering the correct program."""
    rng = run.ctx.rng("syntax_change", candidate.group)
    chosen = []
    for kind in rng.sample(KINDS, rng.choice((1, 2))):
        applicable = [c for c in CHANGES if c.kind == kind and c.apply(candidate.preferred) != candidate.preferred]
        if applicable:
            chosen.append(rng.choice(applicable))
    return sorted(chosen, key=lambda change: KINDS.index(change.kind))


def apply_changes(changes: list[SyntaxChange], code: str) -> str:
    for change in changes:
        code = change.apply(code)
    return code


@register_step
class ChangedSyntax(Step):
    """Check the ordinary programs, then write all of them in a hypothetical syntax stated in the input."""

    name = "syntax_change"

    def run(self, run: RecipeRun, candidates: list[Candidate]) -> list[Candidate]:
        kept = []
        for candidate in candidates:
            programs = [unfenced(response) for response in candidate.responses]
            if not run.judged(candidate, self.name, program_problem(programs)):
                continue
            if candidate.input:
                candidate.instruction = f"{candidate.instruction}\n\n{candidate.input}"
            candidate.preferred, candidate.worse = programs[0], programs[1:]
            changes = [CHANGES[0]] if run.planning else choose_changes(run, candidate)
            if not run.planning:
                candidate.preferred = apply_changes(changes, candidate.preferred)
                candidate.worse = [apply_changes(changes, program) for program in candidate.worse]
            candidate.input = "\n".join(f"- {change.statement}" for change in changes)
            candidate.meta["syntax_changes"] = [change.name for change in changes]
            kept.append(candidate)
        return kept
