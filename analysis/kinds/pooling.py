"""Position-wise steps a group passes through: pooling, upsampling, cropping, zero padding, dropout and noise."""

from weightkit.analysis.kinds.base import LayerKind
from weightkit.analysis.kinds.config_rules import channels_first, window_positions

__all__ = ["KINDS", "PoolingKind"]


class PoolingKind(LayerKind):
    """A max or average pooling layer: a window over positions (``pool_size``), or every position (global)."""

    family = "step"
    #: Whether it pools every position into one (the Global ones).
    pools_all = False

    def output_shape(self, config, input_shape):
        first = channels_first(config)
        if self.pools_all:
            return None if config.get("keepdims") else (input_shape[0], input_shape[1] if first else input_shape[-1])
        pool = config.get("pool_size", 2)
        out = window_positions(input_shape[2:] if first else input_shape[1:-1],
                               dict(config, kernel_size=pool, strides=config.get("strides") or pool))
        return input_shape[:2] + out if first else (input_shape[0],) + out + (input_shape[-1],)

_STEPS = {
    "identity": ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "ActivityRegularization"),
    "max": tuple(f"{kind}MaxPooling{n}" for kind in ("", "Global") for n in ("1D", "2D", "3D")),
    "linear": tuple(f"{kind}{n}" for kind in ("AveragePooling", "GlobalAveragePooling", "UpSampling", "Cropping")
                    for n in ("1D", "2D", "3D")),
    "zero_pad": ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"),
}

KINDS = {name: LayerKind(family="step", merge=role) for role, names in _STEPS.items() for name in names}
for _role, _pool in (("max", "MaxPooling"), ("linear", "AveragePooling")):
    for _n in ("1D", "2D", "3D"):
        KINDS[f"{_pool}{_n}"] = PoolingKind(merge=_role)
        KINDS[f"Global{_pool}{_n}"] = PoolingKind(merge=_role, pools_all=True)
for _name in ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
              "AveragePooling3D"):
    KINDS[_name].window_key = "pool_size"  # the global ones pool everything: no window
