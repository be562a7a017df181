"""Kept for old imports: the port plan lives in ``protocol/ports.py``."""
from .protocol.ports import (CONVENTIONS, ChannelPlan, Role, channel_offset, check_party, max_offset,  # noqa: F401
                             mpyc_party_args, plan_channels, ports_used)
