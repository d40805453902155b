"""Registry of tasks: what a run learns from which data, and how it is scored.

A task turns a config into a data source, a loss and evaluation metrics; the
trainer (`algebranets.training.trainer`) is the same for every task. A task
subclasses `Task` (`tasks/base.py`: the required methods and the hooks with
their defaults); register it with `register(TaskSpec(...))`.
"""

# Each registers itself on import.
from algebranets.tasks import (
    byte_lm,
    image_classification,
    registry,
    stream_lm,
    teacher_student,
)
from algebranets.tasks.base import Task
from algebranets.tasks.registry import TaskSpec, get, names, register

__all__ = [
    "Task",
    "TaskSpec",
    "byte_lm",
    "get",
    "image_classification",
    "names",
    "register",
    "registry",
    "stream_lm",
    "teacher_student",
]
