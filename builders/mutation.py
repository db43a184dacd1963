"""Program mutation: make buggy variants of a correct Python solution that really behave differently.

A mutation is a small edit located on the program's AST (flip a comparison, swap an arithmetic operator,
add or subtract one from an integer literal or a `range` bound, swap `and`/`or`, `min`/`max`,
`True`/`False`, drop a statement) and applied to the *source text* at that node's exact position. Editing
the text instead of unparsing the tree keeps the original's comments, quoting and layout, so a mutant
differs from the original only in the mutated token: no reformatting, comment or length cue gives it away.

A mutant counts only if it parses, changes the AST, and fails at least one of the problem's tests when
run in the sandbox (`builders.sandbox`); mutants that merely time out are discarded, because whether a
program times out depends on the machine. Every choice is made by the RNG the caller passes in.

Other builders call `buggy_variants(solution, suite, n, rng=..., sandbox=...)`.
"""

from __future__ import annotations

import ast
import bisect
import io
import itertools
import math
import random
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from builders.sandbox import Sandbox, TestSuite, Verdict

COMPARISON_SWAPS = {
    "<": ("<=", ">"), "<=": ("<", ">="), ">": (">=", "<"), ">=": (">", "<="),
    "==": ("!=",), "!=": ("==",), "in": ("not in",), "not in": ("in",), "is": ("is not",), "is not": ("is",),
}
ARITHMETIC_SWAPS = {
    "+": ("-",), "-": ("+",), "*": ("+", "//"), "//": ("%", "*"), "/": ("*",), "%": ("//",),
    "**": ("*",), "<<": (">>",), ">>": ("<<",), "&": ("|",), "|": ("&",), "^": ("&",),
}
BOOLEAN_SWAPS = {"and": ("or",), "or": ("and",)}
NAME_SWAPS = {"min": "max", "max": "min", "True": "False", "False": "True"}
OPERATOR_SPELLING = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
    ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%", ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.And: "and", ast.Or: "or",
}
SUBTLE_KINDS = frozenset({"comparison", "arithmetic", "constant", "range_bound", "boolean", "name_swap"})
ALL_KINDS = SUBTLE_KINDS | {"drop_statement"}
IGNORED_TOKENS = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
STACKED_ATTEMPTS = 4
DROPPABLE = (ast.Assign, ast.AugAssign, ast.Expr, ast.Return, ast.If, ast.For, ast.While)


@dataclass(frozen=True)
class Mutation:
    """Replace source[start:end] (character offsets) by `replacement`."""

    kind: str
    start: int
    end: int
    replacement: str
    line: int

    def describe(self, source: str) -> str:
        return f"line {self.line}: {source[self.start:self.end]!r} -> {self.replacement!r} ({self.kind})"


@dataclass(frozen=True)
class BuggyVariant:
    """A mutant that fails at least one test, with what was changed and how it behaved."""

    code: str
    mutations: tuple[str, ...]
    verdict: Verdict
    length_delta: int


def normalize_newlines(source: str) -> str:
    return source.replace("\r\n", "\n").replace("\r", "\n")


class _Locator:
    """Character offsets for AST nodes (whose columns are UTF-8 byte offsets), tokens, and node parents."""

    def __init__(self, source: str, tree: ast.AST):
        self.source = source
        self.parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        self.lines = source.split("\n")
        self.line_starts = [0]
        for line in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.tokens = [(self.offset(*t.start), self.offset(*t.end), t.string)
                       for t in tokenize.generate_tokens(io.StringIO(source).readline)
                       if t.type not in IGNORED_TOKENS]
        self.token_starts = [start for start, _, _ in self.tokens]

    def offset(self, line: int, char_col: int) -> int:
        return self.line_starts[line - 1] + char_col

    def node_start(self, node: ast.AST) -> int:
        return self._from_bytes(node.lineno, node.col_offset)

    def node_end(self, node: ast.AST) -> int:
        return self._from_bytes(node.end_lineno, node.end_col_offset)

    def _from_bytes(self, line: int, byte_col: int) -> int:
        text = self.lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace")
        return self.offset(line, len(text))

    def operator_between(self, left: ast.AST, right: ast.AST, spelling: str) -> tuple[int, int] | None:
        """Span of the operator written between two operands, skipping parentheses; None if ambiguous."""
        lo, hi = self.node_end(left), self.node_start(right)
        first = bisect.bisect_left(self.token_starts, lo)
        between = [t for t in itertools.takewhile(lambda t: t[1] <= hi, self.tokens[first:])
                   if t[2] not in ("(", ")")]
        if " ".join(string for _, _, string in between) != spelling:
            return None
        return between[0][0], between[-1][1]


def find_mutations(source: str, kinds: Iterable[str] = SUBTLE_KINDS) -> list[Mutation]:
    """Every single-site mutation of `source` of the given kinds, in source order."""
    tree = ast.parse(source)
    locator = _Locator(source, tree)
    wanted = set(kinds)
    found = []
    for node in ast.walk(tree):
        for kind, finder in _FINDERS:
            if kind in wanted:
                found.extend(finder(node, locator))
    return sorted(found, key=lambda m: (m.start, m.end, m.replacement))


def _operator_mutations(kind: str, swaps: dict[str, tuple[str, ...]], node: ast.AST, left: ast.AST,
                        right: ast.AST, op: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    spelling = OPERATOR_SPELLING.get(type(op))
    span = locator.operator_between(left, right, spelling) if spelling in swaps else None
    if span:
        for replacement in swaps[spelling]:
            yield Mutation(kind, span[0], span[1], replacement, node.lineno)


def _comparison(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            yield from _operator_mutations("comparison", COMPARISON_SWAPS, node, operands[i], operands[i + 1],
                                           op, locator)


def _arithmetic(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    if isinstance(node, ast.BinOp):
        yield from _operator_mutations("arithmetic", ARITHMETIC_SWAPS, node, node.left, node.right, node.op,
                                       locator)
    elif isinstance(node, ast.AugAssign):
        augmented = {f"{k}=": tuple(f"{v}=" for v in vs) for k, vs in ARITHMETIC_SWAPS.items()}
        spelling = OPERATOR_SPELLING.get(type(node.op), "?") + "="
        span = locator.operator_between(node.target, node.value, spelling)
        for replacement in augmented.get(spelling, ()) if span else ():
            yield Mutation("arithmetic", span[0], span[1], replacement, node.lineno)


def _boolean(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    if isinstance(node, ast.BoolOp):
        for left, right in zip(node.values, node.values[1:]):
            yield from _operator_mutations("boolean", BOOLEAN_SWAPS, node, left, right, node.op, locator)


def _constant(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    """Integer literal k -> k+1 / k-1, for plain decimal literals, never creating a telltale `x + 0`."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        start, end = locator.node_start(node), locator.node_end(node)
        if locator.source[start:end].isdigit():
            for value in (node.value + 1, node.value - 1):
                if value >= 0 and not _is_identity_operand(node, value, locator.parents.get(node)):
                    yield Mutation("constant", start, end, str(value), node.lineno)


def _is_identity_operand(node: ast.AST, value: int, parent: ast.AST | None) -> bool:
    """`-0`, `x + 0`, `x * 1`, `x ** 1`: code nobody writes, so a mutant containing it would stand out."""
    if isinstance(parent, ast.UnaryOp):
        return value == 0
    if isinstance(parent, ast.BinOp):
        if isinstance(parent.op, (ast.Add, ast.Sub, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift)):
            return value == 0
        if isinstance(parent.op, (ast.Mult, ast.Pow, ast.Div, ast.FloorDiv)):
            return value in (0, 1) and (parent.right is node or isinstance(parent.op, ast.Mult))
    return False


def _range_bound(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    """`range(n)` -> `range(1, n)` and `range(.., stop)` -> stop ± 1, when stop is not already arithmetic."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and node.args and not node.keywords and len(node.args) <= 2):
        return
    stop = node.args[-1]
    if isinstance(stop, (ast.BinOp, ast.Constant, ast.Starred)):
        return
    start, end = locator.node_start(stop), locator.node_end(stop)
    text = locator.source[start:end]
    for replacement in (f"{text} + 1", f"{text} - 1"):
        yield Mutation("range_bound", start, end, replacement, node.lineno)
    if len(node.args) == 1:
        yield Mutation("range_bound", start, end, f"1, {text}", node.lineno)


def _name_swap(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    if isinstance(node, ast.Name) and node.id in ("min", "max") and isinstance(node.ctx, ast.Load):
        yield Mutation("name_swap", locator.node_start(node), locator.node_end(node), NAME_SWAPS[node.id],
                       node.lineno)
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        start, end = locator.node_start(node), locator.node_end(node)
        yield Mutation("name_swap", start, end, NAME_SWAPS[str(node.value)], node.lineno)


def _drop_statement(node: ast.AST, locator: _Locator) -> Iterator[Mutation]:
    """Delete a whole-line statement from a block that keeps at least one other statement."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if not isinstance(block, list) or len(block) < 2:
            continue
        for stmt in block:
            if isinstance(stmt, DROPPABLE) and _owns_its_lines(stmt, locator):
                start = locator.offset(stmt.lineno, 0)
                end = min(locator.offset(stmt.end_lineno + 1, 0), len(locator.source))
                yield Mutation("drop_statement", start, end, "", stmt.lineno)


def _owns_its_lines(stmt: ast.stmt, locator: _Locator) -> bool:
    before = locator.lines[stmt.lineno - 1].encode("utf-8")[: stmt.col_offset]
    after = locator.lines[stmt.end_lineno - 1].encode("utf-8")[stmt.end_col_offset:]
    return not before.strip() and not after.strip()


_FINDERS = (
    ("comparison", _comparison),
    ("arithmetic", _arithmetic),
    ("boolean", _boolean),
    ("constant", _constant),
    ("range_bound", _range_bound),
    ("name_swap", _name_swap),
    ("drop_statement", _drop_statement),
)


def apply_mutations(source: str, mutations: Iterable[Mutation]) -> str:
    """Apply non-overlapping mutations (applied right to left so earlier offsets stay valid)."""
    for m in sorted(mutations, key=lambda m: m.start, reverse=True):
        source = source[: m.start] + m.replacement + source[m.end:]
    return source


def _overlaps(chosen: list[Mutation], candidate: Mutation) -> bool:
    return any(candidate.start < m.end and m.start < candidate.end for m in chosen)


def mutants(
    source: str,
    rng: random.Random,
    limit: int,
    *,
    kinds: Iterable[str] = SUBTLE_KINDS,
    mutations_per_mutant: int = 1,
) -> list[tuple[str, tuple[Mutation, ...]]]:
    """Up to `limit` distinct mutants that parse and differ from `source` in their AST (not yet run)."""
    source = normalize_newlines(source)
    try:
        original_ast = ast.dump(ast.parse(source))
        sites = find_mutations(source, kinds)
    except (SyntaxError, ValueError, tokenize.TokenError):
        return []
    rng.shuffle(sites)
    seen, found = {source}, []
    for mutation_set in _mutation_sets(sites, mutations_per_mutant, rng, STACKED_ATTEMPTS * limit):
        code = apply_mutations(source, mutation_set)
        if code in seen:
            continue
        seen.add(code)
        if _parses_differently(code, original_ast):
            found.append((code, mutation_set))
            if len(found) >= limit:
                break
    return found


def _mutation_sets(sites: list[Mutation], size: int, rng: random.Random, limit: int) -> Iterator[tuple[Mutation, ...]]:
    """Single sites in (shuffled) order, or up to `limit` random groups of `size` non-overlapping sites."""
    if size == 1:
        yield from ((site,) for site in sites)
        return
    for _ in range(limit if len(sites) >= size else 0):
        chosen = rng.sample(sites, size)
        if not any(_overlaps(chosen[:i], site) for i, site in enumerate(chosen)):
            yield tuple(chosen)


def _parses_differently(code: str, original_ast: str) -> bool:
    try:
        return ast.dump(ast.parse(code)) != original_ast
    except (SyntaxError, ValueError):
        return False


def buggy_variants(
    solution: str,
    suite: TestSuite,
    n: int,
    *,
    rng: random.Random,
    sandbox: Sandbox,
    kinds: Iterable[str] = SUBTLE_KINDS,
    mutations_per_variant: int = 1,
    min_failed_fraction: float = 0.0,
    candidates: int = 16,
) -> list[BuggyVariant]:
    """Up to `n` mutants of `solution` that fail the suite, each with a different behaviour.

    Behaviour = what the mutant output up to its first failing test, so no two variants returned are the
    same bug seen twice. Length-preserving mutants come first, so that the variants carry no length cue.
    `min_failed_fraction` > 0 asks for egregiously broken code (failing at least that share of all tests).
    The solution itself is assumed to pass the suite.
    """
    solution = normalize_newlines(solution)
    pool = mutants(solution, rng, candidates, kinds=kinds, mutations_per_mutant=mutations_per_variant)
    if not pool:
        return []
    needed_failures = max(1, math.ceil(min_failed_fraction * len(suite)))
    verdicts = sandbox.run([code for code, _ in pool], suite, stop_after=needed_failures)
    kept: dict[str, BuggyVariant] = {}
    for (code, mutation_set), verdict in zip(pool, verdicts):
        if verdict.status != "incorrect" or "timeout" in verdict.outcomes or verdict.failed < needed_failures:
            continue
        signature = _first_failure_signature(verdict)
        if signature not in kept:
            described = tuple(m.describe(solution) for m in sorted(mutation_set, key=lambda m: m.start))
            kept[signature] = BuggyVariant(code, described, verdict, len(code) - len(solution))
    ranked = sorted(kept.values(), key=lambda v: v.length_delta != 0)
    return ranked[:n]


def _first_failure_signature(verdict: Verdict) -> str:
    first = next(i for i, o in enumerate(verdict.outcomes) if o in ("wrong", "error"))
    return f"{first}:{verdict.digests[first]}"
