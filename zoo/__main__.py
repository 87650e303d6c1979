"""``python -m zoo``: the ``slimzoo`` command line (see :mod:`zoo.cli`)."""

from .cli import main

raise SystemExit(main())
