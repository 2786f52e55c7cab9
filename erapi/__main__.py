"""``python -m erapi``: the ``erapi`` command, for an environment whose scripts directory is not on PATH."""

import sys

from erapi.cli import main

sys.exit(main())
