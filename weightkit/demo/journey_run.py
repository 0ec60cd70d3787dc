"""One journey under way: where its files go, how a Keras stage is saved and measured, and the progress count.

:class:`JourneyRun` holds what every step of :func:`weightkit.demo.journey.run_journey` shares
(the original model, the dataset, the folder, the :class:`~.journey_options.JourneyOptions` and
the :class:`~.stages.Journey` being filled); :meth:`JourneyRun.keras_stage` saves a model,
measures it against the original and analyzes it, the same way for every Keras stage.
"""

import os
import time

import numpy as np

from weightkit.demo.journey_options import KERAS_STAGES
from weightkit.demo.stages import Journey, Stage

__all__ = ["Clock", "JourneyRun", "join", "pooled_mean_abs_r", "save_plain"]


def pooled_mean_abs_r(result):
    """Mean |Pearson r| over every within-layer pair of neurons, all analyzed entries pooled.

    Each entry's mean |r| is weighted by its number of pairs ``n (n - 1) / 2``, so the result is
    the plain mean over all pairs.

    Parameters
    ----------
    result : analysis.ModelAnalysis

    Returns
    -------
    float or None
        None when no entry has two neurons.
    """
    pairs = np.array([layer.neurons * (layer.neurons - 1) / 2 for layer in result.layers], dtype=np.float64)
    values = np.array([layer.pearson_mean_abs_offdiag for layer in result.layers], dtype=np.float64)
    if not pairs.sum():
        return None
    return float(np.sum(pairs * values) / pairs.sum())


def save_plain(model, path):
    """Save ``model`` as ``.keras`` without optimizer state, so file sizes compare weights alone.

    A compiled, trained model's archive also holds the optimizer's slots (two more copies of the
    weights for Adam); an uncompiled copy with the same weights leaves them out.
    """
    if getattr(model, "optimizer", None) is not None:
        # Not keras.models.clone_model: Keras 3 clones the compile state, optimizer included.
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
        model = copy
    model.save(path)
    return os.path.getsize(path)


class Clock:
    """Wall and process CPU time since it was made; :meth:`stop` writes them on a stage."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self):
        """``(wall seconds, CPU seconds)`` so far."""
        return time.perf_counter() - self.wall, time.process_time() - self.cpu

    def stop(self, stage):
        stage.seconds, stage.cpu_seconds = self.elapsed()


def join(*parts):
    """Relative path parts joined with forward slashes, empty parts left out."""
    return "/".join(part.strip("/") for part in parts if part)


class JourneyRun:
    """The state every step of a journey shares.

    Parameters
    ----------
    model : keras.Model
        The original, trained.
    dataset : Dataset
        Classification; its held-out split measures every stage.
    directory : str
        The existing folder the stages are written into.
    options : JourneyOptions
    """

    def __init__(self, model, dataset, directory, options):
        self.model, self.dataset, self.directory, self.options = model, dataset, directory, options
        self.journey = Journey(model=options.name, data=dataset.source, test_samples=len(dataset.x_test),
                               settings=options.settings())
        self.total = len(KERAS_STAGES) + 1
        self.done = 0

    def step(self, what):
        """Report the next step to ``options.progress``."""
        if self.options.progress is not None:
            self.options.progress(self.done, self.total, f"{self.options.name}: {what}")
        self.done += 1

    def finish(self):
        """Report the journey done to ``options.progress``."""
        if self.options.progress is not None:
            self.options.progress(self.total, self.total, f"{self.options.name}: done")

    def add(self, stage):
        """Append a measured stage and tell ``options.on_stage``."""
        self.journey.stages.append(stage)
        if self.options.on_stage is not None:
            self.options.on_stage(stage)

    def folders(self, key):
        """``(folder relative to the page, absolute folder)`` of the stage ``key``; the absolute one is made."""
        prefix = self.options.prefix
        folder = prefix if key == "original" else join(prefix, key)
        absolute = self.directory if key == "original" else os.path.join(self.directory, key)
        os.makedirs(absolute, exist_ok=True)
        return folder, absolute

    def keras_stage(self, key, keras_model, source, details, clock, title=None, extra_files=None):
        """Save, measure and analyze one Keras stage, then add it.

        Parameters
        ----------
        key : str
            One of :data:`~.journey_options.KERAS_STAGES`.
        keras_model : keras.Model
        source : str or None
            The key of the stage it was made from.
        details : dict
        clock : Clock
            Started when the stage's step began.
        title : str, default=None
            ``KERAS_STAGES[key]`` when None.
        extra_files : dict of str to (str, callable), default=None
            ``label -> (file name, write(absolute path))``: more files of the stage.

        Returns
        -------
        Stage
        """
        folder, absolute = self.folders(key)
        file_name = f"{self.options.name}.keras" if key == "original" else "model.keras"
        stage = Stage(key=key, title=title or KERAS_STAGES[key], kind="keras", source=source, folder=folder,
                      path=join(folder, file_name), details=details)
        stage.bytes = save_plain(keras_model, os.path.join(absolute, file_name))
        stage.params = int(keras_model.count_params())
        self._measure(stage, keras_model)
        for label, (relative, write) in (extra_files or {}).items():
            write(os.path.join(absolute, relative))
            stage.files[label] = join(folder, relative)
        result = self.options.analyzer(keras_model, stage, absolute)
        stage.analysis = result
        stage.mean_abs_r = pooled_mean_abs_r(result)
        stage.groups = int(sum(len(layer.groups) for layer in result.layers))
        stage.removable = int(result.removable)
        clock.stop(stage)
        self.add(stage)
        return stage

    def _measure(self, stage, keras_model):
        """Accuracy, agreement and largest output difference on the held-out split, against the original."""
        from weightkit.compress.merge.reporting.report import compare_models

        dataset = self.dataset
        evaluation = compare_models(self.model, keras_model, dataset.x_test, dataset.y_test, task=dataset.task)
        stage.accuracy, stage.agreement = evaluation["accuracy_after"], evaluation["agreement"]
        stage.details.setdefault("max_abs_output_difference", evaluation["max_abs_output_difference"])
