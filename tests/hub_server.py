"""A local stand-in for the Hugging Face Hub on 127.0.0.1, for testing `genies publish` without network.

It speaks the part of the Hub HTTP API that huggingface_hub 2.4 uses to publish a dataset: create_repo,
repo info, refs (branches and tags), tree listing, validate-yaml, preupload, the LFS batch API and a plain
PUT upload, the NDJSON commit endpoint (with the `parentCommit` guard answering 412), create_branch,
create_tag, and HEAD/GET `resolve` for downloading a file. State is kept in memory: repositories with
commits, branches and tags, and an LFS object store.

Xet uploads are not implemented: tests set `huggingface_hub.constants.HF_HUB_DISABLE_XET` so the client
takes the regular LFS path (`tests/test_publish.py` does this in its fixture).

For assertions it records every request (`received`) and every commit payload (`commits`). Faults are
injected per route with `fail(route, status, times, headers)`; `before_next_commit(fn)` runs `fn` right
before the next commit is applied, e.g. to move the branch and provoke a real 412.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import yaml
from aiohttp import web
from huggingface_hub.utils.sha import git_hash

LFS_SUFFIXES = (".parquet", ".arrow")
LFS_MIN_SIZE = 10 * 1024 * 1024
POINTER_SIZE = 134


@dataclass(frozen=True)
class Blob:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def oid(self) -> str:
        """What the Hub reports as `oid`: the git blob id (of the pointer file for LFS files)."""
        if self.lfs:
            return git_hash(f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n".encode())
        return git_hash(self.content)

    def remote_oid(self) -> str:
        """What preupload reports, compared by huggingface_hub with its local oid: sha256 for LFS files."""
        return self.sha256 if self.lfs else self.oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    message: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision) or self.tags.get(revision) or revision
        return self.commits.get(oid)

    def add_commit(self, branch: str, files: dict[str, Blob], message: str) -> Commit:
        parent = self.branches.get(branch)
        payload = json.dumps([parent, message, sorted((p, b.sha256) for p, b in files.items())])
        commit = Commit(hashlib.sha1(payload.encode()).hexdigest(), parent, files, message)
        self.commits[commit.oid] = commit
        self.branches[branch] = commit.oid
        return commit


@dataclass
class Fault:
    route: str
    status: int
    times: int
    headers: dict[str, str]
    message: str


@dataclass
class Received:
    method: str
    route: str
    path: str
    status: int
    authorization: str | None
    at: float


class HubStandIn:
    """Start with `with HubStandIn() as hub:`; `hub.endpoint` is the URL to give huggingface_hub."""

    def __init__(self, token: str = "hf_standin_token") -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.received: list[Received] = []
        self.commits: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._before_commit: list[Callable[[], None]] = []
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # ---- control -------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app())
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def fail(self, route: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
             message: str = "injected failure") -> None:
        """Answer the next `times` requests to `route` with `status` (routes: see `_app`)."""
        self.faults.append(Fault(route, status, times, dict(headers or {}), message))

    def before_next_commit(self, action: Callable[[], None]) -> None:
        self._before_commit.append(action)

    def push(self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "external") -> str:
        """Commit directly (another user's push): keeps other files, overwrites these."""
        repo = self.repos[repo_id]
        current = dict(repo.resolve(branch).files)
        current.update({p: Blob(c, _is_lfs(p, c)) for p, c in files.items()})
        return repo.add_commit(branch, current, message).oid

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return {p: b.content for p, b in self.repos[repo_id].resolve(revision).files.items()}

    def routes_called(self) -> list[str]:
        return [r.route for r in self.received]

    # ---- HTTP ----------------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._inject, self._authenticate],
                              client_max_size=1 << 30)
        repo = "/{ns}/{name}"
        app.router.add_post("/api/repos/create", self._create_repo, name="create_repo")
        app.router.add_get(f"/api/datasets{repo}", self._repo_info, name="repo_info")
        app.router.add_get(f"/api/datasets{repo}/revision/{{rev}}", self._repo_info, name="repo_info_rev")
        app.router.add_get(f"/api/datasets{repo}/refs", self._refs, name="refs")
        app.router.add_get(f"/api/datasets{repo}/tree/{{rev}}", self._tree, name="tree")
        app.router.add_get(f"/api/datasets{repo}/tree/{{rev}}/{{path:.*}}", self._tree, name="tree_path")
        app.router.add_post("/api/validate-yaml", self._validate_yaml, name="validate_yaml")
        app.router.add_post(f"/api/datasets{repo}/preupload/{{rev}}", self._preupload, name="preupload")
        app.router.add_post("/datasets/{ns}/{namegit}/info/lfs/objects/batch", self._lfs_batch, name="lfs_batch")
        app.router.add_put("/lfs-upload/{oid}", self._lfs_upload, name="lfs_upload")
        app.router.add_post(f"/api/datasets{repo}/commit/{{rev}}", self._commit, name="commit")
        app.router.add_post(f"/api/datasets{repo}/branch/{{branch}}", self._branch, name="branch")
        app.router.add_post(f"/api/datasets{repo}/tag/{{rev}}", self._tag, name="tag")
        app.router.add_get(f"/datasets{repo}/resolve/{{rev}}/{{path:.*}}", self._resolve, name="resolve")
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        try:
            response = await handler(request)
        except HubError as exc:
            response = _error(exc.status, exc.message, exc.headers)
        self.received.append(Received(request.method, route, request.path, response.status,
                                      request.headers.get("Authorization"), time.monotonic()))
        return response

    @web.middleware
    async def _inject(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        route = request.match_info.route.name
        fault = next((f for f in self.faults if f.route == route and f.times > 0), None)
        if fault is None:
            return await handler(request)
        fault.times -= 1
        await request.read()
        return _error(fault.status, fault.message, fault.headers)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        if request.match_info.route.name != "lfs_upload" and not authorized:
            await request.read()
            return _error(401, "Invalid credentials in Authorization header")
        return await handler(request)

    def _repo(self, request: web.Request) -> Repo:
        name = request.match_info.get("name") or request.match_info["namegit"].removesuffix(".git")
        repo = self.repos.get(f"{request.match_info['ns']}/{name}")
        if repo is None:
            raise HubError(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", {"X-Error-Code": "RevisionNotFound"})
        return commit

    async def _create_repo(self, request: web.Request) -> web.Response:
        body = await request.json()
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.endpoint}/datasets/{repo_id}"
        if repo_id in self.repos:
            return web.json_response({"error": "You already created this dataset repo", "url": url}, status=409)
        repo = Repo(repo_id, body.get("visibility") == "private")
        repo.add_commit("main", {".gitattributes": Blob(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", False)},
                        "initial commit")
        self.repos[repo_id] = repo
        return web.json_response({"url": url, "name": repo_id})

    async def _repo_info(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        commit = self._commit_at(repo, request.match_info.get("rev", "main"))
        return web.json_response({"id": repo.repo_id, "sha": commit.oid, "private": repo.private,
                                  "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    async def _refs(self, request: web.Request) -> web.Response:
        repo = self._repo(request)

        def refs(kind: str, names: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(names.items())]

        return web.json_response({"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags),
                                  "converts": []})

    async def _tree(self, request: web.Request) -> web.Response:
        commit = self._commit_at(self._repo(request), request.match_info["rev"])
        prefix = request.match_info.get("path", "")
        entries = []
        for path, blob in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            entry = {"type": "file", "oid": blob.oid, "size": len(blob.content), "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": len(blob.content), "pointerSize": POINTER_SIZE}
            entries.append(entry)
        return web.json_response(entries)

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        content = (await request.json())["content"]
        front = content.split("---", 2)[1] if content.startswith("---") else ""
        try:
            yaml.safe_load(front)
        except yaml.YAMLError as exc:
            return web.json_response({"errors": [{"message": str(exc)}], "warnings": []}, status=400)
        return web.json_response({"errors": [], "warnings": []})

    async def _preupload(self, request: web.Request) -> web.Response:
        commit = self._commit_at(self._repo(request), request.match_info["rev"])
        files = []
        for f in (await request.json())["files"]:
            sample = base64.b64decode(f["sample"])
            existing = commit.files.get(f["path"])
            mode = "lfs" if _is_lfs(f["path"], sample, f["size"]) else "regular"
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False,
                          "oid": existing.remote_oid() if existing else None})
        return web.json_response({"files": files, "commitOid": commit.oid})

    async def _lfs_batch(self, request: web.Request) -> web.Response:
        self._repo(request)
        objects = []
        for obj in (await request.json())["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return web.json_response({"transfer": "basic", "objects": objects})

    async def _lfs_upload(self, request: web.Request) -> web.Response:
        content = await request.read()
        oid = request.match_info["oid"]
        if hashlib.sha256(content).hexdigest() != oid:
            return _error(400, "sha256 of the uploaded content does not match the oid")
        self.lfs[oid] = content
        return web.Response(status=200)

    async def _commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        lines = [json.loads(line) for line in (await request.read()).decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        while self._before_commit:
            self._before_commit.pop(0)()
        branch = request.match_info["rev"]
        head = self._commit_at(repo, branch)
        if branch not in repo.branches:
            return _error(400, f"Cannot commit to {branch}: not a branch")
        if header.get("parentCommit") not in (None, head.oid):
            return _error(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines:
            self._apply(files, line["key"], line["value"])
        commit = repo.add_commit(branch, files, header["summary"])
        self.commits.append({"repo": repo.repo_id, "branch": branch, "header": header, "oid": commit.oid,
                             "operations": [(line["key"], line["value"]["path"]) for line in lines
                                            if line["key"] != "header"]})
        return web.json_response({"commitUrl": f"{self.endpoint}/datasets/{repo.repo_id}/commit/{commit.oid}",
                                  "commitOid": commit.oid, "success": True, "hookOutput": ""})

    def _apply(self, files: dict[str, Blob], key: str, value: dict[str, Any]) -> None:
        path = value.get("path")
        if key == "file":
            files[path] = Blob(base64.b64decode(value["content"]), False)
        elif key == "lfsFile":
            if value["oid"] not in self.lfs:
                raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded")
            files[path] = Blob(self.lfs[value["oid"]], True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, "A file with this name doesn't exist")
        elif key == "deletedFolder":
            for p in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                del files[p]

    async def _branch(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        branch = request.match_info["branch"]
        body = await request.json() if request.can_read_body else {}
        if branch in repo.branches:
            return _error(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = self._commit_at(repo, body.get("startingPoint") or "main").oid
        return web.json_response({})

    async def _tag(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        if body["tag"] in repo.tags:
            return _error(409, f"Tag {body['tag']} already exists")
        repo.tags[body["tag"]] = self._commit_at(repo, request.match_info["rev"]).oid
        return web.json_response({})

    async def _resolve(self, request: web.Request) -> web.Response:
        commit = self._commit_at(self._repo(request), request.match_info["rev"])
        blob = commit.files.get(request.match_info["path"])
        if blob is None:
            return _error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.sha256 if blob.lfs else blob.oid}"'}
        return web.Response(body=blob.content, headers=headers)


def _is_lfs(path: str, sample: bytes, size: int | None = None) -> bool:
    return path.endswith(LFS_SUFFIXES) or b"\x00" in sample or (size or len(sample)) >= LFS_MIN_SIZE


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class HubError(Exception):
    """Raised by a handler to answer with a Hub-style JSON error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
