"""Bookinfo, rewritten for Ketch: productpage, details, ratings, reviews (v1/v2/v3)."""
