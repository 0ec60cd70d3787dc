"""Position-wise steps a group passes through: pooling, upsampling, cropping, zero padding, dropout and noise."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS"]

_STEPS = {
    "identity": ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "ActivityRegularization"),
    "max": tuple(f"{kind}MaxPooling{n}" for kind in ("", "Global") for n in ("1D", "2D", "3D")),
    "linear": tuple(f"{kind}{n}" for kind in ("AveragePooling", "GlobalAveragePooling", "UpSampling", "Cropping")
                    for n in ("1D", "2D", "3D")),
    "zero_pad": ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"),
}

KINDS = {name: LayerKind(family="step", merge=role) for role, names in _STEPS.items() for name in names}
