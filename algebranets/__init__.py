"""algebranets: neural networks with weights and activations in algebras.

Submodules: `algebras` (registry and products), `kernels` (pure dense/conv
functions with automatic path choice), `layout` (standard and column-folded
activations), `layers` (Haiku modules), `metrics` (parameter/MAC accounting),
`models` (model registry). Imported on demand: `data` (datasets), `tasks`
(task registry), `training` (configs, trainer, checkpoints, evaluation).
"""

from algebranets import (
    algebras,
    backend_log,
    kernels,
    layers,
    layout,
    metrics,
    models,
)

# No "Unable to initialize backend 'tpu'" line on machines without a TPU
# (JAX initialises its backends lazily, after this import).
backend_log.install()

__version__ = "0.1.0"

__all__ = ["algebras", "kernels", "layers", "layout", "metrics", "models"]
