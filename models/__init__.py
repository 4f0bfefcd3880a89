"""Persistent state: the typed ORM and the async SettingsStore, the only code that writes SQL."""

from models.store import ModelRule, ResolvedSettings, SettingsStore

__all__ = ["ModelRule", "ResolvedSettings", "SettingsStore"]
