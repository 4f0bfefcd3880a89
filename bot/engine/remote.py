"""Models on an inference engine the operator already runs: transformers serve, vLLM,
SGLang, llama.cpp's server, TGI, text-embeddings-inference, Inference Endpoints.

A model named `<engine>:<model>` is served by a `RemoteEngine` behind the same
`PipelinePool.submit` as local ones. What an engine serves depends on the API it
speaks (`EngineSettings.api`, the table REMOTE_TASKS): conversations and /generate
through `AsyncInferenceClient.chat_completion` against OpenAI's chat route
(streamed; a conversation's pictures go as OpenAI `image_url` parts holding data
URLs), one-shot tasks through the engine's own route (vLLM's `/classify`,
text-embeddings-inference's `/predict`, an Inference Endpoint's pipeline at `/`).

Every request goes to the declared engine and nowhere else, with that engine's
token and no other: the HTTP client of each request is bound to its engine and
refuses any URL outside the engine's base, and sets the Authorization header
itself, so neither huggingface_hub's model resolution (a model name given as
`model=` is looked up on the Hub and sent to its router) nor its implicit
`HF_TOKEN` can reach anyone. Each engine has a bound on requests in flight (and
on requests waiting for one, refused as busy beyond it); per-user parameters
travel under the engine's names. Errors map to the bot's own: an engine that
cannot be reached is retried with backoff before its first token, never after
text was shown; overload (429/503) is "busy". Nothing here knows about Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import httpx2
from huggingface_hub import AsyncInferenceClient, set_async_client_factory
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from bot.config import EngineApi, EngineSettings
from bot.engine.chat import ChatMessage, ChatPrompt, estimate_tokens, fit_estimated, shown_images
from bot.engine.fair_turns import ANONYMOUS, Caller
from bot.engine.inputs import image_data_url
from bot.engine.metrics import EngineStats
from bot.errors import (
    ContextTooLong,
    EngineBusy,
    EngineFailed,
    EngineUnavailable,
    PoolBusy,
    RequestTimeout,
)

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]

# Connection errors before the first token are retried after these pauses.
RETRY_BACKOFF_S = (0.5, 1.0, 2.0)
MODELS_CACHE_S = 60.0
_UNREACHABLE = (httpx2.TransportError, OSError)


class OffEngine(Exception):
    """A request bound for somewhere other than its engine: refused before it leaves."""


# The engine whose request is being made in this task: huggingface_hub's client factory
# takes no arguments, so the session it asks for learns its engine from here.
_SERVING: ContextVar[EngineSettings | None] = ContextVar("hfbot_serving_engine", default=None)
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def _keep_error_body(response: httpx2.Response) -> None:
    """Read an error's body while the stream is open, so the error can say what went wrong."""
    if response.status_code >= 400:
        await response.aread()


def _origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _bound_to(engine: EngineSettings | None) -> Callable[[httpx2.Request], Awaitable[None]]:
    """The request hook that keeps a session on its engine, redirects included.

    The Authorization header is set here and nowhere else: whatever a library
    put there (huggingface_hub adds the operator's HF_TOKEN when it has no
    other) is replaced by the engine's own token, or removed when it has none.
    """
    base = httpx2.URL(engine.base_url.rstrip("/") + "/") if engine is not None else None
    token = engine.token() if engine is not None else None

    async def only_the_engine(request: httpx2.Request) -> None:
        url = request.url
        if (
            base is None
            or _origin(url) != _origin(base)
            or not (url.path.rstrip("/") + "/").startswith(base.path)
        ):
            raise OffEngine(f"{url.scheme}://{url.host}{url.path}")
        request.headers.pop("Authorization", None)
        if token:
            request.headers["Authorization"] = f"Bearer {token}"

    return only_the_engine


def engine_http(engine: EngineSettings | None, **options: Any) -> httpx2.AsyncClient:
    """An HTTP client that reaches `engine` only (None: nothing at all)."""
    return httpx2.AsyncClient(
        event_hooks={"request": [_bound_to(engine)], "response": [_keep_error_body]},
        follow_redirects=True,
        **options,
    )


def engine_session() -> httpx2.AsyncClient:
    """The HTTP client of AsyncInferenceClient's requests: the engine in use, not the Hub.

    huggingface_hub's default one refuses every request while HF_HUB_OFFLINE
    is set, and an air-gapped bot is exactly where a local engine is reached;
    the bot only ever uses AsyncInferenceClient for its engines, so a session
    asked for outside `RemoteEngines.client` reaches nothing.
    """
    return engine_http(_SERVING.get(), timeout=None)


class RemoteEngines:
    """The operator's named engines: their clients, bounds, model lists, health and stats."""

    def __init__(
        self, engines: Mapping[str, EngineSettings], *, health_every_s: float = 30.0
    ) -> None:
        set_async_client_factory(engine_session)
        self._health_every_s = health_every_s
        self._health: tuple[float, dict[str, str]] | None = None
        self._health_lock = asyncio.Lock()
        self._settings = dict(engines)
        self._slots = {name: asyncio.Semaphore(e.max_concurrency) for name, e in engines.items()}
        self._waiting = dict.fromkeys(engines, 0)
        self._models: dict[str, tuple[float, frozenset[str]]] = {}
        self.stats = {name: EngineStats() for name in engines}
        self.reachable = dict.fromkeys(engines, True)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._settings)

    def settings(self, name: str) -> EngineSettings:
        return self._settings[name]

    @asynccontextmanager
    async def client(self, name: str) -> AsyncIterator[AsyncInferenceClient]:
        """A client of its own per request, bound to the engine (see `engine_session`):
        closing it closes that request's stream at once."""
        engine = self._settings[name]
        serving = _SERVING.set(engine)
        try:
            async with AsyncInferenceClient(
                base_url=engine.base_url.rstrip("/"), timeout=engine.timeout_s
            ) as client:
                yield client
        finally:
            _SERVING.reset(serving)

    def http(self, name: str) -> httpx2.AsyncClient:
        """A plain HTTP client for the engine's own routes, relative to its base URL."""
        engine = self._settings[name]
        return engine_http(engine, base_url=engine.base_url.rstrip("/"), timeout=engine.timeout_s)

    def serves(self, name: str, task: str) -> bool:
        """Whether the API the engine speaks has a route for this pipeline task."""
        return task in REMOTE_TASKS[self._settings[name].api]

    def waiting(self, name: str) -> int:
        return self._waiting[name]

    @asynccontextmanager
    async def slot(self, name: str) -> AsyncIterator[None]:
        """One of the engine's `max_concurrency` places; refused as busy past `queue_size` waiting."""
        engine, slots = self._settings[name], self._slots[name]
        if slots.locked() and self._waiting[name] >= engine.queue_size:
            raise PoolBusy(queued=self._waiting[name])
        self._waiting[name] += 1
        try:
            await slots.acquire()
        finally:
            self._waiting[name] -= 1
        try:
            yield
        finally:
            slots.release()

    async def served_models(self, name: str) -> frozenset[str]:
        """What the engine says it serves (`/v1/models`, or TGI's `/info`), cached for a minute."""
        cached = self._models.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        models = await self._ask_models(name)
        self._models[name] = (now + MODELS_CACHE_S, models)
        return models

    async def _ask_models(self, name: str) -> frozenset[str]:
        """The engine's list (`/v1/models`, or `/info` of TGI and text-embeddings-inference);
        an engine with no such route (pipelines) is asked whether it is up, and serves
        what the operator declared."""
        engine = self._settings[name]
        try:
            async with engine_http(
                engine, base_url=engine.base_url.rstrip("/"), timeout=10.0
            ) as http:
                if engine.models:
                    (await http.get("/health")).raise_for_status()
                    return frozenset(engine.models)
                listed = await http.get("/v1/models")
                if listed.status_code == 200:
                    return frozenset(str(item["id"]) for item in listed.json()["data"])
                info = await http.get("/info")
                if info.status_code == 200:
                    return frozenset({str(info.json()["model_id"])})
        except (*_UNREACHABLE, httpx2.HTTPStatusError, ValueError, KeyError, TypeError) as error:
            raise EngineUnavailable(engine=name) from error
        except OffEngine as error:
            log.error("engine %s: a request was bound for %s; refused", name, error)
            raise EngineUnavailable(engine=name) from error
        raise EngineUnavailable(engine=name)

    async def health(self) -> dict[str, str]:
        """Each engine, reachable or not (its model list, or its `/health`), as found at most
        `health_every_s` ago: a monitor polling /healthz, or a stranger, cannot turn each
        probe into a call to every engine. Askers at once share the one look under way."""
        async with self._health_lock:
            if self._health is not None and self._health[0] > time.monotonic():
                return dict(self._health[1])
            found: dict[str, str] = {}
            for name in self._settings:
                try:
                    self._models.pop(name, None)
                    await self.served_models(name)
                    found[name] = "ok"
                except EngineUnavailable:
                    found[name] = "unreachable"
                self.reachable[name] = found[name] == "ok"
            self._health = (time.monotonic() + self._health_every_s, found)
            return dict(found)


def engine_parameters(params: Mapping[str, Any], *, extras: bool = False) -> dict[str, Any]:
    """The bot's generation parameters under OpenAI-compatible names.

    `top_k` and `repetition_penalty` are not OpenAI's: they are sent (in the
    request body) only to engines configured with `sampling_extras` (TGI and
    vLLM read them; a strict OpenAI-compatible server refuses the request).
    """
    sampling = bool(params.get("do_sample", True))
    sent: dict[str, Any] = {"max_tokens": int(params.get("max_new_tokens", 64))}
    sent["temperature"] = float(params.get("temperature", 1.0)) if sampling else 0.0
    if sampling and "top_p" in params:
        sent["top_p"] = float(params["top_p"])
    extra = {
        name: params[name]
        for name in ("top_k", "repetition_penalty")
        if name in params and (sampling or name == "repetition_penalty")
    }
    if extra and extras:
        sent["extra_body"] = extra
    return sent


class RemoteEngine:
    """The engine of one (task, `<engine>:<model>`) pair, behind `PipelinePool.submit`."""

    def __init__(self, task: str, engines: RemoteEngines, engine: str, model: str) -> None:
        self.task = task
        self._engines = engines
        self._engine = engine
        self._model = model

    @property
    def queue_depth(self) -> int:
        return self._engines.waiting(self._engine)

    @property
    def up(self) -> bool:
        """Whether the engine answered the last time the bot asked it anything."""
        return self._engines.reachable[self._engine]

    async def submit(
        self,
        inputs: Any,
        params: Mapping[str, Any],
        *,
        on_text: TextCallback | None = None,
        caller: Caller = ANONYMOUS,
    ) -> Any:
        """The engine queues and batches on its side; `caller` has no line to hear of here."""
        started = time.perf_counter()
        first_token: list[float] = []

        def timed(text: str) -> None:
            if not first_token:
                first_token.append(time.perf_counter() - started)
            if on_text is not None:
                on_text(text)

        outcome = "error"
        try:
            async with self._engines.slot(self._engine):
                result = await self._serve(inputs, params, timed)
            outcome = "ok"
            self._engines.reachable[self._engine] = True
            return result
        except (PoolBusy, EngineBusy):
            outcome = "busy"
            raise
        except EngineUnavailable:
            self._engines.reachable[self._engine] = False
            raise
        finally:
            self._engines.stats[self._engine].record(
                outcome, time.perf_counter() - started, first_token[0] if first_token else None
            )

    async def _serve(self, inputs: Any, params: Mapping[str, Any], on_text: TextCallback) -> Any:
        serve = REMOTE_TASKS[self._engines.settings(self._engine).api].get(self.task)
        if serve is None:
            raise EngineFailed(engine=self._engine)
        return await serve(self, inputs, params, on_text)

    async def complete(self, inputs: Any, params: Mapping[str, Any], on_text: TextCallback) -> Any:
        """A conversation turn or a continuation, streamed from the engine's chat endpoint."""
        engine = self._engines.settings(self._engine)
        wanted = int(params.get("max_new_tokens", 64))
        messages: list[dict[str, Any]]
        if isinstance(inputs, ChatPrompt):
            turns, dropped = fit_estimated(inputs, wanted, engine.context_tokens)
            messages = await asyncio.to_thread(openai_messages, turns)
            prefix = ""
        else:
            messages, dropped, prefix = [{"role": "user", "content": str(inputs)}], 0, str(inputs)
            tokens = estimate_tokens(prefix) + wanted
            if tokens > engine.context_tokens:
                raise ContextTooLong(tokens=tokens, limit=engine.context_tokens)
        text, cut = await self._stream(messages, params, on_text, prefix)
        if isinstance(inputs, ChatPrompt):
            return [{"generated_text": text, "dropped_turns": dropped, "cut": cut}]
        return [{"generated_text": prefix + text, "cut": cut}]

    async def _stream(
        self,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        on_text: TextCallback,
        prefix: str,
    ) -> tuple[str, bool]:
        """The answer, and whether it was cut at the engine's `max_reply_chars` (the
        stream is closed there, so nothing past it is read).

        Retry a connection that fails before the first token; never once text was shown.
        """
        engine = self._engines.settings(self._engine)
        for pause in (*RETRY_BACKOFF_S, None):
            shown = False
            text = ""
            try:
                async with self._engines.client(self._engine) as client:
                    sent = engine_parameters(params, extras=engine.sampling_extras)
                    stream = await client.chat_completion(
                        messages, model=self._model, stream=True, **sent
                    )
                    async for chunk in stream:
                        delta = chunk.choices[0].delta.content if chunk.choices else None
                        if delta:
                            text += delta
                            shown = True
                            cut = len(text) > engine.max_reply_chars
                            text = text[: engine.max_reply_chars]
                            on_text(prefix + text)
                            if cut:
                                return text, True
                return text, False
            except HfHubHTTPError as error:
                raise _http_error(self._engine, _status(error), shown) from error
            except InferenceTimeoutError as error:
                raise RequestTimeout(seconds=engine.timeout_s) from error
            except OffEngine as error:
                raise _refused(self._engine, error) from error
            except _UNREACHABLE as error:
                if shown or pause is None:
                    raise (EngineFailed if shown else EngineUnavailable)(
                        engine=self._engine
                    ) from error
                log.info("engine %s unreachable (%s); retrying", self._engine, error)
                await asyncio.sleep(pause)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise EngineFailed(engine=self._engine) from error
        raise EngineUnavailable(engine=self._engine)

    async def one_shot(self, call: OneShotCall, inputs: Any, params: Mapping[str, Any]) -> Any:
        """A one-shot task on the engine's own route; its answer as a pipeline gives it."""
        engine = self._engines.settings(self._engine)
        try:
            async with self._engines.http(self._engine) as http:
                return await call(http, self._model, str(inputs), params)
        except httpx2.HTTPStatusError as error:
            raise _http_error(self._engine, error.response.status_code, False) from error
        except httpx2.TimeoutException as error:
            raise RequestTimeout(seconds=engine.timeout_s) from error
        except OffEngine as error:
            raise _refused(self._engine, error) from error
        except _UNREACHABLE as error:
            raise EngineUnavailable(engine=self._engine) from error
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            raise EngineFailed(engine=self._engine) from error

    async def close(self) -> None:
        """Nothing is held between requests: each has a client of its own."""


def openai_messages(turns: list[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages as OpenAI's API (vLLM, transformers serve, …) takes them: a message
    with pictures to show becomes content parts, pictures first, each a data URL.

    Blocking (base64 of a few MB, a header read per picture): run it in a thread.
    """
    messages: list[dict[str, Any]] = []
    for message, shown in zip(turns, shown_images(turns), strict=True):
        plain = message.as_dict(shown)
        if not shown:
            messages.append(plain)
            continue
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}}
            for image in message.images[len(message.images) - shown :]
        ]
        if plain["content"]:
            parts.append({"type": "text", "text": plain["content"]})
        messages.append({"role": message.role, "content": parts})
    return messages


def _status(error: HfHubHTTPError) -> int:
    return error.response.status_code if error.response is not None else 0


def _http_error(engine: str, status: int, shown: bool) -> Exception:
    """Overload is "busy" (try again soon); a server error "unavailable"; the rest "failed"."""
    if shown:
        return EngineFailed(engine=engine)
    if status in (429, 503):
        return EngineBusy(engine=engine)
    return EngineUnavailable(engine=engine) if status >= 500 else EngineFailed(engine=engine)


def _refused(engine: str, error: OffEngine) -> Exception:
    log.error("engine %s: a request was bound for %s; refused", engine, error)
    return EngineFailed(engine=engine)


# A one-shot call: (the engine's client, the model's name there, the text, the parameters).
OneShotCall = Callable[[httpx2.AsyncClient, str, str, Mapping[str, Any]], Awaitable[Any]]


async def _post(http: httpx2.AsyncClient, route: str, body: Mapping[str, Any]) -> Any:
    response = await http.post(route, json=body)
    response.raise_for_status()
    return response.json()


def _scores(found: Any) -> list[dict[str, Any]]:
    """Labels and scores, best first, as the text-classification pipeline gives them."""
    rows = [{"label": str(item["label"]), "score": float(item["score"])} for item in found]
    return sorted(rows, key=lambda row: row["score"], reverse=True)


async def _tei_classify(http: httpx2.AsyncClient, _: str, text: str, __: Mapping[str, Any]) -> Any:
    """text-embeddings-inference: `POST /predict`, every label with its score."""
    return _scores(await _post(http, "/predict", {"inputs": text, "truncate": True}))


async def _vllm_classify(
    http: httpx2.AsyncClient, model: str, text: str, _: Mapping[str, Any]
) -> Any:
    """vLLM's `POST /classify`: the top label, and each class's probability unnamed."""
    [row] = (await _post(http, "/classify", {"model": model, "input": text}))["data"]
    return [{"label": str(row["label"]), "score": max(float(p) for p in row["probs"])}]


async def _pipeline(http: httpx2.AsyncClient, text: str, params: Mapping[str, Any]) -> Any:
    """An Inference Endpoint's default container: the pipeline's own call at `POST /`."""
    return await _post(http, "/", {"inputs": text, "parameters": dict(params)})


async def _pipeline_classify(
    http: httpx2.AsyncClient, _: str, text: str, params: Mapping[str, Any]
) -> Any:
    found = await _pipeline(http, text, params)
    return _scores(found[0] if found and isinstance(found[0], list) else found)


async def _pipeline_entities(
    http: httpx2.AsyncClient, _: str, text: str, params: Mapping[str, Any]
) -> Any:
    return [
        {
            "entity_group": str(item.get("entity_group") or item["entity"]),
            "score": float(item["score"]),
            "word": str(item["word"]),
            "start": item.get("start"),
            "end": item.get("end"),
        }
        for item in await _pipeline(http, text, params)
    ]


async def _pipeline_summary(
    http: httpx2.AsyncClient, _: str, text: str, params: Mapping[str, Any]
) -> Any:
    return {"summary_text": str((await _pipeline(http, text, params))[0]["summary_text"])}


async def _pipeline_translation(
    http: httpx2.AsyncClient, _: str, text: str, params: Mapping[str, Any]
) -> Any:
    found = await _pipeline(http, text, params)
    return {"translation_text": str(found[0]["translation_text"])}


async def _pipeline_zero_shot(
    http: httpx2.AsyncClient, _: str, text: str, params: Mapping[str, Any]
) -> Any:
    found = await _pipeline(http, text, params)
    ranked = sorted(
        zip(found["labels"], found["scores"], strict=True), key=lambda pair: pair[1], reverse=True
    )
    return {
        "sequence": text,
        "labels": [str(label) for label, _ in ranked],
        "scores": [float(score) for _, score in ranked],
    }


def _one_shot(call: OneShotCall) -> Callable[..., Awaitable[Any]]:
    async def serve(engine: RemoteEngine, inputs: Any, params: Mapping[str, Any], _: Any) -> Any:
        return await engine.one_shot(call, inputs, params)

    return serve


async def _complete(
    engine: RemoteEngine, inputs: Any, params: Mapping[str, Any], on_text: TextCallback
) -> Any:
    return await engine.complete(inputs, params, on_text)


RemoteServe = Callable[..., Awaitable[Any]]
_CHAT: dict[str, RemoteServe] = {"chat": _complete, "text-generation": _complete}

# What each pipeline task becomes on an engine, by the API it speaks (docs/engines.md has
# this table for operators); a task missing from every row runs locally only.
REMOTE_TASKS: dict[EngineApi, dict[str, RemoteServe]] = {
    "openai": _CHAT,
    "vllm": {**_CHAT, "text-classification": _one_shot(_vllm_classify)},
    "tei": {"text-classification": _one_shot(_tei_classify)},
    "pipelines": {
        "text-classification": _one_shot(_pipeline_classify),
        "token-classification": _one_shot(_pipeline_entities),
        "summarization": _one_shot(_pipeline_summary),
        "translation": _one_shot(_pipeline_translation),
        "zero-shot-classification": _one_shot(_pipeline_zero_shot),
    },
}
