"""Local stand-ins for the inference engines that cannot run here, and a recorder for
everywhere else a request must never go.

Each follows its engine's own HTTP API, and records every request it receives
(host, method, path, Authorization header, body), so a test can prove what
reached which engine with which token, and that nothing else was called:

- text-embeddings-inference (huggingface/text-embeddings-inference,
  router/src/http/server.rs): `GET /info` (`model_id`, `model_type.classifier`),
  `GET /health`, `POST /predict` with `{"inputs", "truncate"}` answering every
  label with its score, best first;
- vLLM serving a classifier (vllm/entrypoints/pooling/classify): `GET /v1/models`,
  `GET /health`, `POST /classify` with `{"model", "input"}` answering
  `{"object": "list", "data": [{"index", "label", "probs", "num_classes"}], ...}`,
  404 for a model it does not serve;
- an Inference Endpoint's default container (huggingface/huggingface-inference-toolkit,
  webservice_starlette.py): `GET /health`, `POST /` with `{"inputs", "parameters"}`
  answering what its one pipeline returns;
- an OpenAI-compatible chat engine that ignores `max_tokens` (`/v1/models`,
  `POST /v1/chat/completions` streamed as server-sent events of
  `chat.completion.chunk`s) and notes whether its client hung up;
- `RecordingProxy`: a real engine (`transformers serve`) behind a proxy that records;
- `Elsewhere`: answers 404 to everything, standing in for the Hub and its router.

With a token, each answers 401 to a request without `Authorization: Bearer <token>`,
as `--api-key` (TEI, vLLM) and a protected Inference Endpoint do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

# The operator's own Hugging Face token, set while engines are called: none may see it.
OPERATOR_TOKEN = "hf_operator_secret_token"


@dataclass(frozen=True)
class Seen:
    host: str
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class Recorder:
    """What every stand-in shares: the requests seen, and the token it wants."""

    token: str | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    @web.middleware
    async def record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        auth = request.headers.get("Authorization")
        self.seen.append(Seen(request.host, request.method, request.path, auth, body))
        if self.token is not None and auth != f"Bearer {self.token}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    def routes(self, app: web.Application) -> None:
        """Nothing but 404: the recorder of places no request may reach."""

    def paths(self) -> list[str]:
        return [f"{seen.method} {seen.path}" for seen in self.seen]


class Elsewhere(Recorder):
    """The Hub, its inference router, any host but the engine: records, answers 404."""


@dataclass
class TeiStandIn(Recorder):
    model: str = "acme/sent"
    scores: dict[str, float] = field(default_factory=lambda: {"POSITIVE": 0.97, "NEGATIVE": 0.03})

    def routes(self, app: web.Application) -> None:
        labels = dict(enumerate(self.scores))

        async def info(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "model_id": self.model,
                    "model_sha": None,
                    "model_dtype": "float32",
                    "model_type": {
                        "classifier": {
                            "id2label": {str(i): label for i, label in labels.items()},
                            "label2id": {label: i for i, label in labels.items()},
                        }
                    },
                    "max_concurrent_requests": 512,
                    "max_input_length": 512,
                    "max_batch_tokens": 16384,
                    "max_client_batch_size": 32,
                    "auto_truncate": False,
                    "tokenization_workers": 1,
                    "version": "1.8.0",
                }
            )

        async def predict(request: web.Request) -> web.Response:
            if not isinstance((await request.json()).get("inputs"), str):
                return web.json_response({"error": "bad inputs", "error_type": "validation"}, 422)
            ranked = sorted(self.scores.items(), key=lambda item: item[1], reverse=True)
            return web.json_response([{"score": s, "label": label} for label, s in ranked])

        app.router.add_get("/info", info)
        app.router.add_get("/health", _ok)
        app.router.add_post("/predict", predict)


@dataclass
class VllmStandIn(Recorder):
    model: str = "acme/sent"
    label: str = "POSITIVE"
    probs: tuple[float, ...] = (0.1, 0.9)

    def routes(self, app: web.Application) -> None:
        async def models(_: web.Request) -> web.Response:
            entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm"}
            return web.json_response({"object": "list", "data": [entry]})

        async def classify(request: web.Request) -> web.Response:
            body = await request.json()
            if body.get("model") != self.model:
                message = f"The model `{body.get('model')}` does not exist."
                error = {"message": message, "type": "NotFoundError", "code": 404}
                return web.json_response({"error": error}, status=404)
            row = {
                "index": 0,
                "label": self.label,
                "probs": list(self.probs),
                "num_classes": len(self.probs),
            }
            usage = {"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0}
            return web.json_response(
                {
                    "id": "classify-1",
                    "object": "list",
                    "created": 0,
                    "model": self.model,
                    "data": [row],
                    "usage": usage,
                }
            )

        app.router.add_get("/v1/models", models)
        app.router.add_get("/health", _ok)
        app.router.add_post("/classify", classify)


@dataclass
class PipelineStandIn(Recorder):
    """One pipeline, as the toolkit runs it: `answer(inputs, parameters)` is its output."""

    answer: Callable[[Any, dict[str, Any]], Any] = lambda inputs, parameters: []

    def routes(self, app: web.Application) -> None:
        async def predict(request: web.Request) -> web.Response:
            body = await request.json()
            if "inputs" not in body:
                return web.json_response({"error": "Body needs to provide a inputs key"}, 400)
            return web.json_response(self.answer(body["inputs"], body.get("parameters", {})))

        app.router.add_get("/health", _ok)
        app.router.add_post("/", predict)


@dataclass
class EndlessChatStandIn(Recorder):
    """Streams `word` until it has sent `most` characters, whatever max_tokens asked."""

    model: str = "acme/chatty"
    word: str = "blah "
    most: int = 200_000
    sent_chars: int = 0
    hung_up: bool = False

    def routes(self, app: web.Application) -> None:
        async def models(_: web.Request) -> web.Response:
            entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "me"}
            return web.json_response({"object": "list", "data": [entry]})

        async def completions(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            delta = {"content": self.word}
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            line = f"data: {json.dumps(chunk)}\n\n".encode()
            try:
                while self.sent_chars < self.most:
                    await response.write(line)
                    self.sent_chars += len(self.word)
                await response.write(b"data: [DONE]\n\n")
            except (ConnectionResetError, ConnectionError):
                self.hung_up = True
            return response

        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", completions)


@dataclass
class RecordingProxy(Recorder):
    """A real engine behind a proxy that records: what the bot sent it, headers included."""

    target: str = ""

    def routes(self, app: web.Application) -> None:
        async def forward(request: web.Request) -> web.StreamResponse:
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in ("host", "content-length")
            }
            async with (
                aiohttp.ClientSession() as http,
                http.request(
                    request.method,
                    self.target + request.path_qs,
                    data=await request.read(),
                    headers=headers,
                ) as upstream,
            ):
                response = web.StreamResponse(
                    status=upstream.status,
                    headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")},
                )
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response

        app.router.add_route("*", "/{tail:.*}", forward)


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="Ok")


@asynccontextmanager
async def serve(standin: Recorder) -> AsyncIterator[Any]:
    """Run the stand-in on 127.0.0.1 (a free port) for the duration of the block."""
    app = web.Application(middlewares=[standin.record])
    standin.routes(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        await server.close()
