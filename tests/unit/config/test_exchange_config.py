"""Config for paper and live bots: exchanges, credentials by name only, and the checks
that keep a spot account safe before anything connects."""

from __future__ import annotations

import pytest

from fleetkit.config.loader import parse_config
from fleetkit.core.errors import ConfigError

EXCHANGE = """
exchanges:
  bt: {ccxt_id: binance, testnet: true, credentials: {api_key_env: BK, secret_env: BS}}
"""


def bots(*lines: str, extra: str = "") -> str:
    return EXCHANGE + extra + "bots:\n" + "".join(f"  - {line}\n" for line in lines)


LIVE = ("{name: a, market: CRYPTO, symbols: [BTC/USDT], strategy: sma_cross, mode: live, "
        "exchange: bt}")


def test_a_live_bot_on_a_testnet_parses_and_knows_its_quote_currency() -> None:
    bot = parse_config(bots(LIVE), "f.yaml").bots[0]
    assert (bot.mode, bot.exchange, bot.quote_currency) == ("live", "bt", "USDT")


@pytest.mark.parametrize(("text", "message"), [
    (bots(LIVE.replace("exchange: bt", "exchange: nope")), "exchange 'nope' is not under"),
    (bots(LIVE.replace(", exchange: bt", "")), "needs `exchange:`"),
    (bots(LIVE.replace("CRYPTO", "NYSE").replace("BTC/USDT", "AAPL")), "market must be CRYPTO"),
    (bots(LIVE.replace("BTC/USDT", "BTC/USDT, ETH/EUR")), "same quote currency"),
    (bots(LIVE.replace("mode: live, exchange: bt", "exchange: bt")), "sandbox bots trade"),
    (bots(LIVE, LIVE.replace("name: a", "name: b")), "both trade BTC live"),
    (bots(LIVE.replace("mode: live", "mode: live, allow_short: true")), "cannot go short"),
    (bots(LIVE, extra="runtime: {unknown_order_grace_s: 8, broker_timeout_s: 5}\n"),
     "timeout_s must be shorter"),
    (EXCHANGE.replace("ccxt_id: binance", "ccxt_id: binanze") + "bots: []", "did you mean"),
    (EXCHANGE.replace("api_key_env: BK", "api_key: abcdef") + "bots: []", "unknown key"),
    (EXCHANGE.replace("api_key_env: BK", "api_key_env: my-key") + "bots: []",
     "not an environment variable name"),
    (EXCHANGE.replace("testnet: true", "testnet: true, options: {secret: x}") + "bots: []",
     "secrets never go in YAML"),
    (EXCHANGE.replace("testnet: true", "testnet: true, api_base_url: 'http://u:p@h/x'")
     + "bots: []", "api_base_url is scheme"),
])
def test_unsafe_or_wrong_exchange_config_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "f.yaml")


def test_two_live_bots_may_share_an_account_when_their_assets_differ() -> None:
    other = LIVE.replace("name: a", "name: b").replace("BTC/USDT", "ETH/USDT")
    assert len(parse_config(bots(LIVE, other), "f.yaml").bots) == 2


def test_a_secret_given_by_mistake_is_never_echoed_in_the_error() -> None:
    text = EXCHANGE.replace("api_key_env: BK", "api_key: sk-VERY-SECRET-123") + "bots: []"
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "f.yaml")
    assert "sk-VERY-SECRET-123" not in str(refused.value)


def test_without_ccxt_installed_the_error_names_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ccxt", None)  # what `import ccxt` sees when absent
    with pytest.raises(ConfigError, match=r"pip install 'fleetkit\[live\]'"):
        parse_config(bots(LIVE), "f.yaml")
