"""The self-improving loop: annotations and what they say over time, audits of accepted
answers (and, in later rooms, taxonomy modes, re-application, clusters, the outbox)."""
