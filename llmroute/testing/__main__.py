"""``python -m llmroute.testing``: serve a FakeGateway until interrupted."""
from __future__ import annotations

from ._cli import main

raise SystemExit(main())
