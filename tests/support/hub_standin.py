"""A local stand-in for the Hugging Face Hub endpoints that vetting, search and fetch call.

huggingface_hub is pointed at it with `endpoint=` (or `HF_ENDPOINT`, as a Hub
mirror would be), so the real client code runs: `model_info(files_metadata=True)`
at a revision (`/api/models/{repo}/revision/{rev}`), `list_models`,
`list_repo_tree`, `get_repo_discussions` (`/api/models/{repo}/discussions`),
and HEAD/GET on `/{repo}/resolve/{revision}/{file}` with the headers
`hf_hub_download` needs (ETag, X-Repo-Commit, Content-Length). A repo may hold
open pull requests, such as the Hub's safetensors conversion bot opens: each is
its own commit with its own files, reached as `refs/pr/N` or by its sha. Gated,
private and missing repos answer with the status codes and `X-Error-Code`
headers the Hub uses. Every request is recorded, so tests can count calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Weight files the Hub keeps in LFS (siblings carry their sha256).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")
CONVERSION_TITLE = "Adding `safetensors` variant of this model"
CONVERSION_BOT = "SFconvertbot"


def safetensors_bytes(shapes: Mapping[str, tuple[int, ...]], *, padding: int = 0) -> bytes:
    """A valid safetensors file of float32 zeros; `padding` adds bytes to make a file large."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * (offset + padding)


def config_bytes(architecture: str, model_type: str = "bert", **extra: Any) -> bytes:
    return json.dumps({"architectures": [architecture], "model_type": model_type, **extra}).encode()


@dataclass
class PullRequest:
    """An open pull request: its number, who opened it, and the files at its head commit."""

    num: int
    files: dict[str, bytes]
    title: str = CONVERSION_TITLE
    author: str = CONVERSION_BOT
    status: str = "open"

    @property
    def commit(self) -> str:
        return hashlib.sha1(b"pr %d" % self.num).hexdigest()


@dataclass
class StandInRepo:
    """One model repo: its files and the metadata the Hub computes from them."""

    repo_id: str
    files: dict[str, bytes]
    pipeline_tag: str | None = None
    gated: bool = False
    private: bool = False
    downloads: int = 0
    likes: int = 0
    num_parameters: int | None = None
    pull_requests: list[PullRequest] = field(default_factory=list)

    def open_pull_request(self, files: Mapping[str, bytes], **details: Any) -> PullRequest:
        """A pull request on top of main: main's files with `files` added or replaced."""
        pr = PullRequest(len(self.pull_requests) + 1, {**self.files, **files}, **details)
        self.pull_requests.append(pr)
        return pr

    def at(self, revision: str | None) -> tuple[str, dict[str, bytes]]:
        """(commit, files) of `main`, its commit, `refs/pr/N` or a pull request's commit."""
        if revision in (None, "main", COMMIT):
            return COMMIT, self.files
        for pr in self.pull_requests:
            if revision in (f"refs/pr/{pr.num}", pr.commit):
                return pr.commit, pr.files
        raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def config(self, files: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        raw = (self.files if files is None else files).get("config.json")
        if raw is None:
            return {}
        config = json.loads(raw)
        keys = ("architectures", "model_type", "auto_map")
        return {key: config[key] for key in keys if key in config}

    def sibling(self, name: str, files: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        data = (self.files if files is None else files)[name]
        entry: dict[str, Any] = {"rfilename": name, "size": len(data), "blobId": _git_oid(data)}
        if name.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
        return entry

    def info(self, revision: str | None = None) -> dict[str, Any]:
        commit, files = self.at(revision)
        body: dict[str, Any] = {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": commit,
            "private": self.private,
            "gated": "manual" if self.gated else False,
            "downloads": self.downloads,
            "likes": self.likes,
            "pipeline_tag": self.pipeline_tag,
            "tags": [],
            "config": self.config(files),
            "siblings": [self.sibling(name, files) for name in sorted(files)],
        }
        if self.num_parameters is not None:
            body["safetensors"] = {
                "parameters": {"F32": self.num_parameters},
                "total": self.num_parameters,
            }
        return body

    def tree(self, revision: str | None = None) -> list[dict[str, Any]]:
        _, files = self.at(revision)
        entries = []
        for name in sorted(files):
            sibling = self.sibling(name, files)
            entry = {
                "type": "file",
                "path": name,
                "size": sibling["size"],
                "oid": sibling["blobId"],
            }
            if "lfs" in sibling:
                entry["lfs"] = {
                    "oid": sibling["lfs"]["sha256"],
                    "size": sibling["size"],
                    "pointerSize": 134,
                }
            entries.append(entry)
        return entries


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubStandIn:
    """The repos served and the requests seen; `down` answers 503 to everything, like an
    outage; `url` is set once the server runs."""

    repos: dict[str, StandInRepo] = field(default_factory=dict)
    tokens_with_access: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    down: bool = False
    url: str = ""

    def add(self, repo_id: str, files: Mapping[str, bytes], **metadata: Any) -> StandInRepo:
        repo = StandInRepo(repo_id, dict(files), **metadata)
        self.repos[repo_id] = repo
        return repo

    def count(self, path_part: str, method: str | None = None) -> int:
        return sum(
            1
            for seen_method, path in self.requests
            if path_part in path and (method is None or seen_method == method)
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api/models", self._list_models)
        app.router.add_get("/api/models/{rest:.+}", self._api_model)
        app.router.add_route("*", "/{rest:.+}/resolve/{revision}/{filename:.+}", self._resolve)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.down:
            return web.Response(status=503, text="Service unavailable")
        try:
            return await handler(request)
        except _HubError as error:
            return error.response()

    def _token(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    def _find(self, request: web.Request, repo_id: str) -> StandInRepo:
        """The Hub answers 401 RepoNotFound for a private repo without a valid token, like a
        missing one, so a client cannot tell them apart."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and self._token(request) not in self.tokens_with_access):
            status = 401 if self._token(request) is None else 404
            raise _HubError(status, "RepoNotFound", "Repository not found")
        return repo

    async def _api_model(self, request: web.Request) -> web.Response:
        rest = request.match_info["rest"]
        if "/tree/" in rest:
            repo_id, _, revision = rest.partition("/tree/")
            return web.json_response(self._find(request, repo_id).tree(revision or None))
        if rest.endswith("/discussions"):
            return self._discussions(
                request, self._find(request, rest.removesuffix("/discussions"))
            )
        repo_id, _, revision = rest.partition("/revision/")
        return web.json_response(self._find(request, repo_id).info(revision or None))

    def _discussions(self, request: web.Request, repo: StandInRepo) -> web.Response:
        """`GET /api/models/{repo}/discussions?type=&status=&author=&p=`: the Hub's page shape,
        newest first, every pull request on one page."""
        wanted = request.query
        found = [
            pr
            for pr in reversed(repo.pull_requests)
            if wanted.get("type") in (None, "all", "pull_request")
            and wanted.get("status") in (None, "all", pr.status)
            and wanted.get("author") in (None, pr.author)
        ]
        page = int(wanted.get("p", "0"))
        shown = found if page == 0 else []
        body = {
            "discussions": [
                {
                    "num": pr.num,
                    "title": pr.title,
                    "author": {"name": pr.author},
                    "createdAt": "2024-01-01T00:00:00.000Z",
                    "status": pr.status,
                    "repo": {"name": repo.repo_id, "type": "model"},
                    "isPullRequest": True,
                }
                for pr in shown
            ],
            "count": len(found),
            "start": 0 if page == 0 else len(found),
            "numClosedDiscussions": 0,
        }
        return web.json_response(body)

    async def _list_models(self, request: web.Request) -> web.Response:
        tag = request.query.get("pipeline_tag")
        search = request.query.get("search", "").lower()
        limit = int(request.query.get("limit", "1000"))
        found = [
            repo
            for repo in self.repos.values()
            if not repo.private
            and (tag is None or repo.pipeline_tag == tag)
            and search in repo.repo_id.lower()
        ]
        found.sort(key=lambda repo: repo.downloads, reverse=True)
        body = [
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "downloads": repo.downloads,
                "likes": repo.likes,
                "pipeline_tag": repo.pipeline_tag,
                "private": repo.private,
                "tags": [],
            }
            for repo in found[:limit]
        ]
        return web.json_response(body)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo = self._find(request, request.match_info["rest"])
        if repo.gated and self._token(request) not in self.tokens_with_access:
            status = 401 if self._token(request) is None else 403
            raise _HubError(status, "GatedRepo", "Access to model is restricted")
        name = request.match_info["filename"]
        commit, files = repo.at(request.match_info["revision"])
        if name not in files:
            raise _HubError(404, "EntryNotFound", "Entry not found")
        data = files[name]
        sibling = repo.sibling(name, files)
        etag = sibling["lfs"]["sha256"] if "lfs" in sibling else sibling["blobId"]
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit, "Content-Length": str(len(data))}
        if "lfs" in sibling:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        if request.method == "HEAD":
            return web.Response(headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        chunk = 64 * 1024
        for start in range(0, len(data), chunk):
            await response.write(data[start : start + chunk])
        await response.write_eof()
        return response


class _HubError(Exception):
    """A refusal the way the Hub words it: a status and `X-Error-Code` / `X-Error-Message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> web.Response:
        headers = {"X-Error-Code": self.code, "X-Error-Message": self.message}
        return web.Response(status=self.status, headers=headers, text=self.message)


@asynccontextmanager
async def serve(standin: HubStandIn) -> AsyncIterator[HubStandIn]:
    """Run the stand-in on 127.0.0.1 (a free port) for the duration of the block."""
    server = TestServer(standin.app(), host="127.0.0.1")
    await server.start_server()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        await server.close()


@contextmanager
def serve_in_thread(standin: HubStandIn) -> Iterator[HubStandIn]:
    """Run the stand-in on its own event loop, for code under test that calls asyncio.run."""

    async def start() -> TestServer:
        server = TestServer(standin.app(), host="127.0.0.1")
        await server.start_server()
        return server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(start(), loop).result()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
