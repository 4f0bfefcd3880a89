"""Conversations about pictures: a model that sees answers (streaming) about a photo, counts
what pictures cost when it trims, and a text-only model or a remote engine get what they can
read: a one-line refusal of a new picture, or OpenAI `image_url` parts."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest

from bot.config import EngineSettings, Settings
from bot.engine.chat import IMAGE_PLACEHOLDER, ChatMessage, ChatPrompt
from bot.engine.inputs import ImageBytes
from bot.engine.pool import PipelinePool
from bot.engine.runners import load_runner
from bot.engine.vision_chat import VisionChatRunner
from bot.errors import ImagesNotSupported
from bot.offline.media_samples import image_bytes
from bot.tasks import TASKS, VISION_CHAT_MODEL, ChatReply

CHAT = TASKS["chat"]
PIXELS = 25_000_000
GREEDY = {"max_new_tokens": 6, "do_sample": False}


def photo(width: int = 96, height: int = 64, image_format: str = "PNG") -> ImageBytes:
    return ImageBytes(image_bytes(width, height, image_format=image_format), PIXELS)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{"pool_max_wait_ms": 20, **values})


async def test_a_photo_with_a_question_is_answered_by_a_model_that_sees_as_it_streams(
    tiny_vision_chat: Path,
) -> None:
    prompt = ChatPrompt("Be brief.", (), "What is in this photo?", (photo(),))
    texts: list[str] = []
    async with PipelinePool(settings()) as pool:
        answer = await pool.submit(
            CHAT.pipeline_task, str(tiny_vision_chat), prompt, GREEDY, on_text=texts.append
        )
        plain = await pool.submit(
            CHAT.pipeline_task, str(tiny_vision_chat), ChatPrompt(None, (), "Hello"), GREEDY
        )
    assert isinstance(answer, ChatReply) and isinstance(plain, ChatReply)
    assert answer.dropped_turns == 0
    assert texts and texts[-1].strip() == answer.text
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert plain.dropped_turns == 0, "a model that sees also talks without pictures"


def test_only_the_newest_pictures_are_shown_and_older_ones_are_named(
    tiny_vision_chat: Path,
) -> None:
    runner = load_runner(CHAT.pipeline_task, str(tiny_vision_chat), device="cpu", dtype="float32")
    assert isinstance(runner, VisionChatRunner)
    history = tuple(
        message
        for index in range(3)
        for message in (
            ChatMessage("user", f"photo {index}", (photo(),)),
            ChatMessage("assistant", "I see it."),
        )
    )
    fitted = runner.fit(ChatPrompt(None, history, "And this one?", (photo(),)), 8)
    assert len(fitted.images) == 2
    assert fitted.text.count("<image>") == 2
    assert fitted.text.count(IMAGE_PLACEHOLDER) == 2


def test_trimming_counts_what_each_picture_costs(tiny_vision_chat: Path) -> None:
    """A conversation whose words fit, but not with its pictures, loses its oldest turn."""
    runner = load_runner(CHAT.pipeline_task, str(tiny_vision_chat), device="cpu", dtype="float32")
    assert isinstance(runner, VisionChatRunner)
    history = (ChatMessage("user", "look", (photo(200, 120),)), ChatMessage("assistant", "Nice."))
    prompt = ChatPrompt(None, history, "and now?", (photo(),))
    whole = runner.fit(prompt, 0)
    words_only = len(runner.tokenizer(whole.text)["input_ids"])
    runner.limit = whole.tokens + 7
    trimmed = runner.fit(prompt, 8)
    assert words_only + 8 <= runner.limit, "the words alone would have fitted"
    assert trimmed.dropped_turns == 1 and len(trimmed.images) == 1


async def test_one_person_leaving_stops_their_answer_and_not_their_batch_mates(
    tiny_vision_chat: Path,
) -> None:
    model = str(tiny_vision_chat)
    params = {"max_new_tokens": 40, "do_sample": False}
    async with PipelinePool(settings(pool_max_wait_ms=100)) as pool:
        leaving: asyncio.Task[Any] = asyncio.create_task(
            pool.submit(
                CHAT.pipeline_task,
                model,
                ChatPrompt(None, (), "first", (photo(),)),
                params,
                on_text=lambda _: leaving.cancel(),
            )
        )
        staying = asyncio.create_task(
            pool.submit(CHAT.pipeline_task, model, ChatPrompt(None, (), "second"), params)
        )
        answer = await staying
        with pytest.raises(asyncio.CancelledError):
            await leaving
        batches = dict(pool.metrics.batch_sizes)
    assert batches == {2: 1}, "both turns ran in one batch"
    assert isinstance(answer, ChatReply) and answer.dropped_turns == 0


async def test_a_text_only_model_refuses_a_new_picture_in_one_line_and_reads_old_ones_by_name(
    tiny_chat: Path,
) -> None:
    history = (ChatMessage("user", "see this", (photo(),)), ChatMessage("assistant", "Nice."))
    async with PipelinePool(settings()) as pool:
        with pytest.raises(ImagesNotSupported) as refused:
            await pool.submit(
                CHAT.pipeline_task,
                str(tiny_chat),
                ChatPrompt(None, (), "and this?", (photo(),)),
                GREEDY,
            )
        answer = await pool.submit(
            CHAT.pipeline_task, str(tiny_chat), ChatPrompt(None, history, "and now?"), GREEDY
        )
    assert refused.value.key == "error.images_not_supported"
    assert refused.value.values == {"suggestion": VISION_CHAT_MODEL}
    assert isinstance(answer, ChatReply)
    assert history[0].as_dict() == {"role": "user", "content": f"{IMAGE_PLACEHOLDER} see this"}


class OpenAIStandIn:
    """An OpenAI-compatible engine (as vLLM and transformers serve speak it) that records
    the chat requests it gets and streams one short answer."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def chat(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        self.requests.append(await request.json())
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("A red ", "and blue square."):
            chunk = {
                "id": "1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "acme/vlm",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def models(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"data": [{"id": "acme/vlm"}]})


@pytest.fixture
async def engine() -> AsyncIterator[OpenAIStandIn]:
    standin = OpenAIStandIn()
    app = aiohttp.web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/chat/completions", standin.chat)
    app.router.add_get("/v1/models", standin.models)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    standin.url = f"http://127.0.0.1:{port}"
    try:
        yield standin
    finally:
        await runner.cleanup()


async def test_a_remote_engine_receives_the_pictures_as_image_url_parts(
    engine: OpenAIStandIn,
) -> None:
    new, recent, old = photo(image_format="PNG"), photo(image_format="JPEG"), photo()
    history = (
        ChatMessage("user", "an old one", (old,)),
        ChatMessage("assistant", "Seen."),
        ChatMessage("user", "a recent one", (recent,)),
        ChatMessage("assistant", "Seen too."),
    )
    prompt = ChatPrompt("Be brief.", history, "What is this?", (new,))
    config = settings(engines={"vision": EngineSettings(base_url=engine.url)})
    async with PipelinePool(config) as pool:
        answer = await pool.submit(CHAT.pipeline_task, "vision:acme/vlm", prompt, GREEDY)

    assert answer == ChatReply("A red and blue square.")
    [request] = engine.requests
    messages = request["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1] == {"role": "user", "content": f"{IMAGE_PLACEHOLDER} an old one"}
    recent_parts, new_parts = messages[3]["content"], messages[-1]["content"]
    assert recent_parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert new_parts == [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(new.data).decode()},
        },
        {"type": "text", "text": "What is this?"},
    ]
