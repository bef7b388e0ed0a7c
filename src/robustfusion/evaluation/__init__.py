"""Metrics, robustness sweeps, benchmark, report and plots."""
