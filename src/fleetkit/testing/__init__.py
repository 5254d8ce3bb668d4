"""Test support for fleetkit users and its own tests: tools for rehearsing outages on loopback.

`TcpProxy` sits between a bot and its database or broker and can cut the line on demand, so
"the database went away mid-run" is something you can run, not just read about.
"""

from fleetkit.testing.tcpproxy import TcpProxy

__all__ = ["TcpProxy"]
