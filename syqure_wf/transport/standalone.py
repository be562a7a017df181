"""The proxy as its own process (``syqure-wf proxy``): status records its
end; signals stop it; killed or stopped, it leaves its progress behind."""
from __future__ import annotations

import asyncio

from ..errors import Stopped, SyqureError
from .aio import SignalStop
from .protocol.liveness import DONE, FAILED
from .proxy import Proxy
from .settings import ProxySettings


async def run_standalone(settings: ProxySettings) -> dict:
    """The proxy as its own process: status records its end; signals stop it.
    Killed or stopped, it leaves its progress behind: started again with the
    same run id while its party keeps running, it resumes (``progress``)."""
    proxy = Proxy(settings, resumable=True)
    with SignalStop() as stop:
        try:
            await proxy.start()
            summary = await proxy.run()
            proxy.status.update(state=DONE, exit_code=0, channels=proxy.stats())
            return summary
        except asyncio.CancelledError:
            if not stop.caught:
                raise
            error = Stopped(f"party {settings.pid}: proxy stopped by {stop.caught}", stop.caught)
            _record_failure(proxy, error)
            raise error from None
        except SyqureError as exc:
            _record_failure(proxy, exc)
            if proxy.progress and proxy.running:
                proxy.progress.close(forget=True)  # a failed run is not resumed
            raise


def _record_failure(proxy: Proxy, exc: Exception) -> None:
    if proxy.status is not None:
        try:
            proxy.status.update(state=FAILED, reason=str(exc), channels=proxy.stats())
        except OSError:
            pass
