"""Bundle entry point: the ``sealcheck`` command (``sealcheck gui`` opens the app)."""

import sys

from sealcheck.core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
