"""Learning rates selected on valid for the study sweeps (generated).

Written by `python -m scripts.study_report --select` from the lr_sweep rows
of docs/results/runs.csv: per study and algebra, the learning rate with the
best valid metric (lowest bits/byte, highest top-1). An algebra is absent
until its learning-rate sweep has finished.
"""

LR = {
    "images": {
        "R": 0.2,
        "C": 0.2,
        "dual": 0.2,
        "cross": 0.2,
        "H": 0.2,
        "M2R": 0.2,
        "M3R": 0.2,
        "M4R": 0.1,
        "M2C": 0.2,
    },
    "lm": {
        "R": 0.004,
        "C": 0.004,
        "dual": 0.004,
        "cross": 0.008,
        "H": 0.004,
        "M2R": 0.004,
        "M3R": 0.008,
        "M4R": 0.008,
        "M2C": 0.008,
    },
}
