"""Persistent state: the typed ORM with its queries beside each table, a store per
aggregate on one database (sessions, cache, StoreUnavailable) and the migrations runner."""

from models.preference import ResolvedSettings
from models.rule import ModelRule
from models.store import Store

__all__ = ["ModelRule", "ResolvedSettings", "Store"]
