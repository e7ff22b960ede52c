"""transformers 5 framework pieces that modelling code vendored from transformers 5 imports and 4.57.6 lacks.

Written by model-migrate-flagos (rule P41) as ``vllm_fl/compat/tf5_modeling.py`` next to a tower module vendored
from a transformers 5 ``modeling_*.py`` (``AutoModel.from_config(config.vision_config)`` of a config only the
plugin's bridge has). Plain equivalents of what the towers use, for the attention implementations that run here
(eager, sdpa); anything else is refused, not approximated.
"""

from __future__ import annotations

from functools import wraps

import torch
from transformers.modeling_utils import AttentionInterface

# the attention implementations whose masks create_bidirectional_mask writes as transformers 5 does
_MASKED_IMPLEMENTATIONS = ("eager", "sdpa")
# what capture_outputs records through hooks transformers 5 installs from ``_can_record_outputs``
_RECORDED = ("output_hidden_states", "output_attentions")


class Transformers5AttentionInterface(AttentionInterface):
    """4.57.6's registry of attention functions with transformers 5's ``get_interface``."""

    def get_interface(self, attn_implementation, default):
        if attn_implementation is not None and attn_implementation != "eager" and attn_implementation not in self:
            raise KeyError(f"`{attn_implementation}` is not a valid attention implementation registered in the "
                           "`AttentionInterface`")
        return self.get(attn_implementation, default) if attn_implementation is not None else default


ALL_ATTENTION_FUNCTIONS = Transformers5AttentionInterface()


def create_bidirectional_mask(config, inputs_embeds, attention_mask, encoder_hidden_states=None,
                              past_key_values=None, or_mask_function=None, and_mask_function=None,
                              allow_is_bidirectional_skip=True, **kwargs):
    """transformers 5's ``masking_utils.create_bidirectional_mask`` for eager and sdpa without a cache:
    None when nothing is masked (no padding, no mask function), else the ``(batch, 1, q, kv)`` mask of
    ``(everything OR or_mask_function) AND and_mask_function AND padding`` (bool for sdpa; 0 / dtype-min for eager)."""
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    impl = getattr(config, "_attn_implementation", None)
    if impl not in _MASKED_IMPLEMENTATIONS:
        raise NotImplementedError(f"create_bidirectional_mask (transformers 5) for attention implementation {impl!r}")
    if past_key_values is not None:
        raise NotImplementedError("create_bidirectional_mask (transformers 5) with a cache")
    embeds = encoder_hidden_states if encoder_hidden_states is not None else inputs_embeds
    device = inputs_embeds.device
    batch, q_length, kv_length = embeds.shape[0], inputs_embeds.shape[1], embeds.shape[1]
    padding = None if attention_mask is None else attention_mask.to(device=device, dtype=torch.bool)
    if (allow_is_bidirectional_skip and or_mask_function is None and and_mask_function is None
            and (padding is None or bool(padding.all()))):
        return None
    b = torch.arange(batch, device=device)[:, None, None, None]
    h = torch.arange(1, device=device)[None, :, None, None]
    q = torch.arange(q_length, device=device)[None, None, :, None]
    kv = torch.arange(kv_length, device=device)[None, None, None, :]
    mask = torch.ones(batch, 1, q_length, kv_length, dtype=torch.bool, device=device)
    if and_mask_function is not None:
        mask = mask & and_mask_function(b, h, q, kv)
    if padding is not None:
        mask = mask & padding[:, None, None, :]
    mask = mask.expand(batch, 1, q_length, kv_length)
    if impl == "sdpa":
        return mask
    return torch.where(mask, torch.zeros((), device=device, dtype=embeds.dtype), torch.finfo(embeds.dtype).min)


def capture_outputs(func=None, *, tie_last_hidden_states=True):
    """transformers 5's ``output_capturing.capture_outputs`` when no layer output is asked for: ``return_dict``
    (default: the config's) decides between the output and its tuple. Recording hidden states or attentions
    needs the hooks 5.x installs; asking for them is refused."""

    def wrapped_fn(fn):
        @wraps(fn)
        def wrapper(self, *args, **kwargs):
            return_dict = kwargs.pop("return_dict", getattr(self.config, "return_dict", True))
            asked = [k for k in _RECORDED if kwargs.get(k, getattr(self.config, k, False))]
            if asked:
                raise NotImplementedError(f"{type(self).__name__} (vendored from transformers 5): {', '.join(asked)}")
            outputs = fn(self, *args, **kwargs)
            return outputs.to_tuple() if return_dict is False else outputs

        return wrapper

    return wrapped_fn(func) if func is not None else wrapped_fn
