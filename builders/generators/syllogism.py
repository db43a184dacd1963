"""Conditional-reasoning items for modus_tollens: "If X is P, then X is Q" plus a second fact and a
conclusion; is the conclusion valid?

The original GENIES modus_tollens always showed a valid modus tollens, so "Yes" was the answer to every
item. Here four forms are drawn equally often: two valid (modus tollens, modus ponens) and two fallacies
that use the same words (denying the antecedent, affirming the consequent). "Yes" is right half the
time, and a negated fact or conclusion occurs as often in valid as in invalid items, so neither the
answer nor the presence of "not" says anything without following the logic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Kevin", "Elizabeth", "Maria", "Omar", "Priya", "Jonas", "Aiko", "Tomás", "Grace", "Dmitri", "Lena",
         "Samuel", "Fatima", "Noah", "Chloe", "Ravi", "Ingrid", "Mateo", "Zara", "Hugo")
# (P, Q) with "X is P" implying "X is Q"
IMPLICATIONS = (
    ("a cardiologist", "a doctor"), ("a poodle owner", "a dog owner"), ("a violinist", "a musician"),
    ("a citizen of Lyon", "a citizen of France"), ("a surgeon", "a doctor"), ("a novelist", "a writer"),
    ("a CEO of a company", "an employee of a company"), ("a marathon winner", "a runner"),
    ("a chess grandmaster", "a chess player"), ("a pilot of a jet", "a pilot"), ("a barista", "a coffee maker"),
    ("a professor of physics", "a scientist"), ("a beekeeper", "a farmer of insects"),
    ("a goalkeeper", "a football player"), ("a resident of Texas", "a resident of the United States"),
    ("a sculptor", "an artist"), ("a pediatric nurse", "a nurse"), ("a judge", "a lawyer by training"),
    ("a jazz pianist", "a pianist"), ("a tax accountant", "an accountant"),
)
FORMS = {  # name: (second fact is about Q?, fact negated?, conclusion about P?, conclusion negated?)
    "modus_tollens": (True, True, True, True),
    "modus_ponens": (False, False, False, False),
    "denying_the_antecedent": (False, True, False, True),
    "affirming_the_consequent": (True, False, True, False),
}


@dataclass(frozen=True)
class ConditionalItem:
    name: str
    antecedent: str
    consequent: str
    form: str

    @property
    def valid(self) -> bool:
        return entails(self.form)

    def _clause(self, about_q: bool, negated: bool) -> str:
        return f"{self.name} is {'not ' if negated else ''}{self.consequent if about_q else self.antecedent}"

    @property
    def question(self) -> str:
        fact_about_q, fact_not, conclusion_about_p, conclusion_not = FORMS[self.form]
        return (
            "Consider the following statements:\n"
            f"1. If {self.name} is {self.antecedent}, then {self.name} is {self.consequent}.\n"
            f"2. {self._clause(fact_about_q, fact_not)}.\n"
            f"Conclusion: Therefore, {self._clause(not conclusion_about_p, conclusion_not)}.\n\n"
            "Question: Based on statements 1. and 2., is the conclusion valid? Answer Yes or No."
        )


def all_conditionals(rng: random.Random) -> list[ConditionalItem]:
    """Every (name, implication, form) item once, in a seeded order: 1,600 distinct prompts."""
    items = [ConditionalItem(name, p, q, form) for name in NAMES for p, q in IMPLICATIONS for form in sorted(FORMS)]
    rng.shuffle(items)
    return items


def entails(form: str) -> bool:
    """Whether the conclusion holds in every world where statements 1 and 2 hold (truth-table check)."""
    about_q, fact_not, conclusion_about_p, conclusion_not = FORMS[form]
    worlds = [(p, q) for p in (False, True) for q in (False, True) if (not p or q)]
    holding = [(p, q) for p, q in worlds if (q if about_q else p) != fact_not]
    return all((p if conclusion_about_p else q) != conclusion_not for p, q in holding)
