"""The options objects of the long orchestrators (issue 26): ``QuantizeOptions`` and ``JourneyOptions``, built once.

``quantize_model`` and ``run_journey`` keep their keyword signatures; inside, the keywords become one frozen
object that every step reads. The runs themselves are tested in test_quantize*.py and test_demo.py.
"""

import dataclasses

import pytest

from weightkit.analysis.errors import WeightkitError


def test_quantize_options_add_mixed_once_and_are_frozen():
    from weightkit.compress.quantize.options import QuantizeOptions

    options = QuantizeOptions.checked(["float32", "int8"], "data", mixed=True, seed=3)
    assert options.modes == ("float32", "int8", "mixed")
    assert options.wants_sensitivity and options.seed == 3
    assert QuantizeOptions.checked(["float32", "mixed"], "data", mixed=True).modes == ("float32", "mixed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 1


def test_quantize_options_count_the_timed_samples_and_tell_progress_only_when_given():
    from weightkit.compress.quantize.options import QuantizeOptions

    seen = []
    options = QuantizeOptions.checked(["float32"], None, latency_repeats=5, throughput_repeats=2, batch_size=8,
                                      progress=lambda *args: seen.append(args))
    assert options.evaluation_extra_samples == 5 + 2 * 8
    options.tell(1, 3, "converting")
    QuantizeOptions.checked(["float32"], None).tell(1, 3, "nobody listens")
    assert seen == [(1, 3, "converting")]
    assert not options.wants_sensitivity


@pytest.mark.parametrize("modes, data, export, message", [
    (["float32", "int9"], None, None,
     "--modes: unknown mode 'int9'; expected some of float32, dynamic, float16, int8, int8-io, int16x8, "
     "dynamic-int4, int4, keras-int8, keras-int4, keras-float8, mixed, onnx."),
    (["float32", "int8", "int8-io"], None, None,
     "--modes int8,int8-io: need calibration data for the representative dataset; pass --data DATA (training "
     "inputs) or leave them out of --modes."),
    (["float32", "dynamic"], None, "float16",
     "--export float16: not among --modes float32,dynamic; add it to --modes."),
])
def test_quantize_options_refuse_what_cannot_run(modes, data, export, message):
    from weightkit.compress.quantize.options import QuantizeOptions

    with pytest.raises(WeightkitError) as caught:
        QuantizeOptions.checked(modes, data, export=export)
    assert str(caught.value) == message


def test_journey_options_fill_the_defaults_and_record_the_settings():
    from weightkit.compress.decorrelate.training import DEFAULT_STRENGTH
    from weightkit.demo.journey_options import JourneyOptions

    class Model:
        name = "tiny"

    options = JourneyOptions.resolved(Model(), modes=["float32", "int8"], ratio=0.25, retrain_epochs=2)
    assert (options.name, options.strength, options.threshold) == ("tiny", DEFAULT_STRENGTH, 0.9)
    assert options.modes == ("float32", "int8") and callable(options.analyzer)
    assert options.settings() == {"retrain_epochs": 2, "strength": DEFAULT_STRENGTH, "ratio": 0.25, "threshold": 0.9,
                                  "modes": ["float32", "int8"], "max_drop": 1.0, "calibration_samples": 200,
                                  "seed": 0, "fast_shrink": False}
    named = JourneyOptions.resolved(Model(), name="mine", strength=2, threshold="0.8")
    assert (named.name, named.strength, named.threshold) == ("mine", 2.0, 0.8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        named.ratio = 0.1
