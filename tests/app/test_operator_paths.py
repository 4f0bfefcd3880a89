"""The operator's machine stays the operator's: no local path, no folder's existence and
no engine's list of models reaches a user, and an engine's models obey the allow list.

The bot's default models here are tiny ones in local folders, as an operator's
own models would be.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.engine_standins import VllmStandIn, serve
from tests.support.harness import RunningBot, bot_settings, running_bot


def no_paths(text: str, *folders: Path) -> bool:
    return not any(str(folder) in text for folder in folders) and "/tmp" not in text


async def test_settings_and_models_name_a_local_model_by_its_folder_alone(
    bot: RunningBot, tiny_models_dir: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    default = bot.settings.default_models["sentiment"]
    assert default.startswith("/"), "the default is a local folder"

    [settings] = await bot.ask(alice, chat, "/settings sentiment")
    [listed] = await bot.ask(alice, chat, "/models sentiment")
    [chosen] = await bot.ask(alice, chat, f"/model sentiment {default}")

    shown = "local/" + Path(default).name
    assert shown in settings and shown in listed and shown in chosen
    for text in (settings, listed, chosen):
        assert no_paths(text, tiny_models_dir), text


async def test_a_path_given_to_model_is_refused_alike_whether_a_model_is_there_or_not(
    bot: RunningBot, tmp_path: Path
) -> None:
    there = tmp_path / "there" / "weights"
    there.mkdir(parents=True)
    (there / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    empty = tmp_path / "empty" / "weights"
    empty.mkdir(parents=True)
    missing = tmp_path / "missing" / "weights"
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    replies = [
        (await bot.ask(alice, chat, f"/model sentiment {folder}"))[0]
        for folder in (there, empty, missing)
    ]

    assert replies == ["The model “local/weights” is not on this bot's list of allowed models."] * 3


async def test_an_engine_refusal_names_none_of_its_models_and_its_models_need_allowing(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    async with serve(VllmStandIn(model="acme/in-house-secret")) as engine:
        settings = bot_settings(
            tmp_path, tiny_models_dir, engines={"gpu": {"base_url": engine.url, "api": "vllm"}}
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            admin = bot.person("Admin")
            bot.services.settings.admin_ids.append(admin.id)
            [unlisted] = await bot.ask(alice, chat, "/model sentiment gpu:acme/guess")
            [unallowed] = await bot.ask(alice, chat, "/model sentiment gpu:acme/in-house-secret")
            await bot.ask(admin, bot.emu.private_chat(admin), "/allow gpu:acme/guess")
            [allowed_unlisted] = await bot.ask(alice, chat, "/model sentiment gpu:acme/guess")
            await bot.ask(admin, bot.emu.private_chat(admin), "/allow gpu:acme/in-house-secret")
            [picked] = await bot.ask(alice, chat, "/model sentiment gpu:acme/in-house-secret")
            [answer] = await bot.ask(alice, chat, "/sentiment Lovely")

    not_allowed = "is not on this bot's list of allowed models."
    assert unlisted == f"The model “gpu:acme/guess” {not_allowed}"
    assert unallowed == f"The model “gpu:acme/in-house-secret” {not_allowed}"
    assert allowed_unlisted == "The engine “gpu” does not serve “acme/guess”."
    assert "in-house-secret" not in unlisted + allowed_unlisted
    assert picked == "Your model for sentiment is now gpu:acme/in-house-secret."
    assert answer.startswith("POSITIVE")
