#!/usr/bin/env python
"""Warm the slimzoo weights cache: ``python scripts/warm_cache.py --help``.

The same command as the installed ``slimzoo-warm`` (the logic is :mod:`zoo.warm`); this file
lets it run from a source checkout without installing: the checkout's ``zoo`` is imported.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, before any install

from zoo.warm import main

if __name__ == "__main__":
    sys.exit(main())
