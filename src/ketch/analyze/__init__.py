"""Cross-resource analysis of Istio configuration, as `istioctl analyze` does it.

    messages = analyze(resources, mesh=mesh_config, load_errors=result.errors)

See README.md beside this file for the design.
"""

from ketch.analyze.messages import CATALOGUE, Level, Message, MessageType, ResourceRef
from ketch.analyze.run import analyze, exit_code, schema_messages

__all__ = [
    "CATALOGUE",
    "Level",
    "Message",
    "MessageType",
    "ResourceRef",
    "analyze",
    "exit_code",
    "schema_messages",
]
