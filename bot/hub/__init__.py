"""Which models may run, and getting them onto this machine: vetting, model facts, downloads.

Knows nothing of Telegram: a chat command and `hfbot models fetch` use it alike.
What handlers may use is exported here, and they import only this surface.
"""

from bot.hub.downloads import ModelDownloads, ThrottledStatus
from bot.hub.hub_access import rule_id
from bot.hub.vetting import ModelVetter, VettedModel

__all__ = ["ModelDownloads", "ModelVetter", "ThrottledStatus", "VettedModel", "rule_id"]
