"""``python -m affseg.cli ...``: the same as the ``affseg`` command."""

import sys

from affseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
