"""Width multipliers matching the real models (generated; do not edit).

Regenerate with
  python -m scripts.match_width --model all --targets params,params_without_io,macs \
      --write configs/_vision_widths.py
MATCHED[model][target][algebra] = width_multiplier; see
algebranets/models/width_matching.py for the targets.
"""

MATCHED = {
    "mobilenet": {
        "macs": {
            "C": 0.983795,
            "H": 0.952785,
            "M2C": 1.311,
            "M2R": 1.3654,
            "M3R": 1.60406,
            "M4R": 1.76023,
            "R": 1.0,
            "cross": 1.19348,
            "dual": 1.14011,
        },
        "params": {
            "C": 1.33104,
            "H": 1.72962,
            "M2C": 2.17891,
            "M2R": 1.72962,
            "M3R": 2.25811,
            "M4R": 2.63459,
            "R": 1.0,
            "cross": 1.55653,
            "dual": 1.33104,
        },
        "params_without_io": {
            "C": 1.408,
            "H": 1.97957,
            "M2C": 2.77596,
            "M2R": 1.97957,
            "M3R": 2.93814,
            "M4R": 3.88102,
            "R": 1.0,
            "cross": 1.71904,
            "dual": 1.408,
        },
    },
    "resnet50": {
        "macs": {
            "C": 1.0,
            "H": 1.0,
            "M2C": 1.40657,
            "M2R": 1.40558,
            "M3R": 1.7222,
            "M4R": 1.96508,
            "R": 1.0,
            "cross": 1.22254,
            "dual": 1.15086,
        },
        "params": {
            "C": 1.38879,
            "H": 1.91542,
            "M2C": 2.61497,
            "M2R": 1.91542,
            "M3R": 2.75282,
            "M4R": 3.51735,
            "R": 1.0,
            "cross": 1.67886,
            "dual": 1.38879,
        },
        "params_without_io": {
            "C": 1.41348,
            "H": 1.9963,
            "M2C": 2.82396,
            "M2R": 1.9963,
            "M3R": 2.99491,
            "M4R": 3.98366,
            "R": 1.0,
            "cross": 1.73002,
            "dual": 1.41348,
        },
    },
}
