"""Session-scoped pytest fixtures for the tiny models in `tests.tiny_models`.

Loaded by `pytest_plugins = ["tests.support.model_fixtures"]` in conftest.py. Every
fixture writes into one shared session directory, so a model is built once per
run however many tests ask for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.offline import demo_models as tiny_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_classifier(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_classifier(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_gpt2(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_ner(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_ner(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_fill_mask(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_fill_mask(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_zero_shot(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_zero_shot(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_seq2seq(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_seq2seq(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_qa(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_qa(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_chat(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_chat(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_picture_maker(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_picture_maker(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_voice(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_voice(tiny_models_dir)


@pytest.fixture(scope="session")
def tiny_pinyin_voice(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_voice(tiny_models_dir, pinyin=True)


@pytest.fixture(scope="session")
def tiny_vision_chat(tiny_models_dir: Path) -> Path:
    return tiny_models.tiny_vision_chat(tiny_models_dir)
