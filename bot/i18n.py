"""Every sentence the bot says, in English and Chinese.

Messages are plain `str.format` templates; values are HTML-escaped before
they are filled in, so a model id or a user's text can never break the
reply's markup. A test checks both catalogs have the same keys and
placeholders.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"

EN: dict[str, str] = {
    # errors: one per thing that can go wrong, keyed like bot.errors
    "error.generic": "Something went wrong on my side. Please try again.",
    "error.empty_input": "Please give me some text: <code>/{command} your text</code>, or reply to a message with /{command}.",
    "error.input_too_long": "That text is {length} characters long; the limit is {limit}.",
    "error.context_too_long": "Your text plus max_new_tokens comes to {tokens} tokens; this model reads at most {limit}. Use a shorter text or a smaller max_new_tokens.",
    "error.unknown_task": "There is no task called “{task}”. Tasks: {known}.",
    "error.unknown_param": "“{param}” is not a setting of {task}. Settings: {known}.",
    "error.invalid_param_value": "{param} can't be “{value}”. Allowed: {allowed}.",
    "error.unknown_model": "I can't find the model “{model}”.",
    "error.wrong_task_model": "“{model}” is a {actual} model, not one for {task}.",
    "error.model_not_allowed": "The model “{model}” is not on this bot's list of allowed models.",
    "error.model_denied": "The model “{model}” has been blocked by this bot's admins.",
    "error.model_load_failed": "The model “{model}” failed to load. Try again later or pick another with /model.",
    "error.model_exceeds_memory": "“{model}” needs {size} of memory, more than this bot gives all its models together ({budget}). Pick a smaller one with /model.",
    "error.pool_busy": "I'm busy right now. Please try again in a moment.",
    "error.pool_closed": "I'm restarting. Please send that again in a minute.",
    "error.request_timeout": "That took too long and was stopped. Try a shorter text or fewer tokens.",
    "error.engine_unavailable": "I can't reach the engine that serves this model ({engine}) right now. Please try again later.",
    "error.engine_busy": "The engine that serves this model ({engine}) is busy. Please try again in a moment.",
    "error.engine_failed": "The engine that serves this model ({engine}) stopped answering properly.",
    "error.remote_model_unknown": "The engine “{engine}” does not serve “{model}”.",
    "error.remote_task_unsupported": "/{task} runs on this bot's own models only, and “{model}” is on an inference engine.",
    "error.engine_task_unsupported": "The engine “{engine}” does not serve /{task}.",
    "error.store_unavailable": "I can't reach my database right now, so I can't save that. Please try again later.",
    "error.gated_model": "“{model}” is gated: this bot has no access to it (its admins can add a token that was granted access).",
    "error.unsafe_weights": "“{model}” has no safetensors weights (found: {found}), and the Hub has no safetensors conversion of it; I only load safetensors.",
    "error.model_changed": "“{model}” changed while I was downloading it ({file} is not the file I checked). Please try again.",
    "error.unsafe_weights_try": "“{model}” has no safetensors weights (found: {found}), and the Hub has no safetensors conversion of it; I only load safetensors. “{alternative}” does the same job and ships them.",
    "error.model_too_large": "“{model}” is too large for this bot ({size}; the limit is {limit}).",
    "error.remote_code_required": "“{model}” needs its own code to run, which this bot never executes.",
    "error.no_chat_template": "“{model}” has no chat template, so it can't hold a conversation. Pick an instruct or chat model.",
    "error.hub_unavailable": "I can't reach the Hugging Face Hub to check “{model}” right now.",
    "error.rate_limited": "Slow down a little: try again in {seconds} s.",
    "error.too_many_labels": "That is {count} labels; I take at most {limit}.",
    "error.label_too_long": "A label may be at most {limit} characters long (one has {length}).",
    "error.too_much_work_labels": "{labels} labels × {chars} characters is more work than one request may ask for (at most {limit}). Use fewer labels or a shorter text.",
    "error.too_much_work_tokens": "{sequences} × {tokens} tokens is more than one request may generate (at most {limit}). Lower num_return_sequences or max_new_tokens with /set.",
    "error.too_much_work_pixels": "A {size} picture in {steps} steps is {work} megapixel-steps of drawing; one request may ask for at most {limit}. Choose a smaller size or fewer steps with /set.",
    "error.images_not_supported": "This chat model reads text only, so it can't look at pictures. Pick one that can with <code>/model chat {suggestion}</code>.",
    "error.unspeakable_text": "This voice can't pronounce any of that text. Pick another voice with <code>/model say …</code>.",
    "error.picture_withheld": "The model's own safety checker withheld that picture. Try another prompt.",
    "error.too_many_in_flight": "You already have {limit} requests running. Wait for one to finish, or /cancel them.",
    "error.quota_exceeded": "You've used your {limit} requests for today. Your quota resets at {reset}, in {hours} h {minutes} min.",
    "error.group_quota_exceeded": "You've used the {limit} requests a day this group allows each member. The quota resets at {reset}, in {hours} h {minutes} min.",
    "error.not_group_admin": "Only this group's admins can change its defaults.",
    "error.group_only": "This command works in groups only.",
    "error.bot_admin_only": "Only the bot's admins can do that.",
    "error.ask_needs_context": "Reply with <code>/ask your question</code> to the message that holds the answer.",
    "error.classify_needs_labels": "Give labels after a “|”: <code>/classify I love it | happy, sad</code>",
    "error.fill_needs_mask": "Put <code>&lt;mask&gt;</code> (or <code>[MASK]</code>) where a word is missing: <code>/fill Paris is the &lt;mask&gt; of France.</code>",
    "error.usage_model": "Usage: <code>/{command} &lt;task&gt; &lt;model id&gt;</code>, e.g. <code>/{command} generate distilbert/distilgpt2</code>",
    "error.usage_set": "Usage: <code>/{command} &lt;setting&gt; &lt;value&gt;</code>, e.g. <code>/{command} temperature 0.7</code>. Settings: {known}.",
    "error.usage_lang": "Usage: <code>/lang en</code> or <code>/lang zh</code>.",
    "error.unknown_language": "I speak: {known}.",
    "error.nothing_to_cancel": "There is nothing of yours running.",
    "error.settings_not_yours": "These buttons belong to someone else: send /settings for yours.",
    "error.stale_button": "This button no longer works.",
    "hint.unknown_command": "I don't know /{command}. /help lists what I can do.",
    "queue.position": "⏳ #{position} in line…",
    "picture.drawing": "🎨 Drawing…",
    "voice.not_spoken": "<i>Not read aloud:</i>",
    "picture.drawing_step": "🎨 Drawing… step {step} of {steps}",
    "download.started": "Downloading <code>{model}</code> for its first use here; this can take a minute…",
    # notices
    "notice.store_fallback": "<i>(I can't reach my settings right now, so I used the defaults.)</i>",
    # start / help
    "start.text": (
        "Hi {name}! I run Hugging Face models right here in the chat.\n\n"
        "Write me anything to talk, or try <code>/sentiment This book is awesome.</code> or "
        "<code>/generate The book is awesome and</code>.\n"
        "Reply to any message with a command to use its text. /help lists everything."
    ),
    "help.text": (
        "<b>What I can do</b>\n"
        "Just write to me in this chat to talk (in groups: /chat, or reply to my answer); "
        "/new starts afresh, /forget deletes what I remember, /system sets how I answer\n"
        "/sentiment <i>text</i> · positive or negative?\n"
        "/generate <i>text</i> · continue a text\n"
        "/summarize <i>text</i> · make it short\n"
        "/translate <i>text</i> · translate (<code>/translate fr: text</code> picks the language)\n"
        "/ner <i>text</i> · find names, places, organisations\n"
        "/fill <i>text with &lt;mask&gt;</i> · guess the missing word\n"
        "/classify <i>text</i> | <i>label, label</i> · pick the best label\n"
        "/ask <i>question</i> · as a reply to the message with the answer\n"
        "/whatis · /caption · /labels <i>label, label</i> · with a photo as its caption, or replying to one\n"
        "/transcribe · a voice note, audio or video note to text (reply with /sentiment or /translate to use its words)\n"
        "/imagine <i>words</i> · draw a picture (<code>/set steps 4</code>, <code>size</code>, <code>seed</code>)\n"
        "/say <i>text</i> · read it aloud as a voice note (English or Chinese)\n\n"
        "<b>Your settings</b>\n"
        "/settings · what you use now\n"
        "/model <i>task model</i> · choose a model · /models <i>task</i> lists some\n"
        "/set <i>setting value</i> · e.g. <code>/set temperature 0.7</code>\n"
        "/reset [<i>task</i>] · back to defaults · /lang en|zh\n"
        "In groups, admins set defaults with /groupmodel, /groupset, /groupsystem and "
        "/groupconversation, and a daily quota per member with /groupquota."
    ),
    # command menu (setMyCommands)
    "cmd.start": "Start here",
    "cmd.help": "What I can do",
    "cmd.cancel": "Stop what I'm doing for you",
    "cmd.sentiment": "Positive or negative?",
    "cmd.generate": "Continue a text",
    "cmd.summarize": "Summarize a text",
    "cmd.translate": "Translate a text",
    "cmd.ner": "Find names, places, organisations",
    "cmd.fill": "Guess a missing word",
    "cmd.classify": "Classify text with your labels",
    "cmd.ask": "Answer a question from a message",
    "cmd.settings": "Your models and settings",
    "cmd.model": "Choose a model for a task",
    "cmd.set": "Change a generation setting",
    "cmd.reset": "Back to the defaults",
    "cmd.models": "Models you can use",
    "cmd.lang": "Reply language",
    "cmd.groupmodel": "Group default model (admins)",
    "cmd.groupset": "Group default setting (admins)",
    # settings
    "settings.title": "<b>Your settings</b> ({task})",
    "settings.model": "Model: <code>{model}</code> · {source}",
    "settings.param": "{param} = <code>{value}</code> · {source}",
    "settings.source.user": "yours",
    "settings.source.chat": "group default",
    "settings.source.bot": "bot default",
    "settings.hint": "Tap a task to see it; change values with /set or the buttons.",
    "settings.quota_left": "Requests left today: {left} of {limit}",
    "settings.model_set": "Your model for {task} is now <code>{model}</code>.",
    "settings.group_model_set": "This group's model for {task} is now <code>{model}</code>.",
    "settings.param_set": "{param} for {task} is now <code>{value}</code>.",
    "settings.group_param_set": "This group's {param} for {task} is now <code>{value}</code>.",
    "settings.reset": "Back to defaults ({what}).",
    "settings.reset_all": "all tasks",
    "settings.lang_set": "I'll reply in English.",
    "settings.models_title": "<b>Models for {task}</b>",
    "settings.models_empty": "No other models are allowed yet.",
    # results
    "result.no_entities": "No names, places or organisations found.",
    "result.empty": "<i>(The model had nothing to say.)</i>",
    "result.cut": "<i>The answer is longer than a few messages: here it is whole.</i>",
    "result.stopped": "<i>(stopped)</i>",
    "result.engine_cut": "<i>The engine kept writing past the longest answer this bot reads: it is cut here.</i>",
    "result.cancelled": "Stopped.",
    "stream.placeholder": "<i>Writing…</i>",
    "stream.stop": "■ Stop",
    "stream.stopping": "Stopping…",
    "error.stop_not_yours": "Only the person who asked can stop this.",
    # admin
    "admin.stats_summary": "<b>Last {window}</b>: {requests} requests · {errors} errors ({rate}) · p50 {p50} ms · p95 {p95} ms · {users} active users",
    "admin.stats_empty": "<b>Last {window}</b>: no requests.",
    "admin.usage_stats": "Usage: <code>/stats [{windows}]</code>",
    "error.not_group_admin_stats": "Only this group's admins can see its stats.",
    "cmd.stats": "Usage chart (admins)",
    "cmd.allow": "Allow a model (bot admins)",
    "cmd.deny": "Block a model (bot admins)",
    # who may use the bot
    "access.private": "This bot is private. If someone gave you an invite link, open it to start.",
    "access.chat_private": "This bot is private and does not serve this chat, so I'm leaving. Ask the bot's operator to allow this chat.",
    "access.unavailable": "I can't check who may use me right now (my database is unreachable). Please try again later.",
    "access.welcome": "Your invite worked: welcome! You can use me now.",
    "access.granted_user": "User <code>{id}</code> may use the bot now.",
    "access.granted_chat": "Chat <code>{id}</code> may use the bot now.",
    "access.revoked_user": "User <code>{id}</code> may no longer use the bot.",
    "access.revoked_chat": "Chat <code>{id}</code> may no longer use the bot; I leave it the next time someone there writes to me.",
    "access.usage_target": "Usage: <code>/{command} &lt;id&gt;</code> (a person's id, or a group's negative id), or reply with /{command} to someone's message, or send it in the group itself.",
    "access.usage_invite": "Usage: <code>/invite [uses] [expiry]</code>, e.g. <code>/invite 5 7d</code>: 1 to {most} uses, expiry in hours (<code>24h</code>) or days (<code>7d</code>).",
    "access.invite": "Invite link for {uses} people, {expiry}. Whoever opens it may use the bot:\n{link}",
    "access.expires_never": "no expiry",
    "access.expires_at": "valid until {at}",
    "error.admin_always_allowed": "{id} is one of the bot's admins (HFBOT_ADMIN_IDS), who may always use it.",
    "error.invalid_invite": "This invite link doesn't work: it was used up, it expired, or it never existed. Ask for a new one.",
    "cmd.grant": "Let a person or group use the bot",
    "cmd.revoke": "Stop a person or group using the bot",
    "cmd.invite": "Make an invite link",
    "admin.allowed": "Allowed <code>{model}</code>.",
    "admin.denied": "Denied <code>{model}</code>.",
    "admin.usage_rule": "Usage: <code>/{command} &lt;model id&gt;</code>",
    # conversations
    "chat.trimmed": "<i>(Our conversation is longer than this model can read at once, so I no longer see its oldest messages.)</i>",
    "chat.not_your_conversation": "<i>(The answer you replied to belongs to someone else's conversation, which I keep to them: this goes on with yours.)</i>",
    "chat.new": "Fresh start: I've put our earlier conversation aside.",
    "chat.forgotten": "Deleted {count} messages of yours. I remember nothing of our conversations now.",
    "chat.system_is": "The system prompt for your conversations: <i>{prompt}</i>",
    "chat.system_set": "Your conversations now start with that system prompt.",
    "chat.group_system_set": "This group's conversations now start with that system prompt.",
    "chat.system_off": "System prompt removed; the default applies again.",
    "chat.group_shared": "This group now has one conversation everyone takes part in.",
    "chat.group_separate": "Each member of this group now has a conversation of their own.",
    "error.usage_groupconversation": "Usage: <code>/groupconversation shared</code> or <code>/groupconversation separate</code>.",
    "error.usage_groupquota": "Usage: <code>/groupquota &lt;requests a day&gt;</code> (1 to {most}) or <code>/groupquota off</code>; alone it shows the group's quota.",
    "quota.group_is": "Each member of this group may make {limit} requests a day here (counts reset at {reset}).",
    "quota.group_none": "This group has no daily quota of its own.",
    "quota.group_set": "Each member of this group may now make {limit} requests a day here.",
    "quota.group_off": "This group's daily quota is off.",
    "cmd.groupquota": "Group daily quota per member (admins)",
    "cmd.chat": "Talk with the chat model",
    "cmd.new": "Start a fresh conversation",
    "cmd.forget": "Delete your conversation history",
    "cmd.system": "Your system prompt for conversations",
    "cmd.groupsystem": "Group system prompt (admins)",
    "cmd.groupconversation": "One shared conversation or one each (admins)",
    # inline
    "inline.sentiment": "Sentiment: {label} {score}",
    "inline.generate": "Continue the text",
    # photos and voice notes
    "cmd.whatis": "What is in this photo?",
    "cmd.caption": "Describe a photo in words",
    "cmd.labels": "Match a photo to your labels",
    "cmd.transcribe": "Voice note to text",
    "cmd.imagine": "Draw a picture from words",
    "cmd.say": "Read a text aloud",
    "error.no_image": "Send a photo with <code>/{command}</code> as its caption, or reply to a photo with <code>/{command}</code>.",
    "error.no_audio": "Reply to a voice note, audio or video note with <code>/{command}</code>, or send one with it as the caption.",
    "error.labels_needs_labels": "Give at least two labels: <code>/labels cat, dog, car</code> with a photo, or replying to one.",
    "error.file_too_large": "That file is {size}; I can download at most {limit}.",
    "error.image_too_large": "That image has {pixels}; the limit is {limit}.",
    "error.image_memory": "That image would take {size} of memory to open; the limit is {limit}. Send it as a photo, or a smaller one.",
    "error.audio_too_long": "That recording is {seconds} long; the limit is {limit}.",
    "error.unreadable_media": "I can't read that file: it is damaged or in a format I don't know.",
    "result.nothing_heard": "<i>(I heard no words.)</i>",
    "result.nothing_seen": "<i>(I have no words for this picture.)</i>",
}

ZH: dict[str, str] = {
    "error.generic": "我这边出了点问题，请再试一次。",
    "error.empty_input": "请给我一些文字：<code>/{command} 你的文字</code>，或者用 /{command} 回复一条消息。",
    "error.input_too_long": "这段文字有 {length} 个字符，上限是 {limit}。",
    "error.context_too_long": "你的文字加上 max_new_tokens 共 {tokens} 个 token；这个模型最多读 {limit} 个。请缩短文字或减小 max_new_tokens。",
    "error.unknown_task": "没有叫“{task}”的任务。可用任务：{known}。",
    "error.unknown_param": "“{param}”不是 {task} 的设置。可用设置：{known}。",
    "error.invalid_param_value": "{param} 不能是“{value}”。允许的范围：{allowed}。",
    "error.unknown_model": "找不到模型“{model}”。",
    "error.wrong_task_model": "“{model}”是 {actual} 模型，不能用于 {task}。",
    "error.model_not_allowed": "模型“{model}”不在本机器人允许的列表里。",
    "error.model_denied": "模型“{model}”已被本机器人的管理员禁用。",
    "error.model_load_failed": "模型“{model}”加载失败。请稍后再试，或用 /model 换一个。",
    "error.model_exceeds_memory": "“{model}”需要 {size} 内存，超过了本机器人给所有模型的总内存（{budget}）。请用 /model 换一个更小的。",
    "error.pool_busy": "我现在有点忙，请稍后再试。",
    "error.pool_closed": "我正在重启，请过一分钟再发一次。",
    "error.request_timeout": "处理时间太长，已停止。请试试更短的文字或更少的 token。",
    "error.engine_unavailable": "现在连不上为这个模型提供服务的推理引擎（{engine}），请稍后再试。",
    "error.engine_busy": "为这个模型提供服务的推理引擎（{engine}）正忙，请稍后再试。",
    "error.engine_failed": "为这个模型提供服务的推理引擎（{engine}）没有正常回答。",
    "error.remote_model_unknown": "推理引擎“{engine}”不提供“{model}”。",
    "error.remote_task_unsupported": "/{task} 只能使用本机器人自己的模型，而“{model}”在推理引擎上。",
    "error.engine_task_unsupported": "推理引擎“{engine}”不提供 /{task}。",
    "error.store_unavailable": "现在连不上数据库，所以没法保存。请稍后再试。",
    "error.gated_model": "“{model}”是受限模型，本机器人没有访问权限（管理员可以配置已获授权的令牌）。",
    "error.unsafe_weights": "“{model}”没有 safetensors 权重（找到的是：{found}），Hub 上也没有它的 safetensors 转换版本；我只加载 safetensors。",
    "error.model_changed": "下载期间“{model}”发生了变化（{file} 不是我检查过的那个文件）。请再试一次。",
    "error.unsafe_weights_try": "“{model}”没有 safetensors 权重（找到的是：{found}），Hub 上也没有它的 safetensors 转换版本；我只加载 safetensors。“{alternative}”能做同样的事，并且提供 safetensors。",
    "error.model_too_large": "“{model}”对本机器人来说太大了（{size}；上限 {limit}）。",
    "error.remote_code_required": "“{model}”需要运行它自带的代码，本机器人从不执行这类代码。",
    "error.no_chat_template": "“{model}”没有对话模板，无法进行对话。请选择 instruct 或 chat 模型。",
    "error.hub_unavailable": "现在连不上 Hugging Face Hub，无法检查“{model}”。",
    "error.rate_limited": "慢一点：请 {seconds} 秒后再试。",
    "error.too_many_labels": "一共 {count} 个标签；我最多接受 {limit} 个。",
    "error.label_too_long": "每个标签最多 {limit} 个字符（有一个是 {length} 个）。",
    "error.too_much_work_labels": "{labels} 个标签 × {chars} 个字符，超出了单个请求允许的工作量（最多 {limit}）。请减少标签或缩短文字。",
    "error.too_much_work_tokens": "{sequences} × {tokens} 个 token 超出了单个请求允许生成的数量（最多 {limit}）。请用 /set 调低 num_return_sequences 或 max_new_tokens。",
    "error.too_much_work_pixels": "{steps} 步画一张 {size} 的图片需要 {work} 百万像素·步，超出了单个请求的上限（{limit}）。请用 /set 选择更小的尺寸或更少的步数。",
    "error.images_not_supported": "这个聊天模型只读文字，看不了图片。请用 <code>/model chat {suggestion}</code> 换一个能看图的模型。",
    "error.unspeakable_text": "这个声音读不出这段文字中的任何内容。请用 <code>/model say …</code> 换一个声音。",
    "error.picture_withheld": "模型自带的安全检查器拦下了这张图片。请换一个描述试试。",
    "error.too_many_in_flight": "你已经有 {limit} 个请求在运行。请等其中一个完成，或用 /cancel 停止它们。",
    "error.quota_exceeded": "你今天的 {limit} 次请求已经用完。额度在 {reset} 重置，还有 {hours} 小时 {minutes} 分钟。",
    "error.group_quota_exceeded": "本群每位成员每天可用 {limit} 次请求，你已经用完。额度在 {reset} 重置，还有 {hours} 小时 {minutes} 分钟。",
    "error.not_group_admin": "只有本群管理员可以修改群默认设置。",
    "error.group_only": "这个命令只能在群里用。",
    "error.bot_admin_only": "只有机器人管理员可以这样做。",
    "error.ask_needs_context": "请用 <code>/ask 你的问题</code> 回复包含答案的那条消息。",
    "error.classify_needs_labels": "在“|”后面写标签：<code>/classify 我很喜欢 | 开心, 难过</code>",
    "error.fill_needs_mask": "在缺词的位置写 <code>&lt;mask&gt;</code>（或 <code>[MASK]</code>）：<code>/fill Paris is the &lt;mask&gt; of France.</code>",
    "error.usage_model": "用法：<code>/{command} &lt;任务&gt; &lt;模型 id&gt;</code>，例如 <code>/{command} generate distilbert/distilgpt2</code>",
    "error.usage_set": "用法：<code>/{command} &lt;设置&gt; &lt;值&gt;</code>，例如 <code>/{command} temperature 0.7</code>。可用设置：{known}。",
    "error.usage_lang": "用法：<code>/lang en</code> 或 <code>/lang zh</code>。",
    "error.unknown_language": "我会说：{known}。",
    "error.nothing_to_cancel": "你没有正在运行的请求。",
    "error.settings_not_yours": "这些按钮属于别人：发送 /settings 查看你自己的设置。",
    "error.stale_button": "这个按钮已经失效了。",
    "hint.unknown_command": "我不认识 /{command}。/help 查看我能做什么。",
    "queue.position": "⏳ 排队中：第 {position} 位…",
    "picture.drawing": "🎨 正在画…",
    "voice.not_spoken": "<i>未能朗读：</i>",
    "picture.drawing_step": "🎨 正在画…第 {step} 步，共 {steps} 步",
    "download.started": "第一次使用 <code>{model}</code>，正在下载，可能需要一分钟…",
    "notice.store_fallback": "<i>（暂时读不到设置，这次用了默认设置。）</i>",
    "start.text": (
        "你好，{name}！我可以在聊天里直接运行 Hugging Face 模型。\n\n"
        "直接给我发消息就能聊天，或者试试 <code>/sentiment This book is awesome.</code> 或 "
        "<code>/generate The book is awesome and</code>。\n"
        "用命令回复任意一条消息，就会处理那条消息的文字。/help 查看全部命令。"
    ),
    "help.text": (
        "<b>我能做什么</b>\n"
        "直接在这里给我发消息就能聊天（在群里用 /chat，或回复我的回答）；"
        "/new 重新开始，/forget 删除我记住的内容，/system 设置我的回答方式\n"
        "/sentiment <i>文字</i> · 情感分析\n"
        "/generate <i>文字</i> · 续写\n"
        "/summarize <i>文字</i> · 摘要\n"
        "/translate <i>文字</i> · 翻译（<code>/translate fr: 文字</code> 指定目标语言）\n"
        "/ner <i>文字</i> · 找出人名、地名、机构\n"
        "/fill <i>含 &lt;mask&gt; 的文字</i> · 猜缺失的词\n"
        "/classify <i>文字</i> | <i>标签, 标签</i> · 选出最合适的标签\n"
        "/ask <i>问题</i> · 回复包含答案的消息\n"
        "/whatis · /caption · /labels <i>标签, 标签</i> · 作为图片的说明文字，或回复一张图片\n"
        "/transcribe · 把语音、音频或视频消息转成文字（用 /sentiment 或 /translate 回复它即可处理其中的话）\n"
        "/imagine <i>描述</i> · 根据文字画一张图（<code>/set steps 4</code>、<code>size</code>、<code>seed</code>）\n"
        "/say <i>文字</i> · 用语音消息朗读出来（中文或英文）\n\n"
        "<b>你的设置</b>\n"
        "/settings · 当前使用的模型和参数\n"
        "/model <i>任务 模型</i> · 选择模型 · /models <i>任务</i> 列出可选模型\n"
        "/set <i>设置 值</i> · 例如 <code>/set temperature 0.7</code>\n"
        "/reset [<i>任务</i>] · 恢复默认 · /lang en|zh\n"
        "在群里，管理员可以用 /groupmodel、/groupset、/groupsystem 和 /groupconversation 设置群默认值，用 /groupquota 设置每位成员的每日额度。"
    ),
    "cmd.start": "从这里开始",
    "cmd.help": "我能做什么",
    "cmd.cancel": "停止正在为你做的事",
    "cmd.sentiment": "情感分析",
    "cmd.generate": "续写文字",
    "cmd.summarize": "摘要",
    "cmd.translate": "翻译",
    "cmd.ner": "找出人名、地名、机构",
    "cmd.fill": "猜缺失的词",
    "cmd.classify": "用你的标签分类",
    "cmd.ask": "根据消息回答问题",
    "cmd.settings": "你的模型和设置",
    "cmd.model": "为任务选择模型",
    "cmd.set": "修改生成参数",
    "cmd.reset": "恢复默认",
    "cmd.models": "可用的模型",
    "cmd.lang": "回复语言",
    "cmd.groupmodel": "群默认模型（管理员）",
    "cmd.groupset": "群默认参数（管理员）",
    "settings.title": "<b>你的设置</b>（{task}）",
    "settings.model": "模型：<code>{model}</code> · {source}",
    "settings.param": "{param} = <code>{value}</code> · {source}",
    "settings.source.user": "你的",
    "settings.source.chat": "群默认",
    "settings.source.bot": "机器人默认",
    "settings.hint": "点任务查看；用 /set 或按钮修改。",
    "settings.quota_left": "今天剩余请求：{left} / {limit}",
    "settings.model_set": "你的 {task} 模型现在是 <code>{model}</code>。",
    "settings.group_model_set": "本群的 {task} 模型现在是 <code>{model}</code>。",
    "settings.param_set": "{task} 的 {param} 现在是 <code>{value}</code>。",
    "settings.group_param_set": "本群 {task} 的 {param} 现在是 <code>{value}</code>。",
    "settings.reset": "已恢复默认（{what}）。",
    "settings.reset_all": "全部任务",
    "settings.lang_set": "我会用中文回复。",
    "settings.models_title": "<b>{task} 可用的模型</b>",
    "settings.models_empty": "还没有允许其他模型。",
    "result.no_entities": "没有找到人名、地名或机构。",
    "result.empty": "<i>（模型没有给出任何结果。）</i>",
    "result.cut": "<i>回答太长，放不进几条消息：完整内容在这个文件里。</i>",
    "result.stopped": "<i>（已停止）</i>",
    "result.engine_cut": "<i>推理引擎写得超过了本机器人读取的最长回答：回答到此截断。</i>",
    "result.cancelled": "已停止。",
    "stream.placeholder": "<i>正在写…</i>",
    "stream.stop": "■ 停止",
    "stream.stopping": "正在停止…",
    "error.stop_not_yours": "只有提问的人可以停止。",
    "admin.stats_summary": "<b>最近 {window}</b>：{requests} 次请求 · {errors} 次错误（{rate}）· p50 {p50} ms · p95 {p95} ms · {users} 位活跃用户",
    "admin.stats_empty": "<b>最近 {window}</b>：没有请求。",
    "admin.usage_stats": "用法：<code>/stats [{windows}]</code>",
    "error.not_group_admin_stats": "只有本群管理员可以查看本群的统计。",
    "cmd.stats": "使用统计图（管理员）",
    "cmd.allow": "允许一个模型（机器人管理员）",
    "cmd.deny": "禁用一个模型（机器人管理员）",
    "access.private": "这是一个私有机器人。如果有人给了你邀请链接，打开它即可开始。",
    "access.chat_private": "这是一个私有机器人，不为这个聊天服务，所以我要离开了。请联系机器人的运营者允许这个聊天。",
    "access.unavailable": "现在无法确认谁可以使用我（连不上数据库）。请稍后再试。",
    "access.welcome": "邀请成功，欢迎！现在你可以使用我了。",
    "access.granted_user": "用户 <code>{id}</code> 现在可以使用机器人了。",
    "access.granted_chat": "聊天 <code>{id}</code> 现在可以使用机器人了。",
    "access.revoked_user": "用户 <code>{id}</code> 不能再使用机器人了。",
    "access.revoked_chat": "聊天 <code>{id}</code> 不能再使用机器人了；下次有人在那里给我发消息时我会离开。",
    "access.usage_target": "用法：<code>/{command} &lt;id&gt;</code>（用户的 id，或群的负数 id），或用 /{command} 回复某人的消息，或直接在该群里发送。",
    "access.usage_invite": "用法：<code>/invite [次数] [有效期]</code>，例如 <code>/invite 5 7d</code>：1 到 {most} 次，有效期以小时（<code>24h</code>）或天（<code>7d</code>）计。",
    "access.invite": "可供 {uses} 人使用的邀请链接，{expiry}。打开它的人即可使用机器人：\n{link}",
    "access.expires_never": "永不过期",
    "access.expires_at": "有效期至 {at}",
    "error.admin_always_allowed": "{id} 是机器人的管理员（HFBOT_ADMIN_IDS），始终可以使用。",
    "error.invalid_invite": "这个邀请链接无效：已用完、已过期或从未存在。请索取一个新的。",
    "cmd.grant": "允许某人或某群使用机器人",
    "cmd.revoke": "禁止某人或某群使用机器人",
    "cmd.invite": "生成邀请链接",
    "admin.allowed": "已允许 <code>{model}</code>。",
    "admin.denied": "已禁止 <code>{model}</code>。",
    "admin.usage_rule": "用法：<code>/{command} &lt;模型 id&gt;</code>",
    "chat.trimmed": "<i>（我们的对话太长，这个模型一次读不完，最早的消息我已经看不到了。）</i>",
    "chat.not_your_conversation": "<i>（你回复的那条回答属于别人的对话，那段对话只属于对方：这里接着的是你自己的对话。）</i>",
    "chat.new": "重新开始：之前的对话已经放到一边。",
    "chat.forgotten": "已删除你的 {count} 条消息。我们之前的对话我都不记得了。",
    "chat.system_is": "你的对话使用的系统提示：<i>{prompt}</i>",
    "chat.system_set": "你的对话现在以这个系统提示开始。",
    "chat.group_system_set": "本群的对话现在以这个系统提示开始。",
    "chat.system_off": "已删除系统提示，恢复默认。",
    "chat.group_shared": "本群现在只有一个大家共同参与的对话。",
    "chat.group_separate": "本群每位成员现在都有自己的对话。",
    "error.usage_groupconversation": "用法：<code>/groupconversation shared</code> 或 <code>/groupconversation separate</code>。",
    "error.usage_groupquota": "用法：<code>/groupquota &lt;每天请求数&gt;</code>（1 到 {most}）或 <code>/groupquota off</code>；不带参数时显示本群额度。",
    "quota.group_is": "本群每位成员每天在这里可用 {limit} 次请求（{reset} 重置）。",
    "quota.group_none": "本群没有自己的每日额度。",
    "quota.group_set": "现在本群每位成员每天在这里可用 {limit} 次请求。",
    "quota.group_off": "本群的每日额度已关闭。",
    "cmd.groupquota": "群每日成员额度（管理员）",
    "cmd.chat": "和对话模型聊天",
    "cmd.new": "开始新的对话",
    "cmd.forget": "删除你的对话记录",
    "cmd.system": "你的对话系统提示",
    "cmd.groupsystem": "群系统提示（管理员）",
    "cmd.groupconversation": "全群共用一个对话或各自一个（管理员）",
    "inline.sentiment": "情感：{label} {score}",
    "inline.generate": "续写这段文字",
    # photos and voice notes
    "cmd.whatis": "这张图片里是什么？",
    "cmd.caption": "用一句话描述图片",
    "cmd.labels": "用你的标签给图片分类",
    "cmd.transcribe": "语音转文字",
    "cmd.imagine": "根据文字画图",
    "cmd.say": "朗读文字",
    "error.no_image": "发送一张以 <code>/{command}</code> 为说明文字的图片，或用 <code>/{command}</code> 回复一张图片。",
    "error.no_audio": "用 <code>/{command}</code> 回复一条语音、音频或视频消息，或把它作为说明文字一起发送。",
    "error.labels_needs_labels": "请至少给两个标签：在图片上或回复图片时写 <code>/labels 猫, 狗, 汽车</code>。",
    "error.file_too_large": "这个文件有 {size}；我最多只能下载 {limit}。",
    "error.image_too_large": "这张图片有 {pixels}；上限是 {limit}。",
    "error.image_memory": "打开这张图片需要 {size} 内存；上限是 {limit}。请以照片形式发送，或发一张更小的。",
    "error.audio_too_long": "这段录音有 {seconds}；上限是 {limit}。",
    "error.unreadable_media": "我读不了这个文件：它已损坏，或者格式我不认识。",
    "result.nothing_heard": "<i>（我没听到任何话。）</i>",
    "result.nothing_seen": "<i>（我说不出这张图片里有什么。）</i>",
}

CATALOGS: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}


def pick_language(*candidates: str | None) -> str:
    """The first supported language among a /lang choice and Telegram's language_code."""
    for code in candidates:
        if code:
            base = code.lower().split("-")[0].split("_")[0]
            if base in CATALOGS:
                return base
    return DEFAULT_LANGUAGE


def t(language: str, key: str, values: Mapping[str, object] | None = None, **more: object) -> str:
    """The message for `key` in `language`, with every value HTML-escaped."""
    template = CATALOGS.get(language, EN).get(key) or EN.get(key) or EN["error.generic"]
    merged = {**(values or {}), **more}
    return template.format_map(_Escaped({k: html.escape(str(v)) for k, v in merged.items()}))


class _Escaped(dict[str, str]):
    """Values for a template; a value an error forgot to carry shows as "?" instead of crashing."""

    def __missing__(self, key: str) -> str:
        return "?"
