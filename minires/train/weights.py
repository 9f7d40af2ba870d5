"""A run's starting weights and what it trains: --init-from (load_pretrained) and --freeze-backbone."""
from __future__ import annotations

from ..checkpoint import load_weights


def _few(keys, n=3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_pretrained(model, path, log=print, model_name=None) -> None:
    """Load the weights of a checkpoint, a weights-only file or a plain safetensors file of weights under
    torchvision's names into model; a head `fc` of another class count is left freshly initialised."""
    weights, meta = load_weights(path)
    config = ((meta or {}).get("extra") or {}).get("config")
    saved = config.get("model") if isinstance(config, dict) else None
    if saved is not None and model_name is not None and saved != model_name:
        raise ValueError(f"--init-from {path} holds a {saved} model, not {model_name}: pass --model {saved}, "
                         f"or weights of a {model_name}")
    own = model.state_dict()
    body = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    missing = [k for k in own if not k.startswith("fc.") and k not in body]
    unexpected = [k for k in body if k not in own]
    wrong = [k for k in body if k in own and tuple(body[k].shape) != own[k].shape]
    if missing or unexpected or wrong:
        what = f"a {saved} model" if saved else "weights"
        raise ValueError(f"--init-from {path} holds {what} that do not fit {model_name or 'this model'}: "
                         + "; ".join(part for part in (
                             f"{len(missing)} missing ({_few(missing)})" if missing else "",
                             f"{len(unexpected)} unexpected ({_few(unexpected)})" if unexpected else "",
                             f"{len(wrong)} of another shape ({_few(wrong)})" if wrong else "") if part))
    head = {k: v for k, v in weights.items() if k.startswith("fc.")}
    if set(head) == {k for k in own if k.startswith("fc.")} and all(
            tuple(v.shape) == own[k].shape for k, v in head.items()):
        model.load_state_dict(weights)
        return
    log(f"init-from {path}: its head {({k: tuple(v.shape) for k, v in head.items()})} is for "
        f"{next(iter(head.values())).shape[0] if head else 'no'} classes, this run has {model.fc.out_features}; "
        "keeping a freshly initialised fc")
    model.load_state_dict(body, strict=False)


def freeze_backbone(model) -> list:
    """requires_grad=False on every parameter outside `fc`; returns the head's parameters."""
    head = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
        if p.requires_grad:
            head.append(p)
    return head

