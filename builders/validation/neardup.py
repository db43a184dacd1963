"""Near-duplicate prompts inside a distribution: MinHash + LSH for candidates, rapidfuzz to confirm.

What is compared is the item, not the template: `instruction` + `input` where the record has them, else the
prompt, minus the prefix and suffix all texts of the distribution share. Texts are tokenized and hashed by polars (vectorized), word bigrams are MinHashed with numpy
(`NUM_PERM` universal hashes), and texts sharing any LSH band (`BANDS` bands of `ROWS` rows; a pair
with Jaccard 0.8 becomes a candidate with probability 0.98) in the same distribution become candidates
(neighbours within each bucket, see `candidate_pairs`).
A candidate pair counts when rapidfuzz's normalized Indel similarity is at least `SIMILARITY`. Identical
texts are the exact-duplicate check's business and are compared once.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from builders.validation.data import LoadedVersion, normalized
from builders.validation.registry import MAX_EXAMPLES, Finding, check

SIMILARITY = 0.9
MIN_WORDS = 5
BANDS, ROWS = 8, 4
NUM_PERM = BANDS * ROWS
_MASK32 = np.uint64(0xFFFFFFFF)


def _shared_lengths(texts: pl.DataFrame) -> pl.DataFrame:
    """Per distribution, the length of the prefix and suffix all its texts share (template text). The common
    prefix of a set of strings is the common prefix of its smallest and largest, so two strings suffice."""
    ends = texts.group_by("dist").agg(
        n=pl.len(), lo=pl.col("text").min(), hi=pl.col("text").max(),
        rlo=pl.col("text").str.reverse().min(), rhi=pl.col("text").str.reverse().max(),
    )
    rows = [(d, len(os.path.commonprefix([lo, hi])) if n > 1 else 0, len(os.path.commonprefix([rlo, rhi])) if n > 1 else 0)
            for d, n, lo, hi, rlo, rhi in ends.iter_rows()]
    return pl.DataFrame(rows, schema={"dist": pl.String, "prefix": pl.Int64, "suffix": pl.Int64}, orient="row")


def _items(frame: pl.DataFrame) -> pl.DataFrame:
    """Distinct comparable texts per distribution, with the example ids and splits behind each, minus the
    template text every text of the distribution shares."""
    text = pl.when(pl.col("instruction").is_not_null()).then(
        pl.concat_str([pl.col("instruction"), pl.col("input").fill_null("")], separator="\n")
    ).otherwise(pl.col("prompt"))
    items = (
        frame.select("dist", "id", "split", text=normalized(text))
        .filter(pl.col("text").is_not_null())
        .group_by("dist", "text", maintain_order=True)
        .agg(pl.col("id"), in_train=(pl.col("split") == "train").any(), in_test=(pl.col("split") == "test").any())
    )
    length = pl.col("text").str.len_chars()
    return (
        items.join(_shared_lengths(items), on="dist")
        .with_columns(text=pl.col("text").str.slice(pl.col("prefix"), (length - pl.col("prefix") - pl.col("suffix")).clip(0)))
        .drop("prefix", "suffix")
        .with_row_index("doc")
    )


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


def candidate_pairs(doc_ids: np.ndarray, signatures: np.ndarray, dist_codes: np.ndarray) -> np.ndarray:
    """Pairs of docs sharing an LSH band in the same distribution, as an array of (a, b) rows with a < b.

    Within a band's bucket only neighbours (in sorted order) are paired, so a bucket of n texts costs n-1
    candidates instead of n²/2; template-heavy distributions would otherwise explode.
    """
    found = []
    for band in range(BANDS):
        key = dist_codes.astype(np.uint64)
        for column in (signatures[:, band * ROWS:(band + 1) * ROWS] & _MASK32).T:
            key = key * np.uint64(0x100000001B3) ^ column
        order = np.argsort(key, kind="stable")
        same = key[order][1:] == key[order][:-1]
        found.append(np.stack([doc_ids[order[:-1][same]], doc_ids[order[1:][same]]], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)
    codes = np.unique(pairs[:, 0] * np.int64(len(doc_ids) + 1) + pairs[:, 1]) if len(pairs) else pairs[:, 0]
    return np.stack(np.divmod(codes, np.int64(len(doc_ids) + 1)), axis=1)


def near_duplicate_pairs(items: pl.DataFrame) -> np.ndarray:
    """Confirmed near-duplicate pairs among the items, as an array of (doc a, doc b) rows."""
    docs, hashes = _bigram_hashes(items)
    if len(docs) == 0:
        return np.empty((0, 2), dtype=np.int64)
    doc_ids, signatures = minhash_signatures(docs, hashes)
    dist_codes = items["dist"].rank("dense").to_numpy()[doc_ids]
    pairs = candidate_pairs(doc_ids, signatures, dist_codes)
    texts = items["text"]
    scores = process.cpdist(texts.gather(pairs[:, 0]).to_list(), texts.gather(pairs[:, 1]).to_list(),
                            scorer=fuzz.ratio, score_cutoff=SIMILARITY * 100, workers=-1)
    return pairs[scores > 0]


@check("near_duplicates", "warning", f"no two items (instruction+input, else prompt) of a distribution are "
       f"{SIMILARITY:.0%} similar or more without being identical")
def near_duplicates(loaded: LoadedVersion) -> list[Finding]:
    items = _items(loaded.frame)
    pairs = near_duplicate_pairs(items)
    docs = items.select("doc", "dist", "id", "in_train", "in_test")
    pair_frame = pl.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1]}, schema={"a": pl.UInt32, "b": pl.UInt32})
    pair_frame = pair_frame.join(docs.rename(lambda c: f"{c}_a"), left_on="a", right_on="doc_a").join(
        docs.rename(lambda c: f"{c}_b"), left_on="b", right_on="doc_b")
    straddle = (pl.col("in_train_a") & pl.col("in_test_b")) | (pl.col("in_test_a") & pl.col("in_train_b"))
    per_dist = pair_frame.group_by("dist_a").agg(pairs=pl.len(), cross=straddle.sum())
    flagged = docs.filter(pl.col("doc").is_in(pairs.ravel())).group_by("dist").agg(
        count=pl.col("id").list.len().sum(), examples=pl.col("id").list.first().head(MAX_EXAMPLES))
    totals = dict(loaded.frame.group_by("dist").len().iter_rows())
    summary = {d: (n, c) for d, n, c in per_dist.iter_rows()}
    return [
        Finding(d, int(count), totals[d], examples,
                f"{summary[d][0]} near-duplicate pairs, {summary[d][1]} of them straddle train/test")
        for d, count, examples in flagged.sort("dist").iter_rows()
    ]
