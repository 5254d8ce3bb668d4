"""How closely ledger and broker must agree beyond quantities (the `reconcile:` section)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from fleetkit.config.strict import Strict


class ReconcileSettings(Strict):
    """Tolerances for what a broker reports beyond quantities; a difference beyond one halts
    the bot as a quantity difference does (docs/reliability.md)."""

    average_price_tolerance_pct: Decimal = Field(
        default=Decimal("0.1"), gt=0, le=100, description="how far a position's average "
        "price may be from the broker's (venues round it to their own precision)")
    compare_cash: bool = Field(default=True, description="compare cash where the broker "
                               "reports the bot's own (the sandbox; never a shared exchange "
                               "account)")
    cash_tolerance_usd: Decimal = Field(
        default=Decimal(1), ge=0, description="how far cash may be from what the ledger's "
        "fills imply, in USD (converted with fx_usd)")
