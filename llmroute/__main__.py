"""``python -m llmroute``: the command line of :mod:`llmroute.cli`."""
from __future__ import annotations

from .cli import main

raise SystemExit(main())
