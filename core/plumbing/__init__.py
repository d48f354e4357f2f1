"""Bytes moving between threads, cooperative cancel, throttled progress and
durable writes: what every stage uses. Imports nothing in core but ``errors``."""
