"""The core: schema, storage, checkpoints, runner, query, daemon loop.

Nothing under this package may import textual or rich (tests/test_core_isolation.py guards it).
"""
