"""The bot's one Settings object, read from the environment and `.env`.

Every knob an operator can turn lives here, so `.env.example` and the table of
docs/configuration.md can be checked against this class and never drift.
Telegram and database settings keep their conventional unprefixed names;
everything that belongs to hfbot itself is prefixed `HFBOT_`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class MissingTokenError(RuntimeError):
    """Raised when the bot is asked to talk to Telegram without a token."""

    def __init__(self) -> None:
        super().__init__(
            "TELEGRAM_BOT_TOKEN is not set: put it in .env or the environment "
            "(ask @BotFather for one; see .env.example)."
        )


def _split_csv(value: object) -> object:
    """Accept `1,2,3` (the natural way to write a list in .env) as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# The HTTP APIs the bot speaks to engines; which commands each serves is REMOTE_TASKS in
# bot/engine/remote.py (docs/engines.md has the table).
EngineApi = Literal["openai", "vllm", "tei", "pipelines"]
# KV-cache tokens per running generation when the operator leaves the count to the cache.
GENERATION_TOKENS_PER_SLOT = 256


class EngineSettings(BaseModel):
    """One inference engine the operator already runs, reached over its HTTP API."""

    base_url: str = Field(description="Root URL, e.g. http://127.0.0.1:8000")
    api: EngineApi = Field(
        default="openai",
        description=(
            "The API it speaks, which decides the commands it serves: openai (transformers "
            "serve, llama.cpp, SGLang, TGI), vllm, tei (text-embeddings-inference) or pipelines "
            "(an Inference Endpoint's default container)."
        ),
    )
    models: list[str] = Field(
        default_factory=list,
        description="What it serves, for an engine that cannot list its models (pipelines).",
    )
    token_env: str | None = Field(
        default=None, description="Name of the environment variable that holds its token."
    )
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight at once.")
    queue_size: int = Field(default=64, ge=0, description="Requests that may wait for a slot.")
    context_tokens: int = Field(
        default=4096, ge=64, description="What its models read at most (trimming conversations)."
    )
    required: bool = Field(
        default=False, description="Whether /healthz fails while the engine cannot be reached."
    )
    sampling_extras: bool = Field(
        default=False,
        description="Send top_k and repetition_penalty too (TGI and vLLM read them; OpenAI does not).",
    )
    max_reply_chars: int = Field(
        default=16000,
        ge=1,
        description=(
            "Most characters of one streamed answer the bot reads: past it the stream is "
            "closed and the answer, cut there, says so (an engine ignoring max_tokens "
            "cannot flood a chat or a conversation's history)."
        ),
    )

    def token(self) -> str | None:
        """Read at use, never stored in settings, so it never reaches a log or a dump."""
        return os.environ.get(self.token_env) if self.token_env else None


class Settings(BaseSettings):
    """Configuration of one bot process."""

    model_config = SettingsConfigDict(
        env_prefix="HFBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    # Telegram
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "telegram_bot_token"),
        description="Bot token from @BotFather. Required to run the bot.",
    )
    telegram_api_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_API_BASE_URL", "telegram_api_base_url"),
        description=(
            "Root URL of a self-hosted Bot API server, e.g. http://127.0.0.1:8081. "
            "Empty: https://api.telegram.org."
        ),
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description=(
            "Telegram user ids of the bot's admins, comma separated (/stats, /allow, /deny, "
            "/grant, /revoke, /invite); they may always use the bot."
        ),
    )
    allowed_users: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description=(
            "Telegram user ids who may use the bot in private chats and inline, comma separated. "
            "Empty here, in HFBOT_ALLOWED_GROUPS and in the database (/grant, /revoke, /invite): "
            "everyone may."
        ),
    )
    allowed_groups: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description=(
            "Ids of the groups and channels the bot serves (negative numbers), comma separated; "
            "it leaves any other once the bot is private."
        ),
    )

    # Receiving updates: long polling unless a webhook URL is set
    webhook_url: str | None = Field(
        default=None,
        description=(
            "Public HTTPS base URL Telegram posts updates to (e.g. https://bot.example.org); "
            "empty: long polling."
        ),
    )
    webhook_path: str = Field(default="/telegram", description="Path of the webhook endpoint.")
    webhook_listen: str = Field(default="0.0.0.0", description="Address the webhook server binds.")
    webhook_port: int = Field(
        default=8080, ge=1, le=65535, description="Port the webhook server binds."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token; requests without it get 403. "
            "Empty: a random one per start."
        ),
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long requests in flight may finish before their users are told.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Serve /healthz and /metrics on this port of HFBOT_METRICS_LISTEN (then /metrics is "
            "not on the webhook port); empty: in webhook mode both share the webhook port."
        ),
    )
    metrics_listen: str = Field(
        default="127.0.0.1",
        description="Address the /healthz and /metrics server of HFBOT_METRICS_PORT binds.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "When set, /metrics answers 401 unless sent `Authorization: Bearer <token>`, and "
            "/healthz on the webhook port names its parts to a request carrying it."
        ),
    )
    health_engine_check_s: float = Field(
        default=30.0,
        ge=0,
        description=(
            "How long /healthz trusts its last look at the inference engines: however often "
            "it is asked, each engine is called at most once in this many seconds."
        ),
    )

    # Storage
    database_url: str = Field(
        default="sqlite+aiosqlite:///./hfbot.db",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://…",
    )
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema to head when `hfbot run` starts."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Redis shared by several `hfbot run` processes of one bot (same token and "
            "database), e.g. redis://127.0.0.1:6379/0: each person's rate limit and in-flight "
            "cap count across all of them, and a saved setting is seen at once by every one. "
            "Unset: one process, nothing shared."
        ),
    )
    settings_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long resolved user/chat settings are cached in memory."
    )
    database_start_wait_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "On start, how long to wait for a database that cannot be reached yet (retrying "
            "with backoff) before giving up with an error."
        ),
    )
    inbox_replay_window_s: float = Field(
        default=600.0,
        ge=0,
        description=(
            "On start, updates accepted but never answered that arrived this recently are "
            "handled again (once); older ones are given up. 0 turns replays off."
        ),
    )
    inbox_lease_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "With HFBOT_REDIS_URL: how long a replica's claim on the updates it handles holds "
            "without renewal (renewed every third of it); a replica that dies leaves its "
            "unanswered updates to the others this long after."
        ),
    )
    database_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Longest wait for the database to connect or answer a statement before a request "
            "is told it cannot be reached."
        ),
    )

    # Hugging Face
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("HF_TOKEN", "hf_token"),
        description="Hugging Face token for gated or private models. Never logged.",
    )
    hf_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HF_ENDPOINT", "hf_endpoint"),
        description=(
            "A Hugging Face Hub mirror, e.g. https://hf-mirror.com, for where huggingface.co "
            "cannot be reached: vetting, search, downloads and `hfbot models` all use it. "
            "Empty: https://huggingface.co."
        ),
    )
    model_source: Literal["hub", "modelscope"] = Field(
        default="hub",
        description=(
            "Where models come from: hub (huggingface.co, or HF_ENDPOINT) or modelscope "
            "(ModelScope, for where the Hub cannot be reached; defaults are mapped to their "
            "ModelScope ids). Every source is vetted by the same rules."
        ),
    )
    modelscope_endpoint: str | None = Field(
        default=None,
        description=(
            "ModelScope's address, e.g. https://www.modelscope.cn; empty: the modelscope "
            "package's own choice (MODELSCOPE_ENDPOINT, else modelscope.cn). Its token is read "
            "from MODELSCOPE_API_TOKEN."
        ),
    )
    default_models: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Override the registry\'s default model per task, as JSON: {"sentiment": "org/model"}.'
        ),
    )

    # Pipeline pool
    pool_memory_budget_mb: int | Literal["auto", "off"] = Field(
        default="auto",
        description=(
            "Memory the loaded models may use together: auto is HFBOT_POOL_MEMORY_SHARE of this "
            "machine's RAM (or of its container's memory limit, if lower); a number is MiB; off "
            "is no limit. Beyond it the least recently used idle model is unloaded, and a model "
            "larger than the whole budget is refused. Each model counts what it was measured to "
            "use once loaded (weights or ONNX session, plus what its first batch keeps)."
        ),
    )
    pool_memory_share: float = Field(
        default=0.5,
        gt=0,
        le=0.95,
        description=(
            "Share of the machine's memory that HFBOT_POOL_MEMORY_BUDGET_MB=auto gives models "
            "(0.5: half; the rest is left to the bot itself, its database and the system)."
        ),
    )
    pool_max_loaded_models: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Optional cap on how many models stay loaded at once, on top of the memory budget; "
            "empty: memory alone decides."
        ),
    )
    pool_max_batch_size: int = Field(
        default=16, ge=1, description="Most requests one pipeline call serves."
    )
    pool_max_wait_ms: float = Field(
        default=5.0, ge=0, description="How long a request waits for others to join its batch."
    )
    pool_queue_size: int = Field(
        default=64,
        ge=1,
        description="Requests waiting per model before new ones are refused as busy.",
    )
    pool_request_timeout_s: float = Field(
        default=120.0, gt=0, description="A request that has not finished after this long fails."
    )
    pool_executor_workers: int = Field(
        default=1,
        ge=1,
        description=(
            "Threads running batches; torch already uses every core per call. Loads and ONNX "
            "exports run on a thread of their own, never on these."
        ),
    )
    pool_torch_threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "torch (and ONNX Runtime) intra-op threads; empty: every CPU core this process may "
            "use but one (its container's CPU quota counts), which is left to the event loop."
        ),
    )
    pool_device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="Where models run; auto picks cuda when available."
    )
    pool_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="Model dtype; auto: float16 on cuda, float32 on cpu."
    )
    engine_onnx: Literal["auto", "int8", "off"] = Field(
        default="auto",
        description=(
            "Run the encoder tasks (sentiment, NER, fill-mask, zero-shot, question answering, "
            "image classification) on ONNX Runtime: auto uses it where onnxruntime has a provider "
            "for the pool's device (always on CPU), each model exported once and checked against "
            "torch; int8 (CPU only) also quantizes each export (onnxruntime's dynamic "
            "quantization) and serves it where it gives torch's labels and spans with every "
            "score within 0.05, else the float graph; off keeps every model on torch."
        ),
    )
    engine_onnx_quiet_s: float = Field(
        default=2.0,
        ge=0,
        description=(
            "A model serves on torch as soon as it loads; its ONNX export waits until no model "
            "has run for this many seconds (an export keeps the CPU busy), or at most "
            "HFBOT_ENGINE_ONNX_WAIT_S."
        ),
    )
    engine_onnx_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="Longest an ONNX export waits for the bot to be quiet before it runs anyway.",
    )
    engine_onnx_cache_dir: Path | None = Field(
        default=None,
        description="Folder of exported ONNX models, reused across restarts; empty: <HF_HOME>/hfbot-onnx.",
    )

    generation_engine: Literal["continuous", "micro-batching"] = Field(
        default="continuous",
        description=(
            "How /generate runs on decoder-only models: continuous batching (every user's own "
            "settings in one running batch, streamed) or micro-batching only."
        ),
    )
    stream_generation: bool = Field(
        default=True,
        description="Stream /generate into one message edited as tokens arrive (users can turn it off with /set stream off).",
    )
    queue_status_after_s: float = Field(
        default=2.0,
        ge=0,
        description="A request still waiting for the model after this many seconds gets a status line with its place in line, replaced by the answer.",
    )
    generation_kv_cache_tokens: int = Field(
        default=8192,
        ge=256,
        description="KV-cache size of each continuous-batching engine, in tokens shared by all requests.",
    )
    generation_max_running: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Generation and chat requests each continuous-batching engine runs at once; the rest "
            "wait in the bot's own line, taking turns across people and told their place, and one "
            "person holds at most an eighth of the engine. Empty: one per 256 tokens of "
            "HFBOT_GENERATION_KV_CACHE_TOKENS (32 at the default 8192: a short conversation plus "
            "its answer each; fewer fit where prompts are longer, since admitted requests never "
            "reserve more than the cache holds). 0: no line."
        ),
    )

    # Remote inference engines
    engines: dict[str, EngineSettings] = Field(
        default_factory=dict,
        description=(
            "Inference engines the bot may use, as JSON: "
            '{"serve": {"base_url": "http://127.0.0.1:8000"}}. A model on one is named '
            "`<engine>:<model>`, e.g. serve:HuggingFaceTB/SmolLM2-360M-Instruct."
        ),
    )

    # Conversations
    chat_system_prompt: str = Field(
        default="You are a helpful assistant in a Telegram chat. Answer briefly and clearly.",
        description="What the chat model is told first, where neither the user nor the group set one.",
    )
    chat_history_messages: int = Field(
        default=40,
        ge=2,
        description=(
            "Most earlier messages of a conversation read for a turn; the model's context "
            "trims them further, oldest first."
        ),
    )
    chat_retention_days: int = Field(
        default=30,
        ge=0,
        description="Conversation messages older than this many days are deleted; 0 keeps them.",
    )

    # Limits a user meets
    max_input_chars: int = Field(default=2000, ge=1, description="Longest text a command accepts.")
    max_new_tokens_cap: int = Field(
        default=256, ge=1, description="Highest max_new_tokens a user may set."
    )
    max_return_sequences_cap: int = Field(
        default=3, ge=1, description="Highest num_return_sequences a user may set."
    )
    rate_limit_per_minute: int = Field(
        default=20, ge=0, description="Requests per user per minute; 0 turns the limit off."
    )
    daily_quota: int = Field(
        default=0,
        ge=0,
        description=(
            "Requests one person may have answered per day across model commands, counted "
            "since 00:00 UTC (failed requests do not count unless a model already did work "
            "for them: a stream that showed text, a voice note transcribed); the bot's admins "
            "are exempt and group admins may set a group's own with /groupquota. 0: no limit."
        ),
    )
    max_in_flight_per_user: int = Field(
        default=3, ge=1, description="Requests one user may have running or queued at once."
    )
    max_labels: int = Field(
        default=10,
        ge=2,
        description="Most candidate labels a zero-shot command (/classify, /labels) takes.",
    )
    max_label_chars: int = Field(default=60, ge=1, description="Longest candidate label.")
    max_work_chars: int = Field(
        default=8000,
        ge=1,
        description=(
            "Most model work one zero-shot request may ask for, as labels × characters of text "
            "(each label is one pass over the text)."
        ),
    )
    max_work_tokens: int = Field(
        default=512,
        ge=1,
        description="Most tokens one request may ask to generate: num_return_sequences × max_new_tokens.",
    )
    max_reply_messages: int = Field(
        default=3,
        ge=1,
        description="Most messages one answer is split into; a longer one is cut and also sent as a file.",
    )

    log_level: str = Field(
        default="INFO", description="Python logging level; DEBUG also logs the text of requests."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as readable text or as one JSON object per line."
    )

    # Hub
    allow_any_hub_model: bool = Field(
        default=False,
        description=(
            "Let users pick any Hub model that passes vetting. Off: only registry defaults, "
            "HFBOT_MODEL_DIR models and the admins' allow-list."
        ),
    )
    model_dir: Path | None = Field(
        default=None,
        description=(
            "Folder of pre-fetched models (<dir>/<owner>/<name>); its models are always allowed "
            "and `hfbot models fetch` downloads into it."
        ),
    )
    max_model_params: int | None = Field(
        default=1_000_000_000,
        ge=1,
        description="Largest parameter count a model may have.",
    )
    max_model_size_mb: int | None = Field(
        default=4096,
        ge=1,
        description="Largest total size of a model's weight files (MiB).",
    )
    vet_cache_ttl_s: float = Field(
        default=3600.0,
        ge=0,
        description="How long a model's vetting result is reused without asking the Hub.",
    )
    model_disk_budget_mb: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Most disk the models the bot downloads may use in the Hugging Face cache (MiB); "
            "beyond it the least recently used ones not loaded are deleted. Empty: no limit."
        ),
    )
    download_workers: int = Field(
        default=2, ge=1, description="Model downloads that may run at once (threads of their own)."
    )

    @field_validator("admin_ids", "allowed_users", "allowed_groups", mode="before")
    @classmethod
    def _ids_from_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("pool_memory_budget_mb")
    @classmethod
    def _positive_budget(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("a memory budget is at least 1 MiB (or auto, or off)")
        return value

    @property
    def generation_running_limit(self) -> int | None:
        """How many sequences a continuous-batching engine runs at once (None: no line)."""
        if self.generation_max_running is None:
            return max(1, self.generation_kv_cache_tokens // GENERATION_TOKENS_PER_SLOT)
        return self.generation_max_running or None

    def remote_model(self, model_id: str) -> tuple[str, str] | None:
        """(engine, model name) for `<engine>:<model>` when that engine is configured."""
        engine, sep, name = model_id.strip().partition(":")
        return (engine, name) if sep and name and engine in self.engines else None

    def require_token(self) -> str:
        """The token, or a MissingTokenError whose message is the one line a user needs."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value():
            raise MissingTokenError
        return self.telegram_bot_token.get_secret_value()

    # Photos and voice notes
    max_file_mb: float = Field(
        default=20.0,
        gt=0,
        le=20,
        description="Largest photo, voice note or file downloaded (MB); Telegram's own cap is 20.",
    )
    max_image_pixels: int = Field(
        default=25_000_000, ge=1, description="Most pixels an image may decode to."
    )
    max_image_decode_mb: float = Field(
        default=64.0,
        gt=0,
        description=(
            "Most memory an image may decode to (MB): pixels × channels × bytes a channel, "
            "read from its header first. A larger JPEG is decoded at 1/2, 1/4 or 1/8 of its "
            "size; any other picture is refused."
        ),
    )
    max_audio_seconds: float = Field(
        default=60.0, gt=0, description="Longest voice note, audio or video note transcribed."
    )

    # Pictures and voices out
    max_image_work: float = Field(
        default=4.0,
        gt=0,
        description=(
            "Most drawing one /imagine request may ask for, in megapixel-steps: width × height × "
            "steps, doubled when guidance is above 1. The default model draws 512×512 in one "
            "step (0.26); 4 allows e.g. 1024×1024 in 4 steps or 512×512 in 15."
        ),
    )
    max_speech_chars: int = Field(
        default=600, ge=1, description="Longest text /say reads aloud in one voice note."
    )
    vision_image_edge: int | None = Field(
        default=1024,
        ge=64,
        description=(
            "Longest side (pixels) a model that sees reads a photo at, where its processor "
            "resizes to one (SmolVLM, Idefics3): each 512-px tile costs a pass of its vision "
            "encoder and 64 tokens, so a phone photo at SmolVLM's own 2048 px is 13 tiles, "
            "at 1024 five. Empty: the model's own."
        ),
    )
