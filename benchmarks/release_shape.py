"""Generate a release-shaped GENIES input of full size (~64,000 examples, ~120 MB of JSON).

Shared by the import and repair benchmarks. Without the release sample, examples are synthesised in the
same layout; with it, the sample's real examples are replicated with their texts made unique.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOTAL_EXAMPLES = 64_000
DISTRIBUTIONS = 66
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "genies-release-sample"


def _synthetic_examples(name: str) -> list[dict]:
    rng = random.Random(name)
    words = "the of reward model answer question shift data train test preferred response prompt".split()
    examples = []
    for i in range(20):
        instruction = " ".join(rng.choices(words, k=60))
        responses = {" ".join(rng.choices(words, k=rng.randint(40, 120))) + f" {j}": float(j == 0) for j in range(4)}
        examples.append({"instruction": instruction, "responses": responses,
                         "prompt": f"### Instruction:\n{instruction}\n\n### Response:\n",
                         "prompt_format": "### Instruction:\n{instruction}\n\n### Response:\n"})
    return examples


def _vary(example: dict, copy: int) -> dict:
    """A unique copy of an example whose prompt still contains its (tagged) fields."""
    tag = f" [{copy}]"
    varied = dict(example)
    prompt = example["prompt"]
    for key, value in example.items():
        if isinstance(value, str) and key not in ("prompt", "prompt_format") and value.strip():
            varied[key] = value + tag
            prompt = prompt.replace(value, value + tag)
    varied["prompt"] = prompt if prompt != example["prompt"] else prompt + tag
    varied["responses"] = {text + tag: score for text, score in example["responses"].items()}
    return varied


def generate(out: Path, total: int = TOTAL_EXAMPLES) -> Path:
    """Write the release under `out` and return its root."""
    sample_dists = SAMPLE / "distributions"
    names = sorted(p.name for p in sample_dists.iterdir()) if sample_dists.is_dir() else [f"dist_{i:02d}" for i in range(DISTRIBUTIONS)]
    per_dist = total // len(names)
    for name in names:
        folder = out / "distributions" / name
        folder.mkdir(parents=True, exist_ok=True)
        base = {}
        for split in ("train", "test"):
            path = sample_dists / name / f"{split}.json"
            base[split] = json.loads(path.read_text()) if path.exists() else _synthetic_examples(name)
        if (sample_dists / name / "metadata.json").exists():
            (folder / "metadata.json").write_text((sample_dists / name / "metadata.json").read_text())
        sizes = {"train": int(per_dist * 0.7), "test": per_dist - int(per_dist * 0.7)}
        for split, size in sizes.items():
            rows = [_vary(base[split][i % len(base[split])], i) for i in range(size)]
            (folder / f"{split}.json").write_text(json.dumps(rows, indent=4))
    return out


@contextmanager
def benchmark_release(description: str) -> Iterator[tuple[Path, Path, int]]:
    """Parse `--examples` and `--runs`, write a release of that size in a temporary folder, yield
    (folder, release, runs): runs is how many times to repeat each timing for its median."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--examples", type=int, default=TOTAL_EXAMPLES)
    parser.add_argument("--runs", type=int, default=3, help="timings repeated for their median")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        yield root, generate(root / "release", args.examples), args.runs
