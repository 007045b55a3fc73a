"""A mixture of experts: a sparse MLP whose router sends each token to a few experts
(Part 3's chapter "Mixture of experts", in preparation).

A dense MLP runs every token through one network. A mixture of experts (MoE; Shazeer et al.,
2017; the Switch Transformer, Fedus et al., 2021; Mixtral, Jiang et al., 2024) holds
``n_expert`` MLPs and a router, one linear layer that scores the experts for each token. Each
token goes to its ``n_expert_per_token`` (k) best-scoring experts, whose outputs are mixed
with the router's probabilities, renormalised over the k chosen (as Mixtral does)::

    probs = softmax(router(x))              # (N, E): how much each expert suits each token
    weights, experts = top-k of probs       # (N, k)
    weights = weights / weights.sum(-1)     # the k weights of a token sum to 1
    y = sum over j of weights[:, j] * expert[experts[:, j]](x)

The parameters grow with E, the compute per token only with k: an MoE saves compute per
token, not memory. With k = 1 the one weight is always 1, so the router learns only from the
balancing loss below (the Switch Transformer keeps the raw probability instead): use k >= 2.

Left alone, a router tends to collapse onto a few experts (the ones it picks train faster, so
it picks them more). The load-balancing loss (the Switch Transformer's eq. 4-6, counted with
the top k as Hugging Face's Mixtral counts it) pulls towards an even spread::

    aux = E * sum over e of f_e * P_e
    f_e = share of the tokens whose top k includes expert e   (counted: no gradient)
    P_e = mean router probability of expert e                 (differentiable)

It equals k when the routing is perfectly even. ``GPT`` averages it over the MoE layers and
adds ``moe_aux_loss_coef`` times it to the training loss.

Capacity (the Switch Transformer's): with ``moe_capacity_factor`` c, in training each expert
takes at most ceil(c * N * k / E) of a batch's N * k token-to-expert assignments, every
token's first choice before anyone's second; the others are dropped (that expert adds
nothing; the residual stream carries the token on). In eval mode no token is dropped, so a
token's output never depends on the rest of its batch (sampling with a KV cache stays exact).

Shapes: B = batch, T = time, C = n_embd, N = B * T tokens, E = n_expert, k = n_expert_per_token.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig
from .layers import MLP


def load_balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """The balancing loss of one layer: E * sum_e f_e * P_e (see the module docstring).

    probs: (N, E) router probabilities; experts: (N, k) each token's chosen experts.
    Returns a scalar, k for a perfectly even routing, up to E * k for a collapsed one.

    >>> probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    >>> round(load_balancing_loss(probs, probs.topk(1).indices).item(), 4)  # both pick 0
    1.95
    """
    n_expert = probs.size(-1)
    chosen = F.one_hot(experts, n_expert).sum(1).float()  # (N, E): 1 where e is in the top k
    share = chosen.mean(0)  # (E,) f: share of the tokens sent to each expert (sums to k)
    mean_prob = probs.float().mean(0)  # (E,) P
    return n_expert * (share * mean_prob).sum()


def expert_capacity(n_tokens: int, n_expert: int, n_expert_per_token: int,
                    capacity_factor: float) -> int:
    """Assignments one expert takes from a batch: ceil(factor * N * k / E).

    >>> expert_capacity(64, 8, 2, 1.25)  # an even share is 16; 25 % slack
    20
    """
    return math.ceil(capacity_factor * n_tokens * n_expert_per_token / n_expert)


def within_capacity(experts: torch.Tensor, n_expert: int, capacity: int) -> torch.Tensor:
    """Which token-to-expert assignments fit when each expert takes at most ``capacity``.

    experts: (N, k) each token's chosen experts, best first -> (N, k) bool, True = kept.
    Assignments queue up by choice, then by token: every token's first choice, in token
    order, then every second choice, ... An expert keeps the first ``capacity`` of its queue.

    >>> within_capacity(torch.tensor([[0, 1], [0, 1], [0, 2]]), 3, capacity=2).tolist()
    [[True, True], [True, True], [False, True]]
    """
    n_tokens, top_k = experts.shape
    queue = experts.t().reshape(-1)  # (k * N,) first choices of all tokens, then second, ...
    onehot = F.one_hot(queue, n_expert)  # (k * N, E)
    place = (onehot.cumsum(0) * onehot).sum(-1)  # (k * N,) 1-based place in its expert's queue
    return (place <= capacity).view(top_k, n_tokens).t()


class MoE(nn.Module):
    """A sparse MLP: a router (C -> E, no bias) and E SwiGLU experts (``MLP``, C -> hidden -> C).

    After each forward it keeps, for the loss and the plots:
    ``aux_loss`` (scalar, the balancing loss), ``tokens_per_expert`` ((E,) assignments each
    expert computed) and ``dropped`` (scalar, assignments dropped for lack of capacity).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_expert = config.n_expert
        self.top_k = config.n_expert_per_token
        self.capacity_factor = config.moe_capacity_factor
        self.router = nn.Linear(config.n_embd, config.n_expert, bias=False)
        self.experts = nn.ModuleList(MLP(config, kind="swiglu") for _ in range(config.n_expert))
        self.aux_loss: torch.Tensor | None = None
        self.tokens_per_expert: torch.Tensor | None = None
        self.dropped: torch.Tensor | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, C) -> probs (N, E) in float32, weights (N, k) summing to 1, experts (N, k)."""
        probs = F.softmax(self.router(x).float(), dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)  # best first
        return probs, weights / weights.sum(-1, keepdim=True), experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        x = x.reshape(B * T, C)
        probs, weights, experts = self.route(x)
        keep = torch.ones_like(experts, dtype=torch.bool)  # (N, k)
        if self.training and self.capacity_factor is not None:
            capacity = expert_capacity(B * T, self.n_expert, self.top_k, self.capacity_factor)
            keep = within_capacity(experts, self.n_expert, capacity)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            # Every expert runs, on no rows if none chose it: each gets a gradient (DDP wants one).
            token, slot = torch.where((experts == e) & keep)  # the assignments expert e takes
            out.index_add_(0, token, expert(x[token]) * weights[token, slot, None].to(x.dtype))
        self.aux_loss = load_balancing_loss(probs, experts)
        with torch.no_grad():
            self.tokens_per_expert = torch.bincount(experts[keep], minlength=self.n_expert)
            self.dropped = (~keep).sum()
        return out.view(B, T, C)

    def inactive_params(self) -> int:
        """Parameters a token does not use: the E - k experts it is not sent to."""
        per_expert = sum(p.numel() for p in self.experts[0].parameters())
        return (self.n_expert - self.top_k) * per_expert


def moe_layers(model: nn.Module) -> list[MoE]:
    """The MoE layers of a model, in order (empty for a dense model)."""
    return [m for m in model.modules() if isinstance(m, MoE)]


def expert_usage(model: nn.Module) -> dict[str, torch.Tensor]:
    """What the routers did in the model's last forward pass, for plots:

    tokens: (L, E) assignments each expert of each MoE layer computed;
    dropped: (L,) assignments each layer dropped for lack of capacity.
    Each layer routes N tokens k times: tokens[l].sum() + dropped[l] == N * k.
    """
    layers = moe_layers(model)
    if not layers:
        raise ValueError("expert_usage needs a model with mlp='moe' layers; this one has none")
    if layers[0].tokens_per_expert is None:
        raise ValueError("expert_usage reads the last forward pass: run the model once first")
    return {"tokens": torch.stack([m.tokens_per_expert for m in layers]),
            "dropped": torch.stack([m.dropped for m in layers])}
