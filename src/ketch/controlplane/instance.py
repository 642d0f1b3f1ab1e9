"""A workload instance as the registry and the translators see it.

Instances come from runtime registration (WorkloadGroup-style auto-registration), from
WorkloadEntry objects and from ServiceEntry inline endpoints; all become this one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Mapping


class InstanceSource(str, Enum):
    REGISTRATION = "registration"
    WORKLOAD_ENTRY = "workloadentry"
    SERVICE_ENTRY = "serviceentry"


def _frozen(mapping: Mapping[str, object] | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class WorkloadInstance:
    name: str
    namespace: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    # port name -> port number on the instance (Kubernetes containerPort / WorkloadEntry ports)
    ports: Mapping[str, int] = field(default_factory=dict)
    locality: str = ""
    weight: int = 1
    healthy: bool = True
    network: str = ""
    source: InstanceSource = InstanceSource.REGISTRATION

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "ports", _frozen(self.ports))

    def __hash__(self) -> int:
        return hash((self.namespace, self.name, self.address, self.source))

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)
