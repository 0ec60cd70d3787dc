"""How a Keras model's recurrent layers reach the TFLite converter, and what the report says about it.

First choice: every recurrent layer an LSTM or SimpleRNN (or a Bidirectional one) that the
converter fuses into UNIDIRECTIONAL_SEQUENCE_LSTM / UNIDIRECTIONAL_SEQUENCE_RNN
(:mod:`weightkit.compress.quantize.fused`), at any sequence length, exported at a static batch of 1. A mode
that does not come out fused (:data:`KNOWN_UNFUSED`, or a conversion that fails or is not fused),
and a model with a GRU, several inputs or an option the fused op lacks, take the fallback: unrolled
up to :data:`~weightkit.compress.quantize.unroll.UNROLL_MAX_STEPS` steps, beyond that kept rolled in a frozen
function of batch 1 (float modes only).
"""

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.quantize.fused import FusionRefused, converter_input, fused_copy, static_signature
from weightkit.compress.quantize.fused_rnn import frozen_graph
from weightkit.compress.quantize.modes import MODES
from weightkit.compress.quantize.unroll import UNROLL_MAX_STEPS, frozen_function, recurrent_layers, unrolled_copy

__all__ = ["KNOWN_UNFUSED", "RecurrentPlan", "recurrent_plan"]

#: Modes whose fused conversion fails in TF 2.21 / LiteRT 2.3 (measured), by fused op: not tried.
KNOWN_UNFUSED = {
    "saved_model": {"int16x8": "TF 2.21 has no 16x8 quantization for UNIDIRECTIONAL_SEQUENCE_LSTM"},
    "graph_def": {mode: "UNIDIRECTIONAL_SEQUENCE_RNN has no integer kernel: the converter leaves it float"
                  for mode in ("int8", "int8-io", "int16x8")},
}


class RecurrentPlan:
    """The fused attempt and the fallback for one model's recurrent layers.

    Parameters
    ----------
    keras_model : keras.Model
    input_shape : tuple
        ``(None, steps, ...)``: the first input's shape, its steps fixed by the data.
    refusal : str, default=None
        Why no fused copy is wanted: none is built, every mode takes the fallback.

    Attributes
    ----------
    names : list of str
        The recurrent layers.
    fused_model : keras.Model or None
        The copy to export for the fused op; None when refused.
    fused_signature : list or None
        Its static input specs (batch 1), as ``model.export`` takes them.
    fused_graph : tuple or None
        For SimpleRNN layers: ``(graph_def, inputs, outputs)`` of the copy frozen at that signature
        (:func:`~weightkit.compress.quantize.fused_rnn.frozen_graph`), converted instead of a SavedModel.
    refusal : str or None
        Why nothing is fused (a layer and its option, several inputs, or the export's failure).
    fused_modes : dict of str to dict
        Mode → fused op name → count, filled by the conversions that came out fused.
    unfused_modes : dict of str to str
        Mode → why its fused conversion was not used.
    """

    def __init__(self, keras_model, input_shape, refusal=None):
        self.keras_model = keras_model
        self.input_shape = tuple(input_shape)
        self.names = recurrent_layers(keras_model)
        self.fused_model = self.fused_signature = self.fused_graph = self.refusal = None
        self.fused_modes, self.unfused_modes = {}, {}
        self._fallback = None
        if refusal is not None:  # nothing of the fused attempt is built
            self.refusal = refusal
            return
        shapes = [self.input_shape] if len(keras_model.inputs) == 1 else [t.shape for t in keras_model.inputs]
        try:
            if len(keras_model.inputs) > 1:  # measured: resized to a batch of 20, the state stayed (1, 4)
                raise FusionRefused(f"{len(keras_model.inputs)} inputs: fused for one-input models only (the "
                                    "several-input runner resizes the batch, which the fused op's state, fixed at "
                                    "batch 1, cannot follow)")
            copy = fused_copy(keras_model)
            self.fused_signature = static_signature(copy, shapes)
            if any(converter_input(layer) == "graph_def" for layer in _recurrent(keras_model)):
                self.fused_graph = frozen_graph(copy, self.fused_signature)
            self.fused_model = copy
        except FusionRefused as refused:
            self.refusal = str(refused)
        except WeightkitError:
            raise
        except Exception as error:  # noqa: BLE001 - Keras' cloning raises many kinds; the fallback still runs
            self.refusal = f"the fused copy could not be built ({type(error).__name__}: {error})"

    @property
    def steps(self):
        return self.input_shape[1] if len(self.input_shape) > 1 else None

    def rolled_integer(self, mode):
        """True when ``mode`` needs data and the fallback keeps the layers rolled (TF 2.21 cannot quantize that)."""
        steps = self.steps
        return MODES[mode].needs_data and (steps is None or int(steps) > UNROLL_MAX_STEPS)

    def known_unfused(self, mode):
        """Why ``mode`` cannot come out fused (:data:`KNOWN_UNFUSED`), or None; recorded when it cannot."""
        reason = KNOWN_UNFUSED["graph_def" if self.fused_graph is not None else "saved_model"].get(mode)
        if reason:
            self.not_fused(mode, reason)
        return reason

    def not_fused(self, mode, reason):
        """Record that ``mode`` did not come out fused, and why (one line)."""
        self.unfused_modes[mode] = " ".join(str(reason).split()).rstrip(".")

    def refuse(self, reason):
        """Give up the fused attempt for every mode (``reason``: one line)."""
        self.fused_model = self.fused_signature = self.fused_graph = None
        self.refusal = reason

    def fallback(self):
        """``(model to export, static function or None, note)`` of the unrolled or rolled path (made once)."""
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback

    def _make_fallback(self):
        names, steps = ", ".join(self.names), self.steps
        if steps is not None and int(steps) <= UNROLL_MAX_STEPS:
            note = (f"recurrent layers ({names}) unrolled over their {int(steps)} steps for the converter (TF 2.21 "
                    "cannot convert the rolled loop)")
            return unrolled_copy(self.keras_model) or self.keras_model, None, note
        note = (f"recurrent layers ({names}) kept rolled: {steps if steps is not None else 'an unknown number of'} "
                f"steps (over {UNROLL_MAX_STEPS}) are too many to unroll; float modes converted from a frozen "
                "function of batch 1, the integer modes cannot be")
        return self.keras_model, frozen_function(self.keras_model, self.input_shape), note

    def integer_failure(self, mode):
        """The one-line reason an integer mode fails on the rolled fallback."""
        unfused = self.unfused_modes.get(mode)
        prefix = f"not fused ({unfused}); " if unfused else (f"not fused ({self._short_refusal()}); "
                                                              if self.refusal else "")
        lstm_fused = self.fused_model is not None and self.fused_graph is None  # int8 converts fused for an LSTM
        others = "int8, dynamic or float16" if lstm_fused and mode != "int8" else "dynamic or float16"
        return (f"layer {', '.join(self.names)}: {prefix}{self.steps} steps are too many to unroll (limit "
                f"{UNROLL_MAX_STEPS}) and TF 2.21's integer quantizer crashes on the rolled loop; use {others}")

    def _short_refusal(self):
        return self.refusal[len("layer "):].split(": ", 1)[-1] if self.refusal.startswith("layer ") else self.refusal

    def notes(self):
        """Sentences for the report: which modes were fused, which fell back and why."""
        names = ", ".join(self.names)
        sentences = []
        if self.fused_modes:
            counts = next(iter(self.fused_modes.values()))
            ops = ", ".join(f"{count} {op}" for op, count in sorted(counts.items()))
            sentences.append(
                f"recurrent layers ({names}) converted to TFLite's fused recurrent op ({ops}) in "
                f"{', '.join(self.fused_modes)}: exported at a static batch of 1 and {self.steps} steps; the fused "
                "op keeps its state in variable tensors between invokes, so reset them (reset_all_variables()) "
                "before each sequence")
        fallback = self._fallback[2] if self._fallback is not None else None
        if self.unfused_modes:
            reasons = {}
            for mode, reason in self.unfused_modes.items():
                reasons.setdefault(reason, []).append(mode)
            why = "; ".join(f"{', '.join(modes)} not fused ({reason})" for reason, modes in reasons.items())
            sentences.append(f"{why}: {fallback}" if fallback else why)
        elif fallback:
            sentences.append(f"{fallback}; not fused: {self.refusal}" if self.refusal else fallback)
        return sentences


def _recurrent(model):
    names = set(recurrent_layers(model))
    return [layer for layer in walk_layers(model) if layer.name in names]


def recurrent_plan(keras_model, input_shape, refusal=None):
    """The :class:`RecurrentPlan` of a model, or None when it has no recurrent layer left rolled.

    Parameters
    ----------
    keras_model : keras.Model
    input_shape : tuple
        ``(None, steps, ...)``.
    refusal : str, default=None
        Why no fused copy is wanted (then none is built and every mode takes the fallback).

    Returns
    -------
    RecurrentPlan or None
    """
    if not recurrent_layers(keras_model):
        return None
    return RecurrentPlan(keras_model, input_shape, refusal)
