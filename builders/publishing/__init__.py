"""Publish an exported version to the Hugging Face Hub (or, with a dry run, to a local folder).

`publish_version` stages the repository (Parquet per config and split, `manifest.json`), merges the card
with the one already on the Hub, and pushes it as one commit plus a tag `v<version>`; `dry_run` writes
exactly the repository that would be pushed to a new repository, so it can be inspected or loaded with
`datasets.load_dataset(folder, config)`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import get_token

from builders.errors import GeniesError
from builders.export import MANIFEST, Version
from builders.publishing.card import render_card
from builders.publishing.hub import (
    DEFAULT_RETRY,
    HubPublisher,
    PublishResult,
    RetryPolicy,
    check_repo_id,
    tag_for,
)
from builders.publishing.layout import (
    CARD,
    StagedFile,
    StagedRepository,
    stage_repository,
)

__all__ = ["PublishResult", "RetryPolicy", "StagedFile", "StagedRepository", "dry_run", "publish_version"]


def _refuse_secret(staged: StagedRepository, token: str | None) -> None:
    """Never push a file that contains the token (e.g. a manifest that recorded a command line with it)."""
    if not token:
        return
    for path in (CARD, MANIFEST):
        if token in (staged.root / path).read_text(encoding="utf-8"):
            raise GeniesError(
                f"{path} of the staged repository contains the Hugging Face token; nothing was published",
                "rebuild the version without passing the token on the command line, and rotate the token",
            )


def _write_card(staged: StagedRepository, tag: str, existing: str | None, token: str | None) -> None:
    (staged.root / CARD).write_text(render_card(staged, tag, existing), encoding="utf-8")
    _refuse_secret(staged, token)


def _empty_target(directory: Path) -> Path:
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise GeniesError(
            f"--dry-run folder {directory} already exists and is not empty",
            "pass a new or empty folder: a dry run writes exactly the repository, nothing else",
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    return directory


def dry_run(
    ref: str | Path,
    repo_id: str,
    directory: Path,
    on_file: Callable[[str], None] | None = None,
) -> tuple[PublishResult, StagedRepository]:
    """Write the repository that would be pushed (with a fresh card) into `directory`, atomically."""
    check_repo_id(repo_id)
    version = Version.open(ref)
    target = _empty_target(directory)
    tag = tag_for(version.manifest["version"])
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        staged = stage_repository(version, repo_id, tmp, on_file)
        _write_card(staged, tag, None, get_token())
        if target.exists():
            target.rmdir()
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    staged.root = target
    return PublishResult("dry-run", repo_id, tag, changed=staged.files(), url=str(target)), staged


def publish_version(
    ref: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    branch: str = "main",
    endpoint: str | None = None,
    token: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    on_file: Callable[[str], None] | None = None,
) -> tuple[PublishResult, list[StagedFile]]:
    """Push a version as one commit and a tag; a no-op when that tag already holds the same files."""
    version = Version.open(ref)
    token = token or get_token()
    publisher = HubPublisher(repo_id, endpoint=endpoint, token=token, branch=branch, private=private, retry=retry)
    tag = tag_for(version.manifest["version"])
    publisher.ensure_repository()
    done = publisher.already_published(tag, (version.path / MANIFEST).read_bytes())
    if done is not None:
        return done, []
    with tempfile.TemporaryDirectory(prefix="genies-publish-") as tmp:
        staged = stage_repository(version, repo_id, Path(tmp), on_file)
        result = publisher.publish(staged, tag, lambda existing: _write_card(staged, tag, existing, token))
        return result, staged.data
