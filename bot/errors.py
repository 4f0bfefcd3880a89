"""One error type per thing a user (or the bot's surroundings) can get wrong.

Each carries a message key and the values the message needs; handlers turn
them into a localized one-line reply in one place. Nothing here knows about
Telegram or transformers, so the pool, the store and the handlers share them.
"""

from __future__ import annotations

from typing import Any


class UserFacingError(Exception):
    """An error whose message is meant for the person who sent the request."""

    key: str = "error.generic"

    def __init__(self, **values: Any) -> None:
        self.values = values
        super().__init__(f"{self.key} {values}" if values else self.key)


class EmptyInput(UserFacingError):
    key = "error.empty_input"


class InputTooLong(UserFacingError):
    key = "error.input_too_long"


class ContextTooLong(UserFacingError):
    """The prompt plus the tokens to generate do not fit in what the model can read."""

    key = "error.context_too_long"


class UnknownTask(UserFacingError):
    key = "error.unknown_task"


class UnknownParam(UserFacingError):
    key = "error.unknown_param"


class InvalidParamValue(UserFacingError):
    key = "error.invalid_param_value"


class UnknownModel(UserFacingError):
    key = "error.unknown_model"


class WrongTaskModel(UserFacingError):
    key = "error.wrong_task_model"


class ModelNotAllowed(UserFacingError):
    key = "error.model_not_allowed"


class ModelLoadFailed(UserFacingError):
    key = "error.model_load_failed"


class ModelExceedsMemory(ModelLoadFailed):
    """The model alone needs more memory than the pool may give all its models together."""

    key = "error.model_exceeds_memory"


class PoolBusy(UserFacingError):
    key = "error.pool_busy"


class PoolClosed(UserFacingError):
    key = "error.pool_closed"


class RequestTimeout(UserFacingError):
    key = "error.request_timeout"


class EngineUnavailable(UserFacingError):
    """The inference engine serving a remote model cannot be reached."""

    key = "error.engine_unavailable"


class EngineBusy(UserFacingError):
    """The engine answered 429 or 503: it is overloaded, not gone."""

    key = "error.engine_busy"


class EngineFailed(UserFacingError):
    """The engine answered something unreadable, or broke off mid-answer."""

    key = "error.engine_failed"


class RemoteModelUnknown(UserFacingError):
    key = "error.remote_model_unknown"


class RemoteTaskUnsupported(UserFacingError):
    """A task whose models run on the bot's own machine only (photos, sound, fill-mask …)."""

    key = "error.remote_task_unsupported"


class EngineTaskUnsupported(UserFacingError):
    """The engine's API has no route for this command (docs/engines.md, which serves what)."""

    key = "error.engine_task_unsupported"


class StoreUnavailable(UserFacingError):
    key = "error.store_unavailable"


# Hub vetting: one refusal per reason a model cannot be used (bot/hub/vetting.py).


class ModelDenied(ModelNotAllowed):
    """An admin put this model on the deny-list; it beats every allow rule."""

    key = "error.model_denied"


class GatedModel(UserFacingError):
    """The repo is gated and this bot has no token, or its token was not granted access."""

    key = "error.gated_model"


class UnsafeWeights(UserFacingError):
    """No safetensors weights: loading pickle files (.bin, .pt, .ckpt) can run arbitrary code."""

    key = "error.unsafe_weights"


class ModelChanged(UserFacingError):
    """A downloaded file is not what vetting saw: the model changed at its source meanwhile."""

    key = "error.model_changed"


class UnsafeWeightsTryOther(UnsafeWeights):
    """No safetensors weights, and a model that does the same job with them is known."""

    key = "error.unsafe_weights_try"


class ModelTooLarge(UserFacingError):
    key = "error.model_too_large"


class NoChatTemplate(UserFacingError):
    """A model with no chat template cannot hold a conversation (it was not tuned for one)."""

    key = "error.no_chat_template"


class RemoteCodeRequired(UserFacingError):
    """The model needs its own Python code, and `trust_remote_code` is never set."""

    key = "error.remote_code_required"


class HubUnavailable(UserFacingError):
    """The Hub cannot be reached (or offline mode is on) and the model is not cached locally."""

    key = "error.hub_unavailable"


# Chat-level refusals: what a person typed, or who they are, does not fit the command.


class RateLimited(UserFacingError):
    key = "error.rate_limited"


class TooManyLabels(UserFacingError):
    key = "error.too_many_labels"


class LabelTooLong(UserFacingError):
    key = "error.label_too_long"


class QuotaExceeded(UserFacingError):
    """A person used up their daily quota; the message names the limit and when it resets."""

    key = "error.quota_exceeded"


class GroupQuotaExceeded(QuotaExceeded):
    """A member used up the daily quota this group's admins set (`/groupquota`)."""

    key = "error.group_quota_exceeded"


class TooManyInFlight(UserFacingError):
    """One person already has as many requests running as the bot allows."""

    key = "error.too_many_in_flight"


class NotGroupAdmin(UserFacingError):
    key = "error.not_group_admin"


class NotGroupAdminStats(NotGroupAdmin):
    """/stats in a group by someone who is not one of its admins."""

    key = "error.not_group_admin_stats"


class GroupOnly(UserFacingError):
    key = "error.group_only"


class BotAdminOnly(UserFacingError):
    key = "error.bot_admin_only"


class AdminAlwaysAllowed(UserFacingError):
    """/revoke of one of the bot's admins: HFBOT_ADMIN_IDS may always use the bot."""

    key = "error.admin_always_allowed"


class NotAllowed(UserFacingError):
    """Someone the access rule refuses (the gate stops them first; a model call checks again)."""

    key = "access.private"


class AccessUnknown(UserFacingError):
    """The access rule needs the database, which cannot be reached."""

    key = "access.unavailable"


class InvalidInvite(UserFacingError):
    """An invite code that is used up, expired, or was never made."""

    key = "error.invalid_invite"


class UnknownLanguage(UserFacingError):
    key = "error.unknown_language"


class NothingToCancel(UserFacingError):
    key = "error.nothing_to_cancel"


class StaleButton(UserFacingError):
    """Callback data this bot never made (forged, or from a button of an older version)."""

    key = "error.stale_button"


class SettingsNotYours(UserFacingError):
    key = "error.settings_not_yours"


class Cancelled(UserFacingError):
    """The person stopped their own request (/cancel or the Stop button)."""

    key = "result.cancelled"


class UsageHint(UserFacingError):
    """A command used the wrong way: the reply is that command's own usage line."""

    def __init__(self, key: str, **values: object) -> None:
        self.key = key
        super().__init__(**values)


class TooMuchWork(UsageHint):
    """One request would fan out into more model passes than the bot allows at once."""


class NoImage(UserFacingError):
    """A photo command with no photo in the message or the one it replies to."""

    key = "error.no_image"


class NoAudio(UserFacingError):
    """A sound command with no voice note, audio or video note to listen to."""

    key = "error.no_audio"


class FileTooLarge(UserFacingError):
    key = "error.file_too_large"


class ImageTooLarge(UserFacingError):
    key = "error.image_too_large"


class ImageTooMuchMemory(UserFacingError):
    """A picture whose header says its pixels would take more memory than the bot allows."""

    key = "error.image_memory"


class AudioTooLong(UserFacingError):
    key = "error.audio_too_long"


class UnreadableMedia(UserFacingError):
    """A file that is corrupt, or in a format Pillow or FFmpeg cannot read."""

    key = "error.unreadable_media"


class ImagesNotSupported(UserFacingError):
    """A picture sent in a conversation whose model reads text only."""

    key = "error.images_not_supported"


class UnspeakableText(UserFacingError):
    """Nothing of the text is in the voice's alphabet (an English voice given Thai, say)."""

    key = "error.unspeakable_text"


class PictureWithheld(UserFacingError):
    """The model's own safety checker blanked the picture it drew."""

    key = "error.picture_withheld"
