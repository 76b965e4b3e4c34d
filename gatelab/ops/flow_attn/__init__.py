"""Flow attention (Flowformer): the fast form (cumulative sums, chunked read-out), the reference and its state."""
from .fast import flow_attention
from .ref import flow_attention_reference
from .state import FlowState, empty_flow_state

__all__ = ["FlowState", "empty_flow_state", "flow_attention", "flow_attention_reference"]
