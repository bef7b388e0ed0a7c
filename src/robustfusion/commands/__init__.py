"""CLI subcommands: every module here with ``NAME``, ``HELP``, ``add_arguments`` and ``run`` is one
``robustfusion NAME`` command (discovered by :mod:`robustfusion.cli`)."""
