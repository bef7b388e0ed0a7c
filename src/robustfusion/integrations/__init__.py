"""Adapters for third-party models; each needs an optional extra (``pip install robustfusion[hf]``).

Nothing here is imported by the core package: ``import robustfusion.integrations.hf`` loads
``transformers`` lazily and says how to install it when it is missing.
"""
