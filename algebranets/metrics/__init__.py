"""Model metrics: parameter and multiply-add accounting."""

from algebranets.metrics.accounting import (
    LayerMacs,
    MacReport,
    ParamRow,
    ParamTable,
    count_macs,
    count_params,
    count_state,
    param_table,
)

__all__ = [
    "LayerMacs",
    "MacReport",
    "ParamRow",
    "ParamTable",
    "count_macs",
    "count_params",
    "count_state",
    "param_table",
]
