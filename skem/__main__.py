"""``python -m skem`` runs the ``skem`` command."""

import sys

from .cli import main

sys.exit(main())
