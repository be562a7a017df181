"""Kept for old imports: framing lives in ``protocol/framing.py``."""
from .protocol.framing import (DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE, END, FRAMINGS, HEADER, Begin, Data,  # noqa: F401
                               End, SequreParser, StreamChunker, make_framer)
