"""Kept for old imports: the mailbox's rules live in ``protocol/``: names on
disk in ``names``, the judge in ``judge``, delivery order in ``inbound``,
sequence allocation in ``outbound``."""
from .protocol.framing import HEADER  # noqa: F401
from .protocol.inbound import Inbox  # noqa: F401
from .protocol.judge import WAIT_ABSENT, Decision, Rules, Slot, Verdict, judge  # noqa: F401
from .protocol.names import (END, KINDS, MSG, READY, RUN_STAMP, WRITER_STAMP, check_id, decode_marker,  # noqa: F401
                             direction_name, encode_marker, file_name, group, leftovers, parse_direction,
                             parse_name, part_name, split_sizes)
from .protocol.outbound import Outbox  # noqa: F401
