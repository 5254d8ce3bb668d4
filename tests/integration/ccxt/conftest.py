from tests.integration.ccxt.live_venue import live

__all__ = ["live"]
