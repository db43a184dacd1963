"""A synthetic, release-shaped version with a known, learnable signal, for tests and benchmarks.

Each distribution has its own "good" and "bad" cue words, drawn from two shared pools: the preferred
response carries good cues, the others carry bad ones, inside filler text. A probe trained on a
distribution learns its cues (high in-distribution accuracy); another distribution shares only some
cues, so accuracy drops across a shift, as a real shift should make it. Pseudo-words keep the data free
of any real content and of any licence.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from builders.export import DistributionExport, export_version
from builders.schema import Provenance, Record

_SYLLABLES = ["".join(p) for p in itertools.product("bdfgklmnprstvz", "aeiou")]
CUES_PER_DISTRIBUTION = 20
CUE_POOL = 100
CUES_PER_RESPONSE = 2


@dataclass(frozen=True)
class TextShape:
    """How many filler words prompts and responses get (responses vary between the two bounds)."""

    prompt_words: int = 8
    response_words: tuple[int, int] = (12, 12)


RELEASE_TEXT = TextShape(prompt_words=60, response_words=(40, 120))


def _words(rng: random.Random, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))))
    return sorted(words)


class Vocabulary:
    """The shared pools every synthetic distribution draws from; fixed by the seed."""

    def __init__(self, seed: int) -> None:
        words = _words(random.Random(seed), 2 * CUE_POOL + 400)
        random.Random(seed + 1).shuffle(words)
        self.good, self.bad, self.filler = words[:CUE_POOL], words[CUE_POOL:2 * CUE_POOL], words[2 * CUE_POOL:]


def _response(rng: random.Random, cues: Sequence[str], filler: Sequence[str], shape: TextShape) -> str:
    words = rng.sample(list(cues), CUES_PER_RESPONSE) + rng.choices(filler, k=rng.randint(*shape.response_words))
    rng.shuffle(words)
    return " ".join(words) + "."


def synthetic_records(
    name: str, count: int, vocabulary: Vocabulary, seed: int, n_responses: int = 4, shape: TextShape = TextShape()
) -> list[Record]:
    """`count` examples of distribution `name`, each with one preferred and `n_responses - 1` worse responses."""
    cue_rng = random.Random(f"{seed}:{name}:cues")
    good = cue_rng.sample(vocabulary.good, CUES_PER_DISTRIBUTION)
    bad = cue_rng.sample(vocabulary.bad, CUES_PER_DISTRIBUTION)
    rng = random.Random(f"{seed}:{name}:rows")
    records = []
    for i in range(count):
        prompt = f"Task {i} of {name}: " + " ".join(rng.choices(vocabulary.filler, k=shape.prompt_words)) + "?"
        responses = [_response(rng, good, vocabulary.filler, shape)]
        responses += [_response(rng, bad, vocabulary.filler, shape) for _ in range(n_responses - 1)]
        order = rng.sample(range(n_responses), n_responses)
        record = Record(
            distribution=name, prompt=prompt, responses=[responses[j] for j in order], preferred=order.index(0),
            group=f"synthetic:{name}:{i}", provenance=Provenance(source="synthetic", row_key=str(i)),
        )
        records.append(record)
    return records


def synthetic_version(
    root: Path,
    shifts: pa.Table,
    distributions: Sequence[str],
    *,
    train: int,
    test: int,
    seed: int = 0,
    version: str = "0.0.0-synthetic",
    shape: TextShape = TextShape(),
) -> Path:
    """Export a version holding `distributions` (train/test splits of the given sizes) and `shifts`."""
    vocabulary = Vocabulary(seed)
    exports = []
    for name in distributions:
        records = synthetic_records(name, train + test, vocabulary, seed, shape=shape)
        exports.append(DistributionExport(name, {"train": records[:train], "test": records[train:]}))
    return export_version(Path(root), "synthetic", version, exports, shifts, seed=seed).path
