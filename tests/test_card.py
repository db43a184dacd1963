"""The Hub card states valid license ids (unknown only where a source states none, with a link to it), the
languages it holds, and a compact manifest summary; its YAML parses as huggingface_hub's DatasetCardData."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard

from builders.catalog import load_catalog
from builders.export import DistributionExport, export_version
from builders.publishing import dry_run
from builders.publishing.card import LICENSE_ORDER, hub_license_id
from builders.schema import Provenance, Record
from builders.splits import group_split

QUOTES = {"quotes": {"revision": "r1", "license": "unknown (none stated upstream)"}}
MMLU = {"mmlu": {"revision": "r2", "license": "MIT"}}


def _records(name: str, source: str) -> list[Record]:
    return [Record(distribution=name, prompt=f"{name} question {i}?", responses=[f"good {i}", f"bad {i}"],
                   preferred=i % 2, group=f"{source}:{i}", provenance=Provenance(source=source, row_key=str(i)))
            for i in range(20)]


def _card(tmp_path: Path) -> tuple[str, dict]:
    exports = [
        DistributionExport("quote_attribution", group_split(_records("quote_attribution", "quotes"), 0, 10, 5),
                           sources=QUOTES),
        DistributionExport("alpaca_mmlu__translate_prompt_es", group_split(_records("alpaca_mmlu__translate_prompt_es", "mmlu"), 0, 10, 5),
                           sources=MMLU),
        DistributionExport("ranking_logic", group_split(_records("ranking_logic", "generated"), 0, 10, 5)),
    ]
    path = export_version(tmp_path / "art", "genies", "1.0.0", exports, load_catalog().shifts_table(), seed=0).path
    dry_run(path, "lab/genies", tmp_path / "repo")
    text = (tmp_path / "repo" / "README.md").read_text()
    return text, DatasetCard(text).data.to_dict()


def test_license_language_and_compact_manifest(tmp_path) -> None:
    text, metadata = _card(tmp_path)
    assert metadata["license"] == "unknown" and metadata["license"] in LICENSE_ORDER
    assert metadata["license_link"] == "https://github.com/JamesFT/Database-Quotes-JSON"
    assert "license_name" not in metadata
    assert metadata["language"] == ["en", "es"]
    assert "| quote_attribution | 10 | 5 | quotes | unknown |" in text
    assert "| ranking_logic | 10 | 5 |  | mit (generated) |" in text
    assert '"files": {' not in text and "[`manifest.json`](manifest.json)" in text


def test_license_ids() -> None:
    assert hub_license_id("unknown (none stated upstream)") == "unknown"
    assert hub_license_id("CC BY-NC 4.0") == "cc-by-nc-4.0" and hub_license_id("Apache-2.0") == "apache-2.0"
    assert hub_license_id("Reddit API terms (see the dataset card)") == "reddit-api-terms"
