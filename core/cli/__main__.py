"""``python -m sealcheck.core.cli``: the ``sealcheck`` command."""

import sys

from .main import main

# Guarded: tools that import every module (tests/check_core_without_qt.py) must not
# start the command.
if __name__ == "__main__":
    sys.exit(main())
