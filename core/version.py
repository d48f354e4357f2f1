"""Sealcheck's version, in a module of its own: the records and the pipeline stamp it on
what they write, and reading it must not make them import the front door (``sealcheck.core``),
which names the pipeline and the restore test."""

__version__ = "0.1.0"
