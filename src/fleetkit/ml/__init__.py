"""Learning bots: a gymnasium environment on the assembled bot (the same trader, rails,
brakes and order path as live and backtest), its pure-numpy fast twin, and (to come)
policies, training, evaluation and the `rl_policy` strategy.

Importing this package pulls in nothing; the modules are imported by name:

    ml.spec        EnvConfig, RewardWeights: the environment's knobs
    ml.env         TradingEnv (the engine path), FastTradingEnv (the fast path)
    ml.window      TrainingWindow: bars, their features and normalisation, aligned
"""
