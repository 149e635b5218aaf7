"""The package version, in one place: read by setup.cfg, the User-Agent and ``--version``."""

__version__ = "0.2.0"
