"""Who may ask and how much: the access policy, per-person rate limits and the
requests each person has in flight. Every model call passes these guards before
it reaches the pool; none of them talks to Telegram."""
