"""``python -m skem`` runs the ``skem`` command."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the command (main() handles it later)
    print("skem: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
