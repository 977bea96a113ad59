"""``python -m fastminerf ...`` is the same as the ``fastminerf`` command."""
import sys

from .cli import main

sys.exit(main())
