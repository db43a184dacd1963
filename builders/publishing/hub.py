"""Pushing a staged repository to the Hugging Face Hub: one commit per version, then a tag.

Why it is safe to rerun at any point:
- the commit is guarded by `parent_commit`; when the branch moved meanwhile (HTTP 412/409) the plan is
  rebuilt from the new head (card merged again, deletions recomputed) and the commit retried;
- the tag `v<version>` marks a finished publish: when it exists, its files are compared with the staged
  ones and the publish is a no-op (or refused if the content differs: versions are immutable);
- a commit whose files are all unchanged is skipped, so a publish interrupted between commit and tag just
  adds the tag on the rerun.

Rate limits (429, honouring Retry-After) and server errors (5xx, connection failures) are retried with
bounded, jittered exponential backoff. Requests that huggingface_hub already retries itself (preupload,
LFS batch and upload) are not retried again here, so the two layers do not multiply.

The token comes from `HF_TOKEN` or the huggingface_hub login; it is handed to `HfApi` and appears in no
message, log line or file this module writes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import parse_ratelimit_headers, validate_repo_id
from huggingface_hub.utils.sha import git_hash
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from builders.errors import GeniesError
from builders.export import MANIFEST
from builders.publishing.layout import CARD, DATA_DIR, StagedRepository

REPO_TYPE = "dataset"
CONFLICT = (409, 412)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request, backoff bounds, and re-plans after commit conflicts."""

    attempts: int = 5
    base_wait: float = 1.0
    max_wait: float = 60.0
    conflict_attempts: int = 5


DEFAULT_RETRY = RetryPolicy()


@dataclass
class PublishResult:
    status: str  # "published", "unchanged" or "dry-run"
    repo_id: str
    tag: str
    commit: str | None = None
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    url: str | None = None


def tag_for(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def check_repo_id(repo_id: str) -> str:
    """`ORG/NAME` as the Hub accepts it, or an error saying what is wrong."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise GeniesError(f"invalid --repo {repo_id!r}: {exc}", "use ORG/NAME, e.g. my-lab/genies") from exc
    if repo_id.count("/") != 1:
        raise GeniesError(f"invalid --repo {repo_id!r}: expected ORG/NAME", "use ORG/NAME, e.g. my-lab/genies")
    return repo_id


def _status(exc: BaseException) -> int | None:
    return exc.response.status_code if isinstance(exc, HfHubHTTPError) else None


def _retried_by_huggingface_hub(exc: HfHubHTTPError) -> bool:
    url = str(exc.response.request.url)
    return "/preupload/" in url or "/info/lfs/" in url or exc.response.request.method == "PUT"


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx2.TransportError):
        return True
    status = _status(exc)
    if status is None or not (status == 429 or status >= 500):
        return False
    return not _retried_by_huggingface_hub(exc)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the Hub asked us to wait: its `RateLimit` reset when exhausted, else `Retry-After` seconds."""
    if not isinstance(exc, HfHubHTTPError):
        return None
    headers = exc.response.headers
    limit = parse_ratelimit_headers(headers)
    if limit is not None and limit.remaining == 0:
        return float(limit.reset_in_seconds)
    value = headers.get("Retry-After", "").strip()
    return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else None


def _server_detail(exc: HfHubHTTPError) -> str:
    return f": {exc.server_message.strip()}" if exc.server_message else ""


def hub_error(exc: Exception, action: str, repo_id: str, endpoint: str) -> GeniesError:
    """A clear message and next step for each way the Hub can refuse, without the token or raw headers."""
    if isinstance(exc, httpx2.TransportError):
        return GeniesError(
            f"could not reach the Hub at {endpoint} while trying to {action} ({type(exc).__name__})",
            "check the network or HF_ENDPOINT, then rerun: publishing resumes where it stopped",
        )
    status = _status(exc)
    detail = _server_detail(exc) if isinstance(exc, HfHubHTTPError) else f": {exc}"
    messages = {
        401: ("the Hub rejected the token (401)",
              "set HF_TOKEN to a valid token with write access, or run `hf auth login`"),
        403: (f"the token may not write to {repo_id} (403)",
              f"use a token with write access to the {repo_id.split('/')[0]} namespace "
              + "(fine-grained tokens need 'write' on this repository)"),
        404: (f"{repo_id} or its revision was not found (404)",
              "check --repo and --revision; a private repository needs a token that can see it"),
        409: (f"{repo_id} changed concurrently and the conflict persisted (409)",
              "another publish or push is running against this repository; wait for it, then rerun"),
        412: (f"the branch of {repo_id} kept moving during the publish (412)",
              "another process commits to this branch; wait for it, then rerun"),
        429: ("the Hub rate limit was still hit after retries (429)", "wait a few minutes, then rerun"),
    }
    if status in messages:
        message, hint = messages[status]
    elif status is not None and status >= 500:
        message, hint = (f"the Hub failed with HTTP {status} after retries",
                         "check https://status.huggingface.co and rerun: publishing is idempotent")
    else:
        message, hint = (f"the Hub refused the request (HTTP {status})", "see the server's message above")
    return GeniesError(f"could not {action} on {repo_id}: {message}{detail}", hint)


class HubPublisher:
    """Publishes staged repositories to one Hub dataset repository."""

    def __init__(
        self,
        repo_id: str,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        branch: str = "main",
        private: bool = False,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        token = token or get_token()
        if not token:
            raise GeniesError(
                "no Hugging Face token found",
                "set HF_TOKEN or run `hf auth login` (the token needs write access), or use --dry-run DIR",
            )
        self.repo_id = check_repo_id(repo_id)
        self.api = HfApi(endpoint=endpoint, token=token, library_name="genies-builder")
        self.branch = branch
        self.private = private
        self.retry = retry

    def _wait(self, state: Any) -> float:
        asked = _retry_after(state.outcome.exception())
        if asked is not None:
            return min(asked, self.retry.max_wait)
        backoff = wait_exponential_jitter(multiplier=self.retry.base_wait, jitter=self.retry.base_wait,
                                          max=self.retry.max_wait)
        return backoff(state)

    def _call(self, action: str, fn: Callable[..., T], *args: Any, conflicts_pass: bool = False, **kwargs: Any) -> T:
        """Run one Hub request with retries for retryable failures; other failures become a GeniesError.

        With `conflicts_pass`, a 409/412 is re-raised as is: the caller re-plans on the new head.
        """
        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.retry.attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(fn, *args, **kwargs)
        except (HfHubHTTPError, httpx2.TransportError) as exc:
            if conflicts_pass and _status(exc) in CONFLICT:
                raise
            raise hub_error(exc, action, self.repo_id, self.api.endpoint) from None

    def ensure_repository(self) -> None:
        self._call("create the repository", self.api.create_repo, self.repo_id, repo_type=REPO_TYPE,
                   private=self.private, exist_ok=True)
        if self.branch != "main":
            self._call(f"create branch {self.branch}", self.api.create_branch, self.repo_id, branch=self.branch,
                       repo_type=REPO_TYPE, exist_ok=True)

    def refs(self) -> tuple[str | None, dict[str, str]]:
        """The branch head commit and every tag with its commit."""
        refs = self._call("read branches and tags", self.api.list_repo_refs, self.repo_id, repo_type=REPO_TYPE)
        head = next((b.target_commit for b in refs.branches if b.name == self.branch), None)
        return head, {t.name: t.target_commit for t in refs.tags}

    def remote_files(self, revision: str) -> dict[str, RepoFile]:
        entries = self._call(
            "list files", lambda: list(self.api.list_repo_tree(
                self.repo_id, revision=revision, recursive=True, repo_type=REPO_TYPE)),
        )
        return {e.path: e for e in entries if isinstance(e, RepoFile)}

    def remote_card(self, revision: str, remote: dict[str, RepoFile]) -> str | None:
        if CARD not in remote:
            return None
        with tempfile.TemporaryDirectory(prefix="genies-card-") as cache:
            path = self._call("download the existing README.md", self.api.hf_hub_download, self.repo_id, CARD,
                              repo_type=REPO_TYPE, revision=revision, cache_dir=cache)
            return Path(path).read_text(encoding="utf-8")

    def publish(self, staged: StagedRepository, tag: str, write_card: Callable[[str | None], None]) -> PublishResult:
        """Commit `staged` (card written by `write_card(existing_card)`) and tag it; a no-op when already tagged."""
        for _ in range(self.retry.conflict_attempts):
            head, tags = self.refs()
            if tag in tags:
                return self._verify_tagged(staged, tag, tags[tag])
            remote = self.remote_files(head) if head else {}
            write_card(self.remote_card(head, remote) if head else None)
            changed = changed_files(staged, remote)
            deleted = stale_files(staged, remote)
            try:
                commit = self._commit(staged, tag, head, changed, deleted)
                self._call(f"create tag {tag}", self.api.create_tag, self.repo_id, tag=tag, revision=commit,
                           tag_message=f"{staged.version.manifest.get('dataset')} {tag}", repo_type=REPO_TYPE,
                           conflicts_pass=True)
            except HfHubHTTPError as exc:
                if _status(exc) in CONFLICT:
                    continue
                raise
            return PublishResult("published", self.repo_id, tag, commit, changed, deleted, self._url(tag))
        raise GeniesError(
            f"could not commit to {self.repo_id}: the branch {self.branch} moved {self.retry.conflict_attempts} "
            "times while publishing (409/412)",
            "another process commits to this branch; wait for it, then rerun",
        )

    def _commit(self, staged: StagedRepository, tag: str, head: str | None, changed: list[str],
                deleted: list[str]) -> str:
        if head and not changed and not deleted:
            return head
        manifest = staged.version.manifest

        def commit() -> str:
            operations = [CommitOperationAdd(p, str(staged.root / p)) for p in changed]
            operations += [CommitOperationDelete(p) for p in deleted]
            try:
                info = self.api.create_commit(
                    self.repo_id, operations, repo_type=REPO_TYPE, revision=self.branch, parent_commit=head,
                    commit_message=f"Publish {manifest.get('dataset')} {tag}",
                    commit_description=f"content sha256 {manifest.get('content_sha256')}",
                )
            except ValueError as exc:  # huggingface_hub's answer when the Hub's YAML validation refuses the card
                raise GeniesError(
                    f"the Hub refused the dataset card of {self.repo_id}: {exc}",
                    "fix the offending keys of the existing card on the Hub (or the source licenses), then rerun",
                ) from None
            return info.oid

        return self._call("commit", commit, conflicts_pass=True)

    def already_published(self, tag: str, manifest: bytes) -> PublishResult | None:
        """The cheap no-op check, before anything is staged: the tag exists and holds this very manifest."""
        _, tags = self.refs()
        if tag not in tags:
            return None
        remote = self.remote_files(tags[tag]).get(MANIFEST)
        if remote is None or remote.blob_id != git_hash(manifest):
            return None
        return PublishResult("unchanged", self.repo_id, tag, tags[tag], url=self._url(tag))

    def _verify_tagged(self, staged: StagedRepository, tag: str, commit: str) -> PublishResult:
        remote = self.remote_files(commit)
        differing = [p for p in changed_files(staged, remote) if p != CARD]
        if differing:
            listed = ", ".join(differing[:5]) + (" ..." if len(differing) > 5 else "")
            raise GeniesError(
                f"{self.repo_id} already has tag {tag} with different content ({listed})",
                "published versions are immutable: publish this build under a new version",
            )
        return PublishResult("unchanged", self.repo_id, tag, commit, url=self._url(tag))

    def _url(self, tag: str) -> str:
        return f"{self.api.endpoint}/datasets/{self.repo_id}/tree/{tag}"


def _same_content(staged: StagedRepository, path: str, remote: RepoFile) -> bool:
    if remote.lfs is not None:
        return remote.lfs.sha256 == staged.sha256(path)
    return remote.blob_id == git_hash((staged.root / path).read_bytes())


def changed_files(staged: StagedRepository, remote: dict[str, RepoFile]) -> list[str]:
    """Staged files that are new or differ from the remote ones (only these are sent)."""
    return [p for p in staged.files() if p not in remote or not _same_content(staged, p, remote[p])]


def stale_files(staged: StagedRepository, remote: dict[str, RepoFile]) -> list[str]:
    """Remote files of a republished config that this version no longer has: deleted in the same commit."""
    ours = set(staged.files())
    prefixes = tuple(f"{DATA_DIR}/{config}/" for config in staged.configs)
    return sorted(p for p in remote if p.startswith(prefixes) and p not in ours)
