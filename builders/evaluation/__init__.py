"""Reference reward-model evaluation (DESIGN §5): scorers, pairwise metrics, the per-shift runner, plots.

`metrics` is pure numpy and has no heavy imports; `scorers` loads scikit-learn, sentence-transformers
or transformers only when a scorer of that kind is built.
"""
