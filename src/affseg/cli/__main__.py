"""``python -m affseg.cli ...``: the same as the ``affseg`` command."""

import sys

from affseg.cli import main

sys.exit(main())
