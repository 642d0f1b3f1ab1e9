"""Ketch's control plane: registry, snapshot, translation to xDS, serving."""
