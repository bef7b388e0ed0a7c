"""``report.md`` of a benchmark folder (:func:`write_report`: clean test metrics, robustness
summary, primary-metric and modality-weight curves, missing modalities, "do the weights matter?",
the grids) and the results page over several folders (:func:`write_results_page`). What is shown
is driven by the folder's task (:attr:`Folder.task`, from ``benchmark.json`` or the columns of
``results.csv``): its metric specs give the columns, titles, directions and digits, its primary
metric (accuracy, mIoU) the nAUC, PCR, weight effects and claims.

Modules, in import order: ``statistics`` (nAUC, PCR, mean ± std, paired tests), ``reading``
(``results.csv`` and ``benchmark.json`` into indexed cells), ``summaries`` (per method and seed:
nAUC, mean PCR, weight effects), ``figures`` (the curves, drawn by ``plots``), ``tables`` (the
Markdown sections), ``document`` (``report.md``), ``page`` (the results page).
"""

from robustfusion.evaluation.report.document import REPORT_FILE, write_report
from robustfusion.evaluation.report.figures import FIGURES_DIR, SEVERITY_AXES, severity_axis
from robustfusion.evaluation.report.page import PART_FILE, dataset_columns, write_results_page
from robustfusion.evaluation.report.reading import (
    LEARNED,
    ORACLE,
    UNIFORM,
    Folder,
    Results,
    is_twin,
    read_rows,
    weights_of,
)
from robustfusion.evaluation.report.statistics import (
    ALPHA,
    normalised_auc,
    paired_p_value,
    pcr,
)
from robustfusion.evaluation.report.summaries import (
    WEIGHT_EFFECTS,
    EffectCell,
    effect_by_seed,
    mean_pcr_by_seed,
    robustness_by_seed,
    robustness_summary,
    weight_effects,
)

__all__ = [
    "ALPHA",
    "FIGURES_DIR",
    "LEARNED",
    "ORACLE",
    "PART_FILE",
    "REPORT_FILE",
    "SEVERITY_AXES",
    "UNIFORM",
    "WEIGHT_EFFECTS",
    "EffectCell",
    "Folder",
    "Results",
    "dataset_columns",
    "effect_by_seed",
    "is_twin",
    "mean_pcr_by_seed",
    "normalised_auc",
    "paired_p_value",
    "pcr",
    "read_rows",
    "robustness_by_seed",
    "robustness_summary",
    "severity_axis",
    "weight_effects",
    "weights_of",
    "write_report",
    "write_results_page",
]
