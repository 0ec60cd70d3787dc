"""The options of one :func:`~weightkit.compress.quantize.pipeline.quantize_model` run, checked once.

:class:`QuantizeOptions` gathers the keyword arguments that travel together through the
pipeline's steps (conversion, sensitivity, evaluation, the export choice), so each step takes one
object instead of a dozen parameters.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize.modes import MODE_NAMES, MODES

__all__ = ["QuantizeOptions"]


@dataclass(frozen=True)
class QuantizeOptions:
    """Every setting of a quantization run but the model and the data.

    Attributes
    ----------
    modes : tuple of str
        The modes to build, in the order of the report; ``"mixed"`` is among them when asked for.
    calibration_samples, max_drop, export, seed, random_samples, latency_repeats, throughput_repeats, batch_size, \
output_dir, verbose, progress, unsafe, sensitivity, sensitivity_mode, int16x8_limit_s
        As in :func:`~weightkit.compress.quantize.pipeline.quantize_model`.
    """

    modes: tuple
    calibration_samples: int = 200
    max_drop: float = 1.0
    export: Optional[str] = None
    seed: int = 0
    random_samples: int = 256
    latency_repeats: int = 50
    throughput_repeats: int = 10
    batch_size: int = 64
    output_dir: Optional[str] = None
    verbose: bool = False
    progress: Optional[Callable] = None
    unsafe: bool = False
    sensitivity: bool = False
    sensitivity_mode: str = "int8"
    int16x8_limit_s: Optional[float] = 60.0

    @classmethod
    def checked(cls, modes, data, *, mixed=False, **settings):
        """The options of a run, ``"mixed"`` added to ``modes`` when ``mixed``; refuses what cannot run.

        Parameters
        ----------
        modes : sequence of str
        data : object or None
            Only whether there is any: the integer modes need calibration data.
        mixed : bool, default=False
        **settings
            The other fields, by name.

        Returns
        -------
        QuantizeOptions

        Raises
        ------
        WeightkitError
            An unknown mode, a mode that needs data without data, or ``export`` not among ``modes``.
        """
        modes = list(modes)
        if mixed and "mixed" not in modes:
            modes.append("mixed")
        _check_modes(modes, data, settings.get("export"))
        return cls(modes=tuple(modes), **settings)

    @property
    def wants_sensitivity(self):
        """Whether the per-layer sensitivity runs: asked for, or needed by the ``mixed`` model."""
        return self.sensitivity or "mixed" in self.modes

    @property
    def evaluation_extra_samples(self):
        """Samples the timings add to an evaluation (what the int16x8 time limit projects)."""
        return self.latency_repeats + self.throughput_repeats * self.batch_size

    def tell(self, done, total, what):
        """Report progress, when a ``progress`` callable was given."""
        if self.progress:
            self.progress(done, total, what)


def _check_modes(modes, data, export):
    for mode in modes:
        if mode not in MODES:
            raise WeightkitError(f"--modes: unknown mode {mode!r}; expected some of {', '.join(MODE_NAMES)}.")
    needing = [m for m in modes if MODES[m].needs_data]
    if needing and data is None:
        raise WeightkitError(
            f"--modes {','.join(needing)}: {'needs' if len(needing) == 1 else 'need'} calibration data for the "
            "representative dataset; pass --data DATA (training inputs) or leave "
            f"{'it' if len(needing) == 1 else 'them'} out of --modes."
        )
    if export is not None and export not in modes:
        raise WeightkitError(f"--export {export}: not among --modes {','.join(modes)}; add it to --modes.")
