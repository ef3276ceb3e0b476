"""Entry point of ``python -m skaecnn``; see :mod:`skaecnn._cli`."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
