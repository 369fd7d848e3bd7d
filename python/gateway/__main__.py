"""``python -m gateway …`` is the ``routegate`` command."""

from gateway.cli import main

raise SystemExit(main())
