"""Building blocks: fusion heads, unimodal heads and the per-method modules (pure PyTorch)."""
