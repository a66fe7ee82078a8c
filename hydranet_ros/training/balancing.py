"""Combining per-task losses: fixed weights, learned uncertainty (Kendall et al. 2018),
dynamic weight averaging (Liu et al. 2019)."""
from __future__ import annotations

import math

import torch
from torch import nn


class LossBalancer(nn.Module):
    """Combines the per-task losses: fixed weights, learned uncertainty, or DWA; its state (DWA history
    included) is in state_dict()."""
    def __init__(self, tasks, method: str = 'fixed', weights: dict | None = None, dwa_temperature: float = 2.0):
        super().__init__()
        if method not in ('fixed', 'uncertainty', 'dwa'):
            raise ValueError(f"balancing must be 'fixed', 'uncertainty' or 'dwa', got '{method}'")
        self.tasks = list(tasks)
        self.method = method
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}
        self.temperature = dwa_temperature
        # log sigma^2 per task, learned with the network (uncertainty weighting).
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=method == 'uncertainty')
        self.history: list[dict] = []       # epoch-mean losses, for DWA
        self.dwa = {t: 1.0 for t in self.tasks}

    def forward(self, losses: dict) -> torch.Tensor:
        total = 0.0
        for i, t in enumerate(self.tasks):
            if t not in losses:
                continue
            if self.method == 'uncertainty':
                # L/(2 sigma^2) + log sigma  (regression form, used for every task for simplicity)
                total = total + 0.5 * torch.exp(-self.log_vars[i]) * losses[t] + 0.5 * self.log_vars[i]
            elif self.method == 'dwa':
                total = total + self.weights[t] * self.dwa[t] * losses[t]
            else:
                total = total + self.weights[t] * losses[t]
        return total

    def end_epoch(self, mean_losses: dict):
        """DWA: weights from the ratio of the last two epochs' losses (softmax, temperature T)."""
        self.history.append(dict(mean_losses))
        if self.method != 'dwa' or len(self.history) < 2:
            return
        prev, last = self.history[-2], self.history[-1]
        ratios = {t: last[t] / max(prev[t], 1e-12) for t in self.tasks if t in last and t in prev}
        if not ratios:
            return
        exps = {t: math.exp(r / self.temperature) for t, r in ratios.items()}
        norm = sum(exps.values())
        self.dwa = {t: len(exps) * exps[t] / norm for t in exps}

    # The DWA history and weights travel in state_dict(), so a resumed run goes on where it was.
    def get_extra_state(self) -> dict:
        return {'history': [dict(h) for h in self.history], 'dwa': dict(self.dwa)}

    def set_extra_state(self, state: dict):
        self.history = [dict(h) for h in state.get('history', [])]
        self.dwa = {t: float(state.get('dwa', {}).get(t, 1.0)) for t in self.tasks}

    def current_weights(self) -> dict:
        if self.method == 'uncertainty':
            return {t: float(0.5 * torch.exp(-self.log_vars[i])) for i, t in enumerate(self.tasks)}
        if self.method == 'dwa':
            return {t: self.weights[t] * self.dwa[t] for t in self.tasks}
        return dict(self.weights)
