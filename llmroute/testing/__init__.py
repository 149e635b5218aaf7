"""``FakeGateway``: a real OpenAI-compatible server on 127.0.0.1 for testing apps offline.

``python -m llmroute.testing`` serves one from the command line.
"""
from __future__ import annotations

from ._cli import main
from .gateway import FakeGateway, RecordedRequest, Reply

__all__ = ["FakeGateway", "Reply", "RecordedRequest", "main"]
