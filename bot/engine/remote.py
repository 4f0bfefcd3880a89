"""Models on an inference engine the operator already runs: transformers serve, TGI, vLLM,
Inference Endpoints, anything with an OpenAI-compatible or Inference API.

A model named `<engine>:<model>` is served by a `RemoteEngine` behind the same
`PipelinePool.submit` as local ones: conversations and /generate through
`AsyncInferenceClient.chat_completion` (streamed; a conversation's pictures go as
OpenAI `image_url` parts holding data URLs), one-shot tasks through the
client's task methods where the engine offers them. Each engine has a bound on
requests in flight (and on requests waiting for one, refused as busy beyond
it); per-user parameters travel under the engine's names. Errors map to the
bot's own: an engine that cannot be reached is retried with backoff before
its first token, never after text was shown; overload (429/503) is "busy".
Nothing here knows about Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from huggingface_hub import AsyncInferenceClient, set_async_client_factory
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from bot.config import EngineSettings
from bot.engine.chat import ChatMessage, ChatPrompt, estimate_tokens, fit_estimated, shown_images
from bot.engine.inputs import image_data_url
from bot.engine.metrics import EngineStats
from bot.engine.microbatch import ANONYMOUS, Caller
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


async def _keep_error_body(response: httpx2.Response) -> None:
    """Read an error's body while the stream is open, so the error can say what went wrong."""
    if response.status_code >= 400:
        await response.aread()


def engine_session() -> httpx2.AsyncClient:
    """The HTTP client of inference requests: the operator's own engines, not the Hub.

    huggingface_hub's default one refuses every request while HF_HUB_OFFLINE
    is set, and an air-gapped bot is exactly where a local engine is reached;
    the bot only ever uses AsyncInferenceClient for its engines.
    """
    return httpx2.AsyncClient(
        event_hooks={"response": [_keep_error_body]}, follow_redirects=True, timeout=None
    )


class RemoteEngines:
    """The operator's named engines: their clients, bounds, model lists, health and stats."""

    def __init__(self, engines: Mapping[str, EngineSettings]) -> None:
        set_async_client_factory(engine_session)
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

    def client(self, name: str) -> AsyncInferenceClient:
        """A client of its own per request: closing it closes that request's stream at once."""
        engine = self._settings[name]
        return AsyncInferenceClient(
            base_url=engine.base_url.rstrip("/"), token=engine.token(), timeout=engine.timeout_s
        )

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
        engine = self._settings[name]
        base = engine.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {engine.token()}"} if engine.token() else {}
        try:
            async with httpx2.AsyncClient(timeout=10.0, headers=headers) as http:
                listed = await http.get(f"{base}/v1/models")
                if listed.status_code == 200:
                    return frozenset(str(item["id"]) for item in listed.json()["data"])
                info = await http.get(f"{base}/info")
                if info.status_code == 200:
                    return frozenset({str(info.json()["model_id"])})
        except (*_UNREACHABLE, ValueError, KeyError, TypeError) as error:
            raise EngineUnavailable(engine=name) from error
        raise EngineUnavailable(engine=name)

    async def health(self) -> dict[str, str]:
        """Each engine, reachable or not (a `/health` answer, else its model list)."""
        found: dict[str, str] = {}
        for name in self._settings:
            try:
                self._models.pop(name, None)
                await self.served_models(name)
                found[name] = "ok"
            except EngineUnavailable:
                found[name] = "unreachable"
            self.reachable[name] = found[name] == "ok"
        return found


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
        serve = REMOTE_TASKS.get(self.task)
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
        text = await self._stream(messages, params, on_text, prefix)
        if isinstance(inputs, ChatPrompt):
            return [{"generated_text": text, "dropped_turns": dropped}]
        return [{"generated_text": prefix + text}]

    async def _stream(
        self,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        on_text: TextCallback,
        prefix: str,
    ) -> str:
        """Retry a connection that fails before the first token; never once text was shown."""
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
                            on_text(prefix + text)
                return text
            except HfHubHTTPError as error:
                raise _http_error(self._engine, error, shown) from error
            except InferenceTimeoutError as error:
                raise RequestTimeout(seconds=engine.timeout_s) from error
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

    async def one_shot(self, call: RemoteCall, inputs: Any, params: Mapping[str, Any]) -> Any:
        """A one-shot task through the client's task method; its answer as a pipeline gives it."""
        try:
            async with self._engines.client(self._engine) as client:
                answer = await call(client, self._model, inputs, params)
        except HfHubHTTPError as error:
            raise _http_error(self._engine, error, False) from error
        except InferenceTimeoutError as error:
            raise RequestTimeout(seconds=self._engines.settings(self._engine).timeout_s) from error
        except _UNREACHABLE as error:
            raise EngineUnavailable(engine=self._engine) from error
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EngineFailed(engine=self._engine) from error
        return answer

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


def _http_error(engine: str, error: HfHubHTTPError, shown: bool) -> Exception:
    """Overload is "busy" (try again soon); a server error "unavailable"; the rest "failed"."""
    status = error.response.status_code if error.response is not None else 0
    if shown:
        return EngineFailed(engine=engine)
    if status in (429, 503):
        return EngineBusy(engine=engine)
    return EngineUnavailable(engine=engine) if status >= 500 else EngineFailed(engine=engine)


RemoteCall = Callable[[AsyncInferenceClient, str, Any, Mapping[str, Any]], Awaitable[Any]]


async def _classify(
    client: AsyncInferenceClient, model: str, text: Any, _: Mapping[str, Any]
) -> Any:
    found = await client.text_classification(str(text), model=model)
    return [{"label": item.label, "score": float(item.score)} for item in found]


async def _token_classify(
    client: AsyncInferenceClient, model: str, text: Any, _: Mapping[str, Any]
) -> Any:
    found = await client.token_classification(str(text), model=model, aggregation_strategy="simple")
    return [
        {
            "entity_group": item.entity_group,
            "score": float(item.score),
            "word": item.word,
            "start": item.start,
            "end": item.end,
        }
        for item in found
    ]


async def _summarize(
    client: AsyncInferenceClient, model: str, text: Any, _: Mapping[str, Any]
) -> Any:
    found = await client.summarization(str(text), model=model)
    return {"summary_text": found.summary_text}


async def _translate(
    client: AsyncInferenceClient, model: str, text: Any, _: Mapping[str, Any]
) -> Any:
    found = await client.translation(str(text), model=model)
    return {"translation_text": found.translation_text}


async def _zero_shot(
    client: AsyncInferenceClient, model: str, text: Any, params: Mapping[str, Any]
) -> Any:
    labels = list(params.get("candidate_labels", ()))
    found = await client.zero_shot_classification(str(text), labels, model=model)
    ranked = sorted(found, key=lambda item: item.score, reverse=True)
    return {
        "sequence": str(text),
        "labels": [item.label for item in ranked],
        "scores": [float(item.score) for item in ranked],
    }


def _one_shot(call: RemoteCall) -> Callable[..., Awaitable[Any]]:
    async def serve(engine: RemoteEngine, inputs: Any, params: Mapping[str, Any], _: Any) -> Any:
        return await engine.one_shot(call, inputs, params)

    return serve


async def _complete(
    engine: RemoteEngine, inputs: Any, params: Mapping[str, Any], on_text: TextCallback
) -> Any:
    return await engine.complete(inputs, params, on_text)


# What each pipeline task becomes on a remote engine; a task missing here runs locally only.
REMOTE_TASKS: dict[str, Callable[..., Awaitable[Any]]] = {
    "chat": _complete,
    "text-generation": _complete,
    "text-classification": _one_shot(_classify),
    "token-classification": _one_shot(_token_classify),
    "summarization": _one_shot(_summarize),
    "translation": _one_shot(_translate),
    "zero-shot-classification": _one_shot(_zero_shot),
}
