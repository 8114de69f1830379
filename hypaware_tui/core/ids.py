"""Identifiers that may use the clock: run ids and part file names (never row values, schema.md §3.1)."""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_run_id() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 characters, time sortable."""
    ms = time.time_ns() // 1_000_000
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def uuid7_hex() -> str:
    """A UUIDv7 as 32 lowercase hex digits. Within one process the values strictly increase (a 12-bit
    sequence in `rand_a` orders ids made in the same millisecond), so name order is creation order."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:
                ms += 1
                _seq = 0
        else:
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom for the sequence
        _last_ms = ms
        seq = _seq
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"
