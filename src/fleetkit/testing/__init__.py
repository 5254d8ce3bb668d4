"""Test support for fleetkit users and its own tests: tools for rehearsing outages on loopback.

`TcpProxy` sits between a bot and its database or broker and can cut the line on demand, so
"the database went away mid-run" is something you can run, not just read about.
`TamperingProxy` sits between a bot and the sandbox broker service and makes the broker's
answers lie (`fleetkit.testing.tampers` has the lies ready-made), so "the broker reported a
fill a thousand times its price" is something you can run too.
"""

from fleetkit.testing.tamper import Route, Seen, Tamper, TamperingProxy
from fleetkit.testing.tcpproxy import TcpProxy

__all__ = ["Route", "Seen", "Tamper", "TamperingProxy", "TcpProxy"]
