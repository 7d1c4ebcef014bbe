"""An exponential moving average of the model's weights (config `ema: <decay>`, off by default):
after every optimizer step, ema = decay * ema + (1 - decay) * weights, for every floating-point
parameter and buffer (others are copied). It is validated beside the model, saved in every
checkpoint (exactly restored on resume) and as model-only ema-last.pth / ema-best.pth."""
import copy

import torch
import torch.nn as nn

from utils.checkpoints import load_state_dict_strict
from utils.errors import UserError


class EMA:
    """A frozen copy of `model` whose weights follow the model's moving average."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards model's current weights (the unwrapped model)."""
        for (name, avg), cur in zip(self.model.state_dict().items(), model.state_dict().values()):
            if avg.is_floating_point():
                avg.lerp_(cur.detach(), 1 - self.decay)
            else:
                avg.copy_(cur)
        self.updates += 1

    def state_dict(self) -> dict:
        """{'decay', 'updates', 'sd'}: plain types, for the checkpoint."""
        return {'decay': self.decay, 'updates': self.updates, 'sd': self.model.state_dict()}

    def load_state_dict(self, state: dict, where) -> None:
        """Restore what state_dict() saved (a UserError naming `where` if it does not fit)."""
        if not isinstance(state, dict) or not isinstance(state.get('sd'), dict):
            raise UserError(f'{where}: its ema state is not a mapping with sd')
        load_state_dict_strict(self.model, state['sd'], what=f'{where} (its ema weights)')
        self.updates = int(state.get('updates', 0))
