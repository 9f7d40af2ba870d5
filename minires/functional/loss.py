"""PLACEHOLDER: being written (core engine, issue 2)."""

def cross_entropy(logits, target, label_smoothing=0.0, reduction='mean'):
    raise NotImplementedError


