"""Sampled architecture search (DQAS-style): its objective, its gradient estimators, the draws.

**The objective differs from the exact forms'.** The exact forms (enumeration, channel) train
the loss of ONE probability vector, the weight-averaged mixture P = sum_c w_c p_c(theta).
Sampled search (`search sampled K`) trains the *expected loss over architectures* drawn from
the per-position softmax distributions pi_pos = softmax(logits[pos]):
    J(theta, phi, logits) = E_{c ~ pi} [ L(M_phi(p_c(theta))) ],   pi(c) = prod_pos pi_pos[k_pos(c)],
each architecture generating its own target weights. The two agree only when pi is one-hot.

Each step draws K architectures c_1..c_K (independently, with replacement) and minimises
    mean_k L_k + mean_k (L_k - b) (log pi(c_k) - stop(log pi(c_k))),
whose value is mean_k L_k (the second term is zero) and whose gradient is
- for the angles theta and the mapping phi, mean_k grad L_k: the pathwise estimate of grad J;
- for the logits, mean_k (L_k - b) grad log pi(c_k): the score-function (REINFORCE) estimate,
  unbiased for any baseline b that does not depend on this step's draws. b is a moving average
  of earlier steps' mean losses (decay BASELINE_DECAY; the first step uses its own mean).
Weighting every architecture by pi(c) instead of drawing (`surrogate` with those weights and
b = 0) gives the exact gradient of J, which tests/test_sampled.py checks against enumeration.
The straight-through Gumbel estimator (GDAS) is not built: nothing here measured it learning
better (docs/results/sampled.md).

The draws come from a torch.Generator seeded with the run's seed; its state is a buffer of the
module, saved in every checkpoint, so a resumed run continues the same stream of draws.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from qtc.compiler.ir import Program
from qtc.runtime import weights as structural

BASELINE_DECAY = 0.9
DRAW_STREAM = 0x5A3D_51ED       # xor-ed into the run's seed for the draws' generator


def surrogate(losses: torch.Tensor, log_pi: torch.Tensor, weights: torch.Tensor, baseline: float) -> torch.Tensor:
    """sum_k weights_k L_k + sum_k weights_k (L_k - b) (log pi_k - stop(log pi_k)): its value is
    the weighted mean loss, its gradient the pathwise one for what L depends on and the score
    function's for the logits behind log pi (weights 1/K for K draws; pi(c) enumerating)."""
    advantage = (losses.detach() - baseline).to(log_pi.dtype)
    score = (weights * advantage * (log_pi - log_pi.detach())).sum()
    return (weights.to(losses.dtype) * losses).sum() + score.to(losses.dtype)


class Sampler(nn.Module):
    """K architectures per step from a per-position program's softmax weights, and the moving
    baseline. Its buffers (the baseline, the draw generator's state) are saved with the
    generator that owns it."""

    def __init__(self, program: Program, samples: int, seed: int):
        super().__init__()
        self.program, self.samples = program, samples
        self.register_buffer("baseline", torch.tensor(math.nan, dtype=torch.float64))
        # a stream of its own: the seed mixed, so the draws do not replay the angles' initial noise
        self.register_buffer("draws", torch.Generator().manual_seed(DRAW_STREAM ^ seed).get_state())

    def draw(self, probs: torch.Tensor) -> torch.Tensor:
        """(K, positions) alternatives, each position's drawn from its row of `probs`."""
        g = torch.Generator()
        g.set_state(self.draws)
        picks = torch.multinomial(probs.detach().double(), self.samples, replacement=True, generator=g)
        self.draws.copy_(g.get_state())
        return picks.T

    def mode(self, probs: torch.Tensor) -> torch.Tensor:
        """The most probable architecture (every position's favourite) as a (1, positions) pick."""
        return probs.detach().argmax(1)[None]

    def log_pi(self, probs: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
        """log pi(c_k) = sum_pos log probs[pos, k_pos] for each of the (K, positions) picks."""
        return torch.log(probs.gather(1, picks.T.to(torch.long))).sum(0)

    def objective(self, losses_of, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw K architectures, get their losses (`losses_of(picks)` -> (K,) and one generated
        weight vector), and return (the surrogate, that vector); the baseline moves after."""
        picks = self.draw(probs)
        losses, flat = losses_of(picks)
        mean = float(losses.detach().mean())
        baseline = float(self.baseline) if math.isfinite(float(self.baseline)) else mean
        K = len(picks)
        loss = surrogate(losses, self.log_pi(probs, picks), probs.new_full((K,), 1.0 / K), baseline)
        self.baseline.fill_(BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * mean)
        return loss, flat

    def one_hots(self, picks: torch.Tensor, dtype) -> torch.Tensor:
        return structural.one_hots(self.program, picks, dtype)
