"""Ketch: a service mesh in Python that speaks Istio's language."""

__version__ = "0.1.0"
