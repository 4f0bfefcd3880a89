"""What the operator sees of the bot at work: the Prometheus counters behind
/metrics and the usage charts /stats draws."""
