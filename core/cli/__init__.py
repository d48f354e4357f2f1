"""The ``sealcheck`` command: the parser, plug-in commands and exit codes (main),
shared options, secrets from arguments, terminal progress and Ctrl-C (common), one
module per command group, and terminal-safe output (termtext)."""
