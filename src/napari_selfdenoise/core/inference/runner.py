"""Forward passes of one batch of tiles: precision, memory format, TTA, J-invariant or
complementary masked passes and R3 refinement."""

from __future__ import annotations

from typing import Any, Optional


def _dihedral(x: Any, k: int, flip: bool) -> Any:
    import torch

    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def _undihedral(y: Any, k: int, flip: bool) -> Any:
    import torch

    y = y.flip(-1) if flip else y
    return torch.rot90(y, -k, dims=(-2, -1))


def refine_network(net: Any) -> Any:
    """The network of R3's refinement passes: ``net.refine_module`` (full resolution,
    e.g. the blind-spot prior's mean without pixel shuffle) or ``net`` itself."""
    return getattr(net, "refine_module", net)


class Runner:
    """Forward passes with precision, memory format, TTA and J-invariance applied.

    J-invariant inference hides the grid subset ``J`` by *source* pixel: ``phase`` holds,
    per tile voxel, the subset id of the image pixel it was read from, so reflected copies
    of a hidden pixel near the image border are hidden too.
    """

    def __init__(self, net: Any, device: Any, dtype: Any, channels_last: bool, tta: bool,
                 predictor: str, grid: int, mode: str, n_subsets: int,
                 r3: Optional[tuple[int, float]] = None):
        import torch

        self.net, self.device, self.dtype = net, device, dtype
        self.tta, self.predictor, self.grid, self.mode = tta, predictor, grid, mode
        self.j_invariant = predictor != "plain"  # masked passes, each kept on its subset
        self.n_subsets = n_subsets
        self.r3 = r3  # (passes, fraction) of R3 refinement, or None
        self.refine = refine_network(net)
        self.memory_format = None
        if channels_last:
            self.memory_format = (torch.channels_last if getattr(net, "spatial_dims", 2) == 2
                                  else torch.channels_last_3d)

    def _net(self, x: Any, net: Any = None) -> Any:
        from ..device import autocast
        from ..models import apply_padded

        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.dtype):
            return apply_padded(self.net if net is None else net, x).float()

    def _once(self, x: Any, phase: Any) -> Any:
        if not self.j_invariant:
            y = self._net(x)
        else:
            from ..masking import invariant_apply

            y = invariant_apply(self._net, x, phase, self.n_subsets, self.mode)
        if self.r3 is None:
            return y
        from ..refine import r3_refine

        return r3_refine(lambda t: self._net(t, self.refine), x, y, *self.r3)

    def __call__(self, x: Any, phase: Any = None) -> Any:
        if not self.tta:
            return self._once(x, phase)
        acc = None
        for k in range(4):
            for flip in (False, True):
                ph = None if phase is None else _dihedral(phase, k, flip)
                y = _undihedral(self._once(_dihedral(x, k, flip), ph), k, flip)
                acc = y if acc is None else acc + y
        return acc / 8.0
