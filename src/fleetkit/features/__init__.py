"""Features for learning bots: a declared feature set, computed in batch for training and
bar by bar when trading live, to the same numbers.

Importing this package (the declaration, its parser and errors) pulls in neither numpy nor
TA-Lib, so configuration can check a feature set without the `ml` extra. The computing
modules are imported by name where they are needed:

    features.batch       compute_features: one row per base bar over history (training)
    features.live        LiveFeatures: the same row as each base bar closes (trading)
    features.normalise   per-column scaling fitted on the training window, saved as JSON
    features.guard       require_finite: refuse NaN and infinite features
"""

from fleetkit.features.errors import FeatureError, FeatureSetError, NormalisationMismatchError
from fleetkit.features.parse import parse_feature_set
from fleetkit.features.spec import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    CalendarFeatures,
    EMADistance,
    FeatureSet,
    Indicator,
    RealisedVolatility,
    Returns,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)

__all__ = [
    "ATR", "MACD", "RSI", "Bollinger", "CalendarFeatures", "EMADistance", "FeatureError",
    "FeatureSet", "FeatureSetError", "Indicator", "NormalisationMismatchError",
    "RealisedVolatility", "Returns", "TimeframeFeatures", "VolumeZScore",
    "default_feature_set", "parse_feature_set",
]
