"""Near-duplicate prompts inside a distribution: MinHash + LSH for candidates, rapidfuzz to confirm.

What is compared is the item, not the template: `instruction` + `input` where the record has them, else the
prompt, minus the prefix and suffix all texts of the distribution share. Texts are tokenized and hashed by polars (vectorized), word bigrams are MinHashed with numpy
(`NUM_PERM` universal hashes), and texts sharing any LSH band (`BANDS` bands of `ROWS` rows; a pair
with Jaccard 0.8 becomes a candidate with probability 0.98) in the same distribution become candidates.
A candidate pair counts when rapidfuzz's normalized Indel similarity is at least `SIMILARITY`. Identical
texts are the exact-duplicate check's business and are compared once.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
from rapidfuzz import fuzz

from builders.validation.data import LoadedVersion
from builders.validation.registry import MAX_EXAMPLES, Finding, check

SIMILARITY = 0.9
MIN_WORDS = 5
BANDS, ROWS = 8, 4
NUM_PERM = BANDS * ROWS
MAX_BUCKET_PAIRS = 50
_MASK32 = np.uint64(0xFFFFFFFF)


def _strip_shared_text(texts: list[str]) -> list[str]:
    """Drop the prefix and suffix every text of a distribution shares: template text, not the item."""
    if len(texts) < 2:
        return texts
    prefix = len(os.path.commonprefix(texts))
    suffix = len(os.path.commonprefix([t[prefix:][::-1] for t in texts]))
    return [t[prefix:len(t) - suffix] for t in texts]


def _items(frame: pl.DataFrame) -> pl.DataFrame:
    """Distinct comparable texts per distribution, with the example ids and splits behind each."""
    text = pl.when(pl.col("instruction").is_not_null()).then(
        pl.concat_str([pl.col("instruction"), pl.col("input").fill_null("")], separator="\n")
    ).otherwise(pl.col("prompt"))
    items = frame.select("dist", "id", "split", text=text.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars())
    items = (
        items.filter(pl.col("text").is_not_null())
        .group_by("dist", "text", maintain_order=True)
        .agg(pl.col("id"), pl.col("split"))
    )
    stripped = pl.concat(
        part.with_columns(text=pl.Series(_strip_shared_text(part["text"].to_list()), dtype=pl.String))
        for _, part in items.group_by("dist", maintain_order=True)
    ) if items.height else items
    return stripped.with_row_index("doc")


def _bigram_hashes(items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Word-bigram hashes of every doc with at least `MIN_WORDS` words: (doc index, hash), sorted by doc."""
    tokens = items.select("doc", token=pl.col("text").str.extract_all(r"\w+")).filter(
        pl.col("token").list.len() >= MIN_WORDS
    ).explode("token").with_columns(h=pl.col("token").hash(seed=7))
    bigrams = tokens.with_columns(prev=pl.col("h").shift(1).over("doc")).drop_nulls("prev")
    hashes = (bigrams["prev"].to_numpy() * np.uint64(0x9E3779B97F4A7C15)) ^ bigrams["h"].to_numpy()
    return bigrams["doc"].to_numpy(), hashes


def minhash_signatures(docs: np.ndarray, hashes: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(doc ids, signatures [n_docs, NUM_PERM]) using multiply-shift hashes; docs must be sorted."""
    unique_docs, starts = np.unique(docs, return_index=True)
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)
    offsets = rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
    signatures = np.empty((len(unique_docs), NUM_PERM), dtype=np.uint64)
    for j in range(NUM_PERM):
        permuted = (hashes * multipliers[j] + offsets[j]) >> np.uint64(32)
        signatures[:, j] = np.minimum.reduceat(permuted, starts)
    return unique_docs, signatures


def _bucket_pairs(members: np.ndarray) -> list[tuple[int, int]]:
    """Candidate pairs inside one LSH bucket; big buckets (template-like texts) pair neighbours only."""
    if len(members) * (len(members) - 1) // 2 <= MAX_BUCKET_PAIRS:
        return [(int(a), int(b)) for i, a in enumerate(members) for b in members[i + 1:]]
    return [(int(a), int(b)) for a, b in zip(members, members[1:])]


def candidate_pairs(doc_ids: np.ndarray, signatures: np.ndarray, dist_codes: np.ndarray) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for band in range(BANDS):
        rows = signatures[:, band * ROWS:(band + 1) * ROWS] & _MASK32
        key = dist_codes.astype(np.uint64)
        for column in rows.T:
            key = key * np.uint64(0x100000001B3) ^ column
        order = np.argsort(key, kind="stable")
        sorted_keys = key[order]
        boundaries = np.flatnonzero(np.diff(sorted_keys)) + 1
        for bucket in np.split(order, boundaries):
            if len(bucket) > 1:
                pairs.update(_bucket_pairs(doc_ids[bucket]))
    return pairs


def near_duplicate_pairs(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int, float]]]:
    """The comparable items and the confirmed near-duplicate pairs among them (doc a, doc b, similarity)."""
    items = _items(frame)
    docs, hashes = _bigram_hashes(items)
    if len(docs) == 0:
        return items, []
    doc_ids, signatures = minhash_signatures(docs, hashes)
    dist_codes = items["dist"].rank("dense").to_numpy()[doc_ids]
    texts = items["text"].to_list()
    confirmed = []
    for a, b in sorted(candidate_pairs(doc_ids, signatures, dist_codes)):
        similarity = fuzz.ratio(texts[a], texts[b], score_cutoff=SIMILARITY * 100) / 100
        if similarity:
            confirmed.append((a, b, similarity))
    return items, confirmed


@check("near_duplicates", "warning", f"no two items (instruction+input, else prompt) of a distribution are "
       f"{SIMILARITY:.0%} similar or more without being identical")
def near_duplicates(loaded: LoadedVersion) -> list[Finding]:
    items, pairs = near_duplicate_pairs(loaded.frame)
    dists, ids, splits = items["dist"].to_list(), items["id"].to_list(), items["split"].to_list()
    per_dist: dict[str, dict] = {}
    for a, b, _ in pairs:
        entry = per_dist.setdefault(dists[a], {"docs": set(), "pairs": 0, "cross": 0, "examples": []})
        entry["docs"] |= {a, b}
        entry["pairs"] += 1
        entry["cross"] += set(splits[a]) != set(splits[b])
        entry["examples"] += [ids[a][0], ids[b][0]]
    totals = dict(loaded.frame.group_by("dist").len().iter_rows())
    return [
        Finding(d, sum(len(ids[doc]) for doc in e["docs"]), totals[d], list(dict.fromkeys(e["examples"]))[:MAX_EXAMPLES],
                f"{e['pairs']} near-duplicate pairs, {e['cross']} of them straddle train/test")
        for d, e in sorted(per_dist.items())
    ]
