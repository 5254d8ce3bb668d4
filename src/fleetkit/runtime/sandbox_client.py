"""How a bot process reaches the sandbox venue: its own account over loopback HTTP.

Kept apart from the service wiring so a bot never imports the price generator (numpy) or
the calendars (pandas): a fleet is many bot processes, and each one's memory counts.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.contract_source import SandboxContracts
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.runtime.runner import BrokerConnection


def sandbox_connection_factory(config: FleetConfig) -> Callable[[BotSettings], BrokerConnection]:
    """Each bot trades its own sandbox account, named after the bot."""
    base_url = config.sandbox.base_url
    timeout = config.runtime.broker_timeout_s

    def connect(settings: BotSettings) -> BrokerConnection:
        client = SandboxClient(base_url, settings.name, timeout_s=timeout)
        return BrokerConnection(client, client, client.close,
                                contracts=SandboxContracts(client.futures, client.instruments),
                                market_offset=client.market_offset)

    return connect
