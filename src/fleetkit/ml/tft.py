"""A Temporal Fusion Transformer (Lim et al., 2021) as a stable-baselines3 features
extractor: the policy and value heads read the vector it makes of an observation.

    observation   (window x n_features feature rows, flattened oldest first) + the state
                  columns (position, unrealised P&L), as `ml.window` builds it
    static        a GRN encodes the state columns into four context vectors: for variable
                  selection, the LSTM's initial hidden and cell states, and enrichment
    selection     each feature is embedded and passed through its own GRN; a GRN over all
                  of them (with the context) gives softmax weights, one per feature, and
                  the row is their weighted sum: the weights say what the policy reads
    encoder       an LSTM over the window, then a gated skip connection and layer norm
    enrichment    a GRN with the static context
    attention     interpretable multi-head attention from the decision bar (the last row)
                  to every row: per-head queries and keys, one value projection shared by
                  all heads, heads averaged, so the attention weights are readable
    output        gated skip + norm, a position-wise GRN, a gated skip back to the
                  encoder's last row, then concatenated with the raw state columns

The decision bar is the only query (TFT's decoder has one step here): every key is at or
before it, so no mask is needed and nothing looks ahead.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from fleetkit.features.observation import STATE_COLUMNS


class GatedLinearUnit(nn.Module):
    """GLU(x) = sigmoid(W1 x) * (W2 x): lets a block shut itself off where it adds nothing."""

    def __init__(self, size_in: int, size_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(size_in, 2 * size_out)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.linear(x).chunk(2, dim=-1)
        gated: Tensor = torch.sigmoid(gate) * value
        return gated


class GatedResidualNetwork(nn.Module):
    """GRN(a, c) = LayerNorm(skip(a) + GLU(W1 ELU(W2 a + W3 c))), the TFT's building block."""

    def __init__(self, size_in: int, hidden: int, size_out: int,
                 context: int | None = None) -> None:
        super().__init__()
        self.skip = nn.Linear(size_in, size_out) if size_in != size_out else nn.Identity()
        self.hidden = nn.Linear(size_in, hidden)
        self.context = nn.Linear(context, hidden, bias=False) if context else None
        self.inner = nn.Linear(hidden, hidden)
        self.gate = GatedLinearUnit(hidden, size_out)
        self.norm = nn.LayerNorm(size_out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.hidden(x)
        if self.context is not None and context is not None:
            h = h + self.context(context)
        out: Tensor = self.norm(self.skip(x) + self.gate(self.inner(nn.functional.elu(h))))
        return out


class VariableGRNs(nn.Module):
    """One GRN per variable, all applied at once (batched weights), each mapping its
    variable's embedding to `size`; no context, as in the paper's per-variable GRNs."""

    def __init__(self, variables: int, size: int) -> None:
        super().__init__()
        scale = 1.0 / math.sqrt(size)
        self.w_hidden = nn.Parameter(torch.empty(variables, size, size).uniform_(-scale, scale))
        self.b_hidden = nn.Parameter(torch.zeros(variables, size))
        self.w_inner = nn.Parameter(torch.empty(variables, size, size).uniform_(-scale, scale))
        self.b_inner = nn.Parameter(torch.zeros(variables, size))
        self.w_gate = nn.Parameter(torch.empty(variables, size, 2 * size).uniform_(-scale, scale))
        self.b_gate = nn.Parameter(torch.zeros(variables, 2 * size))
        self.norm = nn.LayerNorm(size)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., variables, size) -> (..., variables, size)."""
        h = torch.einsum("...vi,vio->...vo", x, self.w_hidden) + self.b_hidden
        h = torch.einsum("...vi,vio->...vo", nn.functional.elu(h), self.w_inner) + self.b_inner
        value, gate = (torch.einsum("...vi,vio->...vo", h, self.w_gate)
                       + self.b_gate).chunk(2, dim=-1)
        out: Tensor = self.norm(x + torch.sigmoid(gate) * value)
        return out


class VariableSelectionNetwork(nn.Module):
    """Embeds each scalar variable in `variable_size` values, weighs the variables by a
    softmax conditioned on the static context and returns the weighted sum of their GRN
    outputs (projected to `size`) and the weights.

    The per-variable work is done on every variable of every row of every observation, so
    it dominates the TFT's cost: its width is kept below the model's (8 against 16 by
    default), which made a PPO minibatch about twice as fast (bench/rl_train.py)."""

    def __init__(self, variables: int, size: int, variable_size: int) -> None:
        super().__init__()
        self.embed_weight = nn.Parameter(torch.randn(variables, variable_size) * 0.1)
        self.embed_bias = nn.Parameter(torch.zeros(variables, variable_size))
        self.per_variable = VariableGRNs(variables, variable_size)
        self.weights = GatedResidualNetwork(variables * variable_size, size, variables,
                                            context=size)
        self.project = nn.Linear(variable_size, size)

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """x: (batch, time, variables); context: (batch, size) ->
        (batch, time, size), weights (batch, time, variables)."""
        embedded = x.unsqueeze(-1) * self.embed_weight + self.embed_bias
        flat = embedded.flatten(start_dim=-2)
        steps = x.shape[1]
        weights = torch.softmax(
            self.weights(flat, context.unsqueeze(1).expand(-1, steps, -1)), dim=-1)
        selected = (self.per_variable(embedded) * weights.unsqueeze(-1)).sum(dim=-2)
        projected: Tensor = self.project(selected)
        return projected, weights


class InterpretableAttention(nn.Module):
    """Multi-head attention whose heads share one value projection and are averaged, so
    that one set of attention weights over the rows explains the output (TFT, sec. 4.4)."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_size = max(1, size // heads)
        self.query = nn.Linear(size, heads * self.head_size)
        self.key = nn.Linear(size, heads * self.head_size)
        self.value = nn.Linear(size, self.head_size)
        self.out = nn.Linear(self.head_size, size)

    def forward(self, query: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """query: (batch, 1, size); keys: (batch, time, size) ->
        (batch, 1, size), attention (batch, 1, time) averaged over heads."""
        batch, steps, _ = keys.shape
        q = self.query(query).view(batch, 1, self.heads, self.head_size).transpose(1, 2)
        k = self.key(keys).view(batch, steps, self.heads, self.head_size).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)
        attention = torch.softmax(scores, dim=-1).mean(dim=1)
        return self.out(attention @ self.value(keys)), attention


class TemporalFusionExtractor(BaseFeaturesExtractor):
    """The TFT over an observation of `window` rows of `columns` plus the state columns.
    `variable_weights()` is the mean selection weight of each column over the rows and
    observations of the last forward pass."""

    def __init__(self, observation_space: spaces.Box, window: int,
                 columns: tuple[str, ...] | list[str], hidden: int = 16,
                 heads: int = 4, variable_size: int = 8) -> None:
        extras = len(STATE_COLUMNS)
        expected = window * len(columns) + extras
        if observation_space.shape != (expected,):
            raise ValueError(f"the TFT expects observations of {window} rows x "
                             f"{len(columns)} columns + {extras} = {expected} values, the "
                             f"space is {observation_space.shape}")
        super().__init__(observation_space, hidden + extras)
        self.window = window
        self.columns = tuple(columns)
        self.static = GatedResidualNetwork(extras, hidden, hidden)
        self.contexts = nn.Linear(hidden, 4 * hidden)
        self.selection = VariableSelectionNetwork(len(columns), hidden, variable_size)
        self.encoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.encoder_gate = GatedLinearUnit(hidden, hidden)
        self.encoder_norm = nn.LayerNorm(hidden)
        self.enrichment = GatedResidualNetwork(hidden, hidden, hidden, context=hidden)
        self.attention = InterpretableAttention(hidden, heads)
        self.attention_gate = GatedLinearUnit(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden)
        self.position_wise = GatedResidualNetwork(hidden, hidden, hidden)
        self.output_gate = GatedLinearUnit(hidden, hidden)
        self.output_norm = nn.LayerNorm(hidden)
        self._weights = torch.full((len(columns),), 1.0 / len(columns))

    def forward(self, observations: Tensor) -> Tensor:
        width = self.window * len(self.columns)
        rows = observations[:, :width].reshape(-1, self.window, len(self.columns))
        state = observations[:, width:]
        selection_ctx, hidden_ctx, cell_ctx, enrichment_ctx = self.contexts(
            self.static(state)).chunk(4, dim=-1)
        selected, weights = self.selection(rows, selection_ctx)
        self._weights = weights.detach().mean(dim=(0, 1))
        encoded, _ = self.encoder(selected, (hidden_ctx.unsqueeze(0).contiguous(),
                                             cell_ctx.unsqueeze(0).contiguous()))
        temporal = self.encoder_norm(selected + self.encoder_gate(encoded))
        enriched = self.enrichment(temporal, enrichment_ctx.unsqueeze(1))
        attended, _ = self.attention(enriched[:, -1:], enriched)
        decision = self.attention_norm(enriched[:, -1:] + self.attention_gate(attended))
        decision = self.position_wise(decision)
        out = self.output_norm(temporal[:, -1:] + self.output_gate(decision)).squeeze(1)
        return torch.cat([out, state], dim=-1)

    def variable_weights(self) -> npt.NDArray[np.float64]:
        """The selection weight of each column (in `columns` order; they sum to 1), averaged
        over the rows and observations of the last forward pass."""
        return self._weights.cpu().numpy().astype(np.float64)


def ranked_weights(columns: tuple[str, ...] | list[str],
                   weights: npt.NDArray[np.float64] | list[float]) -> list[tuple[str, float]]:
    """(column, weight) pairs, the heaviest first (ties by name, so the order is stable)."""
    if len(columns) != len(weights):
        raise ValueError(f"{len(weights)} weights for {len(columns)} columns")
    return sorted(((c, float(w)) for c, w in zip(columns, weights, strict=True)),
                  key=lambda pair: (-pair[1], pair[0]))
