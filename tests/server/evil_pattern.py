"""A module a forged request would like the server to import: its top-level code runs on import.

Tests check that no request ever imports it (``"tests.server.evil_pattern" not in sys.modules``).
"""

from __future__ import annotations

import os

from tests.streaming.demo import DemoOrchestrator

IMPORTED = True
os.environ["ORCHESTRATION_EVIL_PATTERN_IMPORTED"] = "1"  # the side effect an attacker wants


class EvilOrchestrator(DemoOrchestrator):
    """Any orchestrator will do; what matters is that importing this module ran code."""
