"""Pure controllers: visual features, the visual-servoing law and depth read-out.

No tree, no I/O: plain functions on numpy arrays, unit-tested against hand-computed values.
"""

from app.controllers.depth import (
    DepthEstimate,
    DepthParams,
    background_distance,
    descent_distance,
    object_distance,
)
from app.controllers.features import (
    BlobFeatures,
    FeatureParams,
    clean_mask,
    extract_features,
    moments_features,
    near_border,
)
from app.controllers.vs import (
    VSCommand,
    VSMode,
    VSParams,
    VSTargets,
    adaptive_gain,
    clamp_twist,
    compute_targets,
    control_law,
    feature_error,
    is_converged,
    load_vs_params,
    vs_step,
)

__all__ = [
    "BlobFeatures", "DepthEstimate", "DepthParams", "FeatureParams", "VSCommand", "VSMode",
    "VSParams", "VSTargets", "adaptive_gain", "background_distance", "clamp_twist", "clean_mask",
    "compute_targets", "control_law", "descent_distance", "extract_features", "feature_error",
    "is_converged", "load_vs_params", "moments_features", "near_border", "object_distance",
    "vs_step",
]
