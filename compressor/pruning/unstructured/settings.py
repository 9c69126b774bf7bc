"""The own settings of the masked methods (``--opt KEY=VALUE``, a recipe's ``options:``), one class
per method, with the reason for each default. Torch-free, so ``--help`` and ``compress list`` show
them; each method module reads its class from ``cfg.settings``.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import UsageError
from compressor.pruning.settings import MethodSettings

WANDA_NORMALIZE = ("mean", "raw")
WANDA_RANKING = ("layer", "row")
ACTIVATION_STATS = ("relu", "abs")


@dataclass(frozen=True)
class WandaConfig(MethodSettings):
    """Wanda's settings of ``--scope global`` (one threshold over the dense network's scores sets
    each layer's sparsity, then each layer is pruned to it); the other scopes and ``--nm`` use none.

    Attributes:
        global_normalize: how layers' scores are compared: ``mean`` divides each layer's scores by
            their mean, ``raw`` takes them as they are. ``mean`` was chosen on the validation split
            (benchmarks/results/wanda_vs_magnitude_noft.md, "Wanda with a global allocation"):
            ``raw`` spared early, high-resolution convs and pruned late layers to the cap.
        global_ranking: how each layer is then pruned to its share: ``layer`` (one ranking per
            layer) or ``row`` (per output row, as the paper's default scope). ``layer`` did better
            than ``row`` there with either normalisation.
        max_layer_sparsity: no layer gives up more than this fraction (at least one weight of every
            layer stays); 0.99 only stops a layer from vanishing and leaves the threshold free.
    """

    title = "wanda"

    global_normalize: str = "mean"
    global_ranking: str = "layer"
    max_layer_sparsity: float = 0.99

    def check(self) -> None:
        if self.global_normalize not in WANDA_NORMALIZE:
            raise UsageError(
                f"unknown wanda global_normalize '{self.global_normalize}'",
                f"valid: {', '.join(WANDA_NORMALIZE)}",
            )
        if self.global_ranking not in WANDA_RANKING:
            raise UsageError(
                f"unknown wanda global_ranking '{self.global_ranking}'", f"valid: {', '.join(WANDA_RANKING)}"
            )
        if not 0 < self.max_layer_sparsity <= 1:
            raise UsageError(
                f"wanda max_layer_sparsity must be in (0, 1], got {self.max_layer_sparsity}",
                "e.g. --opt max_layer_sparsity=0.99 (the default)",
            )


@dataclass(frozen=True)
class SapConfig(MethodSettings):
    """SAP's settings (Diao et al., ICLR 2023); the defaults are the paper's main setting.

    At each step a group of d unpruned weights keeps r = d (1+eta_r)^(-q/(q-p)) (1-I)^(qp/(q-p))
    of them (I: its PQ index) and loses c = floor(d min(gamma (1 - r/d), beta)).

    Attributes:
        p / q: the norms of the PQ index, 0 < p < q; p=0.5, q=1 are the paper's main choice (a
            smaller p makes the index more sensitive to many small weights).
        eta_r: margin on the kept estimate r (> -1); 0, as in the paper: r as the index gives it.
        gamma: how fast a step approaches r; 1, the paper's, removes about 12% of a trained sample
            model per step, so sweeps (registry ``sweep``) use 4 to reach high sparsity in 10 steps.
        beta: at most this fraction of a group goes in one step (the paper's 0.9), in (0, 1].
    """

    title = "sap"

    p: float = 0.5
    q: float = 1.0
    eta_r: float = 0.0
    gamma: float = 1.0
    beta: float = 0.9

    def check(self) -> None:
        if not 0 < self.p < self.q:
            raise UsageError(f"SAP needs 0 < p < q, got p={self.p}, q={self.q}", "e.g. --opt p=0.5 --opt q=1")
        if not self.eta_r > -1:
            raise UsageError(f"SAP needs eta_r > -1, got {self.eta_r}", "e.g. --opt eta_r=0 (the default)")
        if not self.gamma > 0:
            raise UsageError(f"SAP needs gamma > 0, got {self.gamma}", "e.g. --opt gamma=1 (the default)")
        if not 0 < self.beta <= 1:
            raise UsageError(
                f"SAP needs beta in (0, 1], got {self.beta}", "e.g. --opt beta=0.9 (the default)"
            )


@dataclass(frozen=True)
class ActivationConfig(MethodSettings):
    """Settings of activation-based unit pruning (the APoZ / mean-activation family).

    Attributes:
        stat: the per-unit statistic averaged over samples and positions: ``relu`` (mean of
            max(y, 0): what the next ReLU passes on, the family's usual score) or ``abs`` (mean
            |y|, for units that feed no ReLU).
        threshold: none: a percentile, every layer loses the same fraction of its alive units so
            the selected layers reach ``--sparsity``; a number: only units whose mean is below it
            go, at most that percentile (``--sparsity`` is then a ceiling). Means are >= 0.
        skip_last: keep the model's output layer whole: its units are the classes, and removing
            one removes a class.
    """

    title = "activation"

    stat: str = "relu"
    threshold: float | None = None
    skip_last: bool = True

    def check(self) -> None:
        if self.stat not in ACTIVATION_STATS:
            raise UsageError(f"unknown stat '{self.stat}'", f"valid: {', '.join(ACTIVATION_STATS)}")
        if self.threshold is not None and not self.threshold >= 0:
            raise UsageError(
                f"activation threshold must be >= 0 (mean activations are), got {self.threshold}",
                "e.g. --opt threshold=0.01, or leave it out for a percentile",
            )


@dataclass(frozen=True)
class LotteryConfig(MethodSettings):
    """Settings of the lottery ticket's iterative magnitude pruning (Frankle & Carbin, ICLR 2019).

    Attributes:
        rate: fraction of the remaining weights removed per round, in (0, 1); 0.2, the paper's
            rate for fully connected layers (the rounds for ``--sparsity``: remaining = 0.8^n).
        rewind_steps: rewind to the weights after this many training batches from theta_0 (>= 0);
            0 rewinds to theta_0 itself, as in the paper (later work rewinds to an early point of
            training for deep networks, where tickets reset to theta_0 train poorly).
    """

    title = "lottery"

    rate: float = 0.2
    rewind_steps: int = 0

    def check(self) -> None:
        if not 0 < self.rate < 1:
            raise UsageError(
                f"lottery needs 0 < rate < 1, got {self.rate}", "e.g. --opt rate=0.2 (the default)"
            )
        if self.rewind_steps < 0:
            raise UsageError(
                f"lottery needs rewind_steps >= 0, got {self.rewind_steps}",
                "e.g. --opt rewind_steps=0 (the default: rewind to theta_0)",
            )
