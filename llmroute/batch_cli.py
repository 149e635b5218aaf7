"""Deprecated alias of :mod:`llmroute.cli.batch` (moved in 0.2.0); removed in the next release."""
from __future__ import annotations

import importlib
import sys
import warnings

warnings.warn("llmroute.batch_cli moved to llmroute.cli.batch; the old name goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("llmroute.cli.batch")
