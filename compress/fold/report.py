"""What a fold did: each chain folded or left alone (and why), parameters, the output difference."""

from dataclasses import dataclass, field

__all__ = ["ChainFold", "FoldReport"]


@dataclass
class ChainFold:
    """One linear chain and what the fold did with it.

    Attributes
    ----------
    chain : weightkit.analysis.structure.linear_chains.LinearChain
    folded : bool
    why_not : str or None
        Why it was left alone.
    """

    chain: object
    folded: bool
    why_not: str = None

    def to_dict(self):
        return {**self.chain.to_dict(), "folded": self.folded, "why_not": self.why_not}


@dataclass
class FoldReport:
    """The result of :func:`weightkit.compress.fold_linear`.

    Attributes
    ----------
    model : str
    chains : list of ChainFold
    params_before, params_after : int
        The whole model's parameters.
    max_abs_difference : float or None
        Largest ``|output before − output after|`` over the compared inputs; None when nothing
        was folded.
    output_scale : float or None
        Largest ``|output before|`` there, to read the difference against.
    inputs : str or None
        What the outputs were compared on.
    notes : list of str
    """

    model: str
    chains: list = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    max_abs_difference: float = None
    output_scale: float = None
    inputs: str = None
    notes: list = field(default_factory=list)

    @property
    def folded(self):
        """list of ChainFold : The chains that were folded."""
        return [fold for fold in self.chains if fold.folded]

    @property
    def exact(self):
        """bool : Whether every folded chain was exact."""
        return all(fold.chain.exact for fold in self.folded)

    def to_dict(self):
        return {"model": self.model, "chains": [fold.to_dict() for fold in self.chains],
                "folded": len(self.folded), "left_alone": len(self.chains) - len(self.folded),
                "params_before": int(self.params_before), "params_after": int(self.params_after),
                "max_abs_difference": self.max_abs_difference, "output_scale": self.output_scale,
                "exact": self.exact, "inputs": self.inputs, "notes": list(self.notes)}
