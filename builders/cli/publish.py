"""`genies publish`: push an exported version to the Hugging Face Hub, or write it to a folder (dry run)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from builders.cli.common import console, open_version, summary_table

if TYPE_CHECKING:
    from builders.publishing import PublishResult, StagedFile


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _files_table(files: list[StagedFile]) -> Table:
    return summary_table(
        "Repository files", ["config", "split", "rows", "parquet bytes"],
        [(f.config, f.split, f.rows, f.parquet_bytes) for f in files],
    )


def _result_table(result: PublishResult) -> Table:
    files_label = "files written" if result.status == "dry-run" else "files sent"
    rows = [("status", result.status), ("repository", result.repo_id), ("tag", result.tag),
            ("commit", result.commit or ""), (files_label, len(result.changed)),
            ("files deleted", ", ".join(result.deleted) or "none"), ("location", result.url or "")]
    return summary_table("Publish", ["field", "value"], rows)


def publish_command(
    path: Annotated[str, typer.Argument(help="Exported version: a folder, dataset/version, or a bare version.")],
    repo: Annotated[str, typer.Option("--repo", help="Hub dataset repository, ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    revision: Annotated[str, typer.Option("--revision", help="Branch to commit to (made from main).")] = "main",
    dry_run_dir: Annotated[Path | None, typer.Option(
        "--dry-run", metavar="DIR", help="Write the repository that would be pushed to DIR; contact nothing.",
    )] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "--artifacts", help="Artifacts root to look PATH up under, as `genies build --out` wrote it "
                                     "(default: $GENIES_ARTIFACTS or ./artifacts).")] = None,
) -> None:
    """Publish a version to the Hub as one commit and a tag v<version>.

    Uploads Parquet per distribution (train, test), `pairs` and `shifts` configs, and a merged card.

    Publishing the same version again changes nothing.

    The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT points at another Hub.

    Example: [bold]genies publish artifacts/genies/1.0.0 --repo my-lab/genies[/]
    """
    from builders.publishing import dry_run, publish_version
    from builders.publishing.layout import config_tables

    version = open_version(path, out)
    with _progress() as progress:
        task = progress.add_task("writing Parquet", total=sum(1 for _ in config_tables(version)))

        def advance(relpath: str) -> None:
            progress.update(task, advance=1, description=f"writing {relpath}")

        if dry_run_dir is not None:
            result, staged = dry_run(version.path, repo, dry_run_dir, on_file=advance)
            files = staged.data
        else:
            result, files = publish_version(version.path, repo, private=private, branch=revision,
                                            endpoint=os.environ.get("HF_ENDPOINT"), on_file=advance)
    if files:
        console.print(_files_table(files))
    console.print(_result_table(result))


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_command)
