"""Whether the folder's plans.json says what the model was trained with.

nnU-Net stores the plans a model was trained with inside every checkpoint (`init_args.plans`, recorded by
`nnUNetTrainer.__init__`; the trainer writes the same dict to the folder's plans.json). The folder's copy is a
separate file anyone can edit: a plausible spacing, patch size or normalisation edited there passes every check of
`check_plans` and changes the numbers silently. The predictor therefore uses the folder's plans only when they
equal the checkpoint's, compared as JSON values (tuples as lists, numpy scalars as numbers).
"""
import json
from typing import Dict, List

from nnunetv2_scarnet.model_validation.problem import ModelProblem


def _as_json(value):
    """`value` as JSON would store it (the checkpoint keeps tuples and may keep numpy scalars)."""
    def plain(obj):
        if hasattr(obj, "item"):
            return obj.item()
        raise TypeError(f"not a JSON value: {type(obj).__name__}")
    return json.loads(json.dumps(value, default=plain))


def _differences(here, trained, key: str, out: List[str], limit: int) -> None:
    if len(out) >= limit or here == trained:
        return
    if isinstance(here, dict) and isinstance(trained, dict):
        for name in sorted(set(here) | set(trained), key=str):
            child = f"{key}.{name}" if key else str(name)
            if name not in here or name not in trained:
                out.append(f"{child}: only in {'the checkpoint' if name in trained else 'plans.json'}")
            else:
                _differences(here[name], trained[name], child, out, limit)
            if len(out) >= limit:
                return
        return
    out.append(f"{key or '(whole file)'}: {json.dumps(here)[:80]} in plans.json vs {json.dumps(trained)[:80]} "
               f"in the checkpoint")


def plans_differences(folder_plans: Dict, trained_plans, limit: int = 5) -> List[str]:
    """The dotted keys (at most `limit`) where the folder's plans differ from the checkpoint's `init_args.plans`;
    ModelProblem when the checkpoint holds no plans."""
    if not isinstance(trained_plans, dict):
        raise ModelProblem("init_args.plans", "missing: the checkpoint does not hold the plans it was trained "
                           "with, so the folder's plans.json cannot be verified")
    try:
        trained = _as_json(trained_plans)
    except (TypeError, ValueError) as exc:
        raise ModelProblem("init_args.plans", f"not plain JSON values ({exc})") from None
    out: List[str] = []
    _differences(folder_plans, trained, "", out, limit)
    return out
