"""Market data: ports for where it comes from, and recorders as thin loops over pure logic
(core.bars, core.bar_gaps) that write it into the market-data database (store.bars)."""
