"""``python -m vaelab.cli`` (what ``torchrun -m vaelab.cli`` runs)."""

import sys

from vaelab.cli import main

sys.exit(main())
