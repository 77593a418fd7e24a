"""Saying what a thing is: the accept-or-unknown decision, the identifier that embeds,
searches and checks, tracking over live frames, and the read-outs on past decisions
(threshold curve, hubs)."""
