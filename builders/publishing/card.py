"""The Hub dataset card: YAML metadata the Hub and `datasets` read, and a body for people.

The metadata is merged into an existing card, never overwritten: keys this project does not own are kept,
`configs:` and `dataset_info:` are unioned by config (this version's entries win), list keys such as
`tags` are unioned, and `license` becomes the most restrictive of the old and new values. The body is
rendered from `templates/card/hub_README.md.j2` for the version being published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from datasets import DatasetInfo
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from builders.errors import GeniesError
from builders.publishing.layout import (
    PAIRS_CONFIG,
    SHIFTS_CONFIG,
    StagedRepository,
    data_files_pattern,
)
from builders.templating import render

CARD_TEMPLATE = "card/hub_README.md.j2"
TASK_CATEGORIES = ["text-classification"]
TAGS = ["reward-modeling", "preference", "rlhf", "distribution-shift", "genies"]
UNKNOWN_LICENSE = "unknown"
GENERATED_LICENSE = "mit"  # what the builder generates itself (procedural data) is under the project's license
BASE_LANGUAGE = "en"
LINGUAL_FAMILY = "lingual"

# Most restrictive first. A license missing from this list ranks just below `unknown` (the card then states
# a license we cannot order, which is safer than understating the restriction) and is stated as `other`.
LICENSE_ORDER = (
    UNKNOWN_LICENSE,
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-sa-4.0",
    "cc-by-4.0",
    "apache-2.0",
    "bsd-3-clause",
    "mit",
    "cc0-1.0",
)

GENIES_CITATION = """@article{clymer2023generalization,
  title   = {Generalization Analogies: A Testbed for Generalizing AI Oversight to Hard-To-Measure Domains},
  author  = {Clymer, Joshua and Baker, Garrett and Subramani, Rohan and Wang, Sam},
  journal = {arXiv preprint arXiv:2311.07723},
  year    = {2023}
}"""

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def hub_license_id(text: str | None) -> str:
    """A source's license as the Hub's identifier: "CC BY-NC 4.0" -> "cc-by-nc-4.0"; nothing stated ("unknown
    (none stated upstream)") -> unknown; a remark in parentheses is not part of the name."""
    words = re.sub(r"\(.*?\)", " ", (text or "").strip().lower())
    cleaned = re.sub(r"[^a-z0-9.]+", "-", words).strip("-")
    if not cleaned or cleaned.split("-")[0] in {"none", "unknown", "n/a"}:
        return UNKNOWN_LICENSE
    return cleaned


def _restriction_rank(license_id: str) -> float:
    return LICENSE_ORDER.index(license_id) if license_id in LICENSE_ORDER else 0.5


def most_restrictive(licenses: Iterable[str | None]) -> str:
    """The license a combined dataset must state: the most restrictive of its parts' licenses."""
    ids = {hub_license_id(text) for text in licenses} or {UNKNOWN_LICENSE}
    return min(sorted(ids), key=_restriction_rank)


def source_citation(name: str, info: Mapping[str, Any]) -> str | None:
    """A source's citation: from the manifest when recorded there, else from its spec in `sources/`."""
    if info.get("citation"):
        return str(info["citation"]).strip()
    try:
        from builders.sources import source_spec
    except ImportError:
        return None
    try:
        citation = getattr(source_spec(name), "citation", None)
    except (GeniesError, KeyError, LookupError):
        return None
    return citation.strip() if citation else None


def size_category(rows: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if rows < limit), "1M<n<10M")


def _dataset_infos(staged: StagedRepository) -> DatasetInfosDict:
    infos = DatasetInfosDict()
    for config in staged.configs:
        files = [f for f in staged.data if f.config == config]
        splits = SplitDict()
        for f in files:
            splits.add(SplitInfo(name=f.split, num_bytes=f.arrow_bytes, num_examples=f.rows))
        infos[config] = DatasetInfo(
            features=files[0].features,
            splits=splits,
            download_size=sum(f.parquet_bytes for f in files),
            dataset_size=sum(f.arrow_bytes for f in files),
        )
    return infos


def _metadata_configs(staged: StagedRepository) -> MetadataConfigs:
    configs = MetadataConfigs()
    for config in staged.configs:
        splits = [f.split for f in staged.data if f.config == config]
        configs[config] = {"data_files": [{"split": s, "path": data_files_pattern(config, s)} for s in splits]}
    return configs


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _union(*values: Any) -> list[Any]:
    return list(dict.fromkeys(v for value in values for v in _as_list(value)))


def stated_licenses(data: DatasetCardData) -> list[str]:
    """The license ids a card states; `other` stands for its `license_name`."""
    return [data.get("license_name") if lic == "other" else lic for lic in _as_list(data.license)]


def state_license(data: DatasetCardData, license_id: str) -> None:
    """The Hub accepts its own license ids only: any other license is stated as `other` plus its name."""
    if license_id in LICENSE_ORDER:
        data.license = license_id
        data.pop("license_name", None)
    else:
        data.license, data.license_name = "other", license_id


def source_licenses(manifest: Mapping[str, Any]) -> dict[str, str]:
    return {name: hub_license_id(info.get("license")) for name, info in manifest.get("sources", {}).items()}


def _homepage(name: str) -> str | None:
    from builders.sources import source_spec

    try:
        return getattr(source_spec(name), "homepage", None) or None
    except (GeniesError, KeyError, LookupError):
        return None


def state_license_link(data: DatasetCardData, manifest: Mapping[str, Any]) -> None:
    """`unknown` and `other` need a pointer to the terms: the homepage of the source that states them."""
    if data.license not in (UNKNOWN_LICENSE, "other"):
        data.pop("license_link", None)
        return
    stated = data.get("license_name") or UNKNOWN_LICENSE
    owners = [name for name, license_id in source_licenses(manifest).items() if license_id == stated]
    link = next((url for url in map(_homepage, owners) if url), None)
    if link:
        data.license_link = link


def languages(manifest: Mapping[str, Any]) -> list[str]:
    """English, plus the language of every lingual member the version holds (its `language` parameter)."""
    from builders.discovery import catalog

    found = [BASE_LANGUAGE]
    known = catalog()
    for name in manifest.get("distributions", {}):
        member = known.member(name)
        if member is not None and member.family.name == LINGUAL_FAMILY and member.params.get("language"):
            found.append(member.params["language"])
    return list(dict.fromkeys(found))


def manifest_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the card says of the manifest: its identity and sizes; the full manifest is manifest.json."""
    build = manifest.get("build", {})
    return {
        "content_sha256": manifest.get("content_sha256"), "build_fingerprint": manifest.get("build_fingerprint"),
        "seed": manifest.get("seed"), "distributions": len(manifest.get("distributions", {})),
        "sources": {name: info.get("revision") or "unpinned" for name, info in manifest.get("sources", {}).items()},
        "files": len(manifest.get("files", {})), "skipped": len(build.get("skipped", {})),
        "failed": len(build.get("failed", {})), "llm_models": manifest.get("llm_models", []),
        "packages": manifest.get("packages", {}),
    }


def card_metadata(staged: StagedRepository, existing: DatasetCardData | None = None) -> DatasetCardData:
    """This version's card metadata merged into `existing` (kept keys, unioned configs, strictest license)."""
    manifest = staged.version.manifest
    data = DatasetCardData(**(existing.to_dict() if existing is not None else {}))
    state_license(data, most_restrictive([*stated_licenses(data), *source_licenses(manifest).values()]))
    state_license_link(data, manifest)
    data.language = _union(data.get("language"), languages(manifest))
    data.pretty_name = data.pretty_name or manifest.get("dataset")
    data.task_categories = _union(data.task_categories, TASK_CATEGORIES)
    data.tags = _union(data.get("tags"), TAGS)
    distribution_rows = sum(f.rows for f in staged.data if f.config not in (PAIRS_CONFIG, SHIFTS_CONFIG))
    data.size_categories = [size_category(distribution_rows)]
    _metadata_configs(staged).to_dataset_card_data(data)
    _dataset_infos(staged).to_dataset_card_data(data)
    return data


def _config_rows(staged: StagedRepository) -> list[dict[str, Any]]:
    distributions = staged.version.manifest.get("distributions", {})
    rows = []
    for config in staged.configs:
        files = {f.split: f.rows for f in staged.data if f.config == config}
        summary = distributions.get(config, {})
        rows.append({
            "name": config,
            "train": files.get("train", 0),
            "test": files.get("test", ""),
            "sources": ", ".join(summary.get("sources", [])),
            "licenses": ", ".join(hub_license_id(x) for x in summary.get("licenses", []))
            or (f"{GENERATED_LICENSE} (generated)" if config in distributions else ""),
        })
    return rows


def _citations(manifest: Mapping[str, Any]) -> list[dict[str, str | None]]:
    sources = manifest.get("sources", {})
    return [{"name": name, "citation": source_citation(name, info)} for name, info in sources.items()]


def metadata_yaml(data: DatasetCardData) -> str:
    """`data.to_yaml()`, through libyaml when available: the same text, an order of magnitude faster for the
    hundreds of configs of a full release."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data.to_dict(), Dumper=dumper, sort_keys=False, allow_unicode=True).strip()


def parse_card(text: str | None) -> DatasetCard | None:
    """An existing README as a card; a README whose YAML is broken is refused instead of silently replaced."""
    if text is None:
        return None
    try:
        return DatasetCard(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise GeniesError(
            f"the existing README.md on the Hub has invalid YAML metadata: {exc}",
            "fix or remove the YAML block of the existing card, then publish again",
        ) from exc


def render_card(staged: StagedRepository, tag: str, existing: str | None = None) -> str:
    """The full README.md: merged YAML front matter plus a body describing this version."""
    old = parse_card(existing)
    metadata = card_metadata(staged, old.data if old is not None else None)
    manifest = staged.version.manifest
    return render(
        CARD_TEMPLATE,
        metadata_yaml=metadata_yaml(metadata),
        repo_id=staged.repo_id,
        tag=tag,
        example_config=staged.version.distributions[0],
        manifest=manifest,
        license=stated_licenses(metadata)[0],
        configs=_config_rows(staged),
        shifts=staged.version.shifts().to_pylist(),
        source_licenses=source_licenses(manifest),
        genies_citation=GENIES_CITATION,
        citations=_citations(manifest),
        license_link=metadata.get("license_link"),
        manifest_summary=manifest_summary(manifest),
    )
