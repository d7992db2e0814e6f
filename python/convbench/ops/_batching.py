"""What the ops' torch.vmap rules (torch.library.register_vmap, one per
operator, beside it in ops/<op>.py) share.

Without them vmap falls back to one kernel call per sample (slow, with a
warning). Each rule folds the vmapped dimension B into the ops' own shapes,
as torch's conv batching rule does:

* only the data (input, grad_output, indices) is batched: B joins the batch, N*B;
* a weight (or, for the weight gradient, either operand) is batched: B joins the
  groups, so sample b's channels form groups b*g .. b*g+g-1, an unbatched
  operand is repeated B times along the channels.

Per-sample gradients (vmap(grad(f))) reach the weight-gradient rule with both
operands batched: one grouped kernel call computes all B gradients.
"""
from __future__ import annotations


def front(t, dim, size):
    """t with its vmapped dimension first, expanded to `size` if it has none."""
    if dim is None:
        return t.unsqueeze(0).expand(size, *t.shape)
    return t.movedim(dim, 0)


def to_channels(t, dim, size):
    """(N, size*C, ...) from a per-sample (N, C, ...): sample b in channels b*C.."""
    if dim is None:
        return t.repeat(1, size, *([1] * (t.dim() - 2)))
    return t.movedim(dim, 1).flatten(1, 2)


def check_4d(t, dim, what, op):
    if t.dim() - (dim is not None) != 4:
        raise RuntimeError(f"convbench.{op}: expected a 4D {what} per vmapped sample, got "
                           f"{t.dim() - (dim is not None)}D")
