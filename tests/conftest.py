"""Shared fixtures: where ../shared is, and skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SOURCES_MIRROR = SHARED / "sources"
RELEASE_SAMPLE = SHARED / "genies-release-sample"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def sources_mirror() -> Path:
    if not (SOURCES_MIRROR / "SOURCES.md").exists():
        pytest.skip(f"needs the raw source mirror at {SOURCES_MIRROR} (../shared beside the checkout)")
    return SOURCES_MIRROR


@pytest.fixture
def release_sample() -> Path:
    if not (RELEASE_SAMPLE / "distributions").is_dir():
        pytest.skip(f"needs the GENIES release sample at {RELEASE_SAMPLE} (../shared beside the checkout)")
    return RELEASE_SAMPLE
