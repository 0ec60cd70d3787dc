"""What a retrain did and measured: :class:`RetrainResult`, serialized by ``to_dict``."""

from dataclasses import dataclass, field

__all__ = ["RetrainResult"]


@dataclass
class RetrainResult:
    """What a retrain did and measured.

    Attributes
    ----------
    metric : {"accuracy", "mae"}
        The task metric on held-out data (MAE for regression).
    before, after : dict
        ``{metric: float, "layers": {entry: {"mean_abs_r", "redundant_pairs", "groups",
        "removable"}}}`` on the held-out split, before and after training.
    history : dict of str to list of float
        Per-epoch logs (loss, metric, ``val_*``, ``redundancy/<entry>/...``) over every epoch,
        resumed runs included; ``history["epoch"]`` numbers them from 1.
    initial_epoch : int
        Epochs already done by an interrupted run this one resumed (0 when fresh).
    """

    loss: str
    metric: str
    strength: float
    layers: list
    epochs: int
    initial_epoch: int
    strategy: str
    replicas: int
    threshold: float
    before: dict
    after: dict
    history: dict
    notes: list = field(default_factory=list)

    def layers_in_history(self):
        """Entries whose mean |r| is in the history, in order."""
        prefix, suffix = "redundancy/", "/mean_abs_r"
        return [k[len(prefix):-len(suffix)] for k in self.history if k.startswith(prefix) and k.endswith(suffix)]

    def to_dict(self):
        return {
            "loss": self.loss, "metric": self.metric, "strength": self.strength, "layers": self.layers,
            "epochs": self.epochs, "initial_epoch": self.initial_epoch, "strategy": self.strategy,
            "replicas": self.replicas, "threshold": self.threshold, "before": self.before,
            "after": self.after, "history": self.history, "notes": self.notes,
        }
