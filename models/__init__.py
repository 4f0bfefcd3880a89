"""Persistent state: the typed ORM with its queries beside each table, the async
SettingsStore (sessions, cache, StoreUnavailable) and the migrations runner."""

from models.rule import ModelRule
from models.store import ResolvedSettings, SettingsStore

__all__ = ["ModelRule", "ResolvedSettings", "SettingsStore"]
