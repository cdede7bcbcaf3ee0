"""The PaLM family: our own Keras 3 backbone and causal LM in keras-hub's conventions."""

from flanctl.models.palm.backbone import PaLMBackbone
from flanctl.models.palm.causal_lm import PaLMCausalLM, with_attention, with_vocabulary

__all__ = ["PaLMBackbone", "PaLMCausalLM", "with_attention", "with_vocabulary"]
