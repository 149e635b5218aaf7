"""``python -m llmroute.cli``: the same command line as ``llmroute``."""
from __future__ import annotations

from . import main

raise SystemExit(main())
