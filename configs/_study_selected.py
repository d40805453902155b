"""Learning rates selected on valid for the study sweeps (generated).

Written by `python -m scripts.study_report --select` from the lr_sweep rows
of docs/results/runs.csv: per study and algebra, the learning rate with the
best valid metric (lowest bits/byte, highest top-1). An algebra is absent
until its learning-rate sweep has finished.
"""

LR = {"images": {}, "lm": {}}
