"""One row per command: every table keyed by the registry agrees with it.

Facts that cannot live in a `TaskSpec` (they need transformers, or they are
sentences) are kept in tables keyed by its rows; these tests fail when a row
is added in one place only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.pool import ENGINE_KINDS
from bot.engine.remote import REMOTE_TASKS
from bot.engine.runners import RUNNERS
from bot.hub.check import offered_models
from bot.i18n import CATALOGS
from bot.offline.demo_models import DEMO_BUILDERS
from bot.tasks import (
    MODEL_NOTES,
    MODELSCOPE_IDS,
    PARAMS,
    SAFE_ALTERNATIVES,
    TASKS,
    TRANSLATION_TARGETS,
    alternative_for,
    get_task,
)
from handlers.request.lifecycle import READERS
from handlers.request.parsing import PARSERS


def test_every_pipeline_task_has_a_runner_and_every_runner_a_task() -> None:
    assert set(RUNNERS) == {spec.pipeline_task for spec in TASKS.values()}


def test_the_remote_engine_serves_exactly_the_tasks_the_registry_calls_remote_capable() -> None:
    served = {task for tasks in REMOTE_TASKS.values() for task in tasks}
    assert served == {spec.pipeline_task for spec in TASKS.values() if spec.remote}


def test_every_command_has_a_demo_model() -> None:
    assert set(DEMO_BUILDERS) == set(TASKS)


def test_every_input_kind_and_style_has_a_reader_and_a_parser() -> None:
    assert {spec.input_kind for spec in TASKS.values()} <= set(READERS)
    assert {spec.input_style for spec in TASKS.values() if spec.input_kind == "text"} <= set(
        PARSERS
    )


def test_the_pool_serves_each_pipeline_task_on_its_rows_engine() -> None:
    for spec in TASKS.values():
        assert ENGINE_KINDS[spec.pipeline_task] == spec.engine
    assert [spec.name for spec in TASKS.values() if spec.streams] == ["generate", "chat"]


@pytest.mark.parametrize("language", sorted(CATALOGS))
def test_every_command_has_its_sentences_in_every_language(language: str) -> None:
    catalog = CATALOGS[language]
    for spec in TASKS.values():
        assert f"cmd.{spec.name}" in catalog, spec.name
        assert spec.empty_result is None or spec.empty_result in catalog, spec.name
        if spec.input_style == "labels":
            assert f"error.{spec.name}_needs_labels" in catalog, spec.name


def test_each_row_takes_known_parameters_and_names_what_vetting_searches() -> None:
    for spec in TASKS.values():
        assert set(spec.params) <= set(PARAMS)
        assert set(spec.defaults) <= set(spec.params)
        assert spec.model_kind.tags, spec.name


def test_a_task_is_found_by_name_alias_or_pipeline_task() -> None:
    assert get_task("/Sentiment").name == "sentiment"
    assert get_task("sentiment-analysis").name == "sentiment"
    assert get_task("text-generation").name == "generate"


def test_translation_targets_are_translation_models_of_one_family() -> None:
    assert TRANSLATION_TARGETS["zh"] == TASKS["translate"].default_model


def test_every_model_the_bot_offers_has_a_note_and_every_note_a_model() -> None:
    offered = {item.model_id for item in offered_models(Settings(_env_file=None))}
    assert set(MODEL_NOTES) == offered
    for model_id, note in MODEL_NOTES.items():
        assert note.weights_mb > 0, model_id
        assert "\n" not in note.line() and note.why, model_id


def test_the_modelscope_table_maps_only_models_the_bot_offers_to_other_ids() -> None:
    assert set(MODELSCOPE_IDS) <= set(MODEL_NOTES)
    for hub_id, modelscope_id in MODELSCOPE_IDS.items():
        assert modelscope_id != hub_id
        assert modelscope_id.count("/") == 1 and modelscope_id.split("/")[1] == hub_id.split("/")[1]


def test_a_refusal_names_an_alternative_that_ships_safetensors_on_main() -> None:
    summarize = TASKS["summarize"]
    assert alternative_for("sshleifer/distilbart-cnn-12-6", summarize) == summarize.default_model
    assert MODEL_NOTES[summarize.default_model].safetensors == "main"
    assert alternative_for("someone/pickled-classifier", TASKS["sentiment"]) == (
        TASKS["sentiment"].default_model
    )
    assert alternative_for(TASKS["caption"].default_model, TASKS["caption"]) is None
    for alternative in SAFE_ALTERNATIVES.values():
        assert MODEL_NOTES[alternative].safetensors == "main"


def test_the_models_page_lists_every_default_with_the_weight_size_of_its_note() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    readme = page.read_text(encoding="utf-8")
    table = readme[readme.index("**The defaults**") : readme.index("**Lighter models.**")]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if "| `/" in line}
    for spec in TASKS.values():
        row = rows[f"`/{spec.name}`"]
        note = MODEL_NOTES[spec.default_model]
        assert f"`{spec.default_model}`" in row, spec.name
        assert f"{note.weights_mb:,} MB" in row, spec.name
        assert ("on main" in row) == (note.safetensors == "main"), spec.name
    total_gb = sum(MODEL_NOTES[spec.default_model].weights_mb for spec in TASKS.values()) / 1000
    assert f"About {total_gb:.1f} GB for the {len(TASKS)} defaults" in table
