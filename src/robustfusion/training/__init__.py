"""Lightning glue: the run configuration, module, data module, callbacks, ``train`` and ``load_run``."""
