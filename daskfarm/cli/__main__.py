"""``python -m daskfarm.cli``: the ``daskfarm`` command."""

import sys

from daskfarm.cli import main

sys.exit(main())
