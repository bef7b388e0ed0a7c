"""Tasks: what a dataset's targets are and how a model is trained and scored on them
(:class:`~robustfusion.tasks.base.Task`, registered in :data:`robustfusion.registry.TASKS`)."""

#: Target value of a pixel that has no label (NYU's void, 0 in the release); never scored.
IGNORE_INDEX = 255

from robustfusion.tasks.base import MetricSpec, Task, task_of  # noqa: E402
from robustfusion.tasks.classification import Classification  # noqa: E402
from robustfusion.tasks.segmentation import Segmentation  # noqa: E402

__all__ = ["IGNORE_INDEX", "Classification", "MetricSpec", "Segmentation", "Task", "task_of"]
