"""Learning bots: a gymnasium environment on the assembled bot (the same trader, rails,
brakes and order path as live and backtest), its pure-numpy fast twin, PPO policies and
their training; (to come) evaluation and the `rl_policy` strategy. torch is imported only
by the policy and training modules.

Importing this package pulls in nothing; the modules are imported by name:

    ml.spec        EnvConfig, RewardWeights: the environment's knobs
    ml.env         TradingEnv (the engine path), FastTradingEnv (the fast path)
    ml.window      TrainingWindow: bars, their features and normalisation, aligned
    ml.policies    mlp | lstm | tft -> the stable-baselines3 algorithm and policy
    ml.tft         TemporalFusionExtractor: the TFT as a features extractor
    ml.training    train(): seeded PPO on vectorised environments into a model directory
    ml.model_dir   the model directory: manifest with checksums, load_model() verified
"""
