"""Loopback host candidates for ICE.

aioice leaves 127.0.0.1 out of the host candidates it gathers, so on a loopback-only network (a test
namespace, a server that only listens on localhost) ICE never starts. This adds 127.0.0.1 to the gathered
addresses. It changes aioice's module-level address discovery for the whole process, once; it is enabled only
when the session options ask for it.
"""

from __future__ import annotations

from collections.abc import Callable

import aioice.ice

_original: Callable[[bool, bool], list[str]] | None = None


def allow_loopback_candidates() -> None:
    global _original
    if _original is not None:
        return
    original = aioice.ice.get_host_addresses
    _original = original

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    aioice.ice.get_host_addresses = with_loopback
