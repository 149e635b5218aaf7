"""Deprecated alias of :mod:`llmroute.cli.demo` (moved in 0.2.0); removed in the next release."""
from __future__ import annotations

import importlib
import sys
import warnings

warnings.warn("llmroute.demo moved to llmroute.cli.demo; the old name goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("llmroute.cli.demo")
