"""``python -m trio_trickle`` is the ``trio-trickle`` command."""

from ._cli import main

raise SystemExit(main())
