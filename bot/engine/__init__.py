"""Running models off the event loop: the pipeline pool and the engines behind it.

`PipelinePool.submit` is the one door; behind it each (task, model) has an
engine chosen from the task registry. Knows nothing of Telegram.
"""
