"""`python -m fleetkit ...` is the `fleet` command (how the supervisor starts children)."""

from fleetkit.cli.app import entry

entry()
