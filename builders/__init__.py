"""GENIES dataset builder: regenerate, repair, validate, publish and evaluate reward-model shift benchmarks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genies-builder")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
