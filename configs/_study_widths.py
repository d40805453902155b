"""Matched widths of the study configs (generated; do not edit).

Regenerate with `python -m scripts.study_widths --write`.
LM[size][algebra] (configs/study_lm.py): width_multiplier, d_inner
(the real FFN width before the multiplier), total params, intrinsic
MACs per token (one training segment with its memory, divided by its
64 tokens) and the params' relative error vs R. IMAGES[algebra]
(configs/study_images.py): the same with MACs per 28x28 image.
"""

LM = {
    "large": {
        "C": {
            "d_inner": 538,
            "macs_per_token": 1237632.0,
            "params": 454352,
            "relative_error": 1.8e-05,
            "width_multiplier": 1.375,
        },
        "H": {
            "d_inner": 572,
            "macs_per_token": 2344320.0,
            "params": 454504,
            "relative_error": 0.000352,
            "width_multiplier": 1.875,
        },
        "M2C": {
            "d_inner": 460,
            "macs_per_token": 2323200.0,
            "params": 454696,
            "relative_error": 0.000775,
            "width_multiplier": 2.75,
        },
        "M2R": {
            "d_inner": 572,
            "macs_per_token": 1196160.0,
            "params": 454504,
            "relative_error": 0.000352,
            "width_multiplier": 1.875,
        },
        "M3R": {
            "d_inner": 512,
            "macs_per_token": 1713600.0,
            "params": 453800,
            "relative_error": -0.001197,
            "width_multiplier": 2.8125,
        },
        "M4R": {
            "d_inner": 585,
            "macs_per_token": 2110976.0,
            "params": 454088,
            "relative_error": -0.000563,
            "width_multiplier": 3.5,
        },
        "R": {
            "d_inner": 512,
            "macs_per_token": 648192.0,
            "params": 454344,
            "relative_error": 0.0,
            "width_multiplier": 1.0,
        },
        "cross": {
            "d_inner": 512,
            "macs_per_token": 1225152.0,
            "params": 452072,
            "relative_error": -0.005001,
            "width_multiplier": 1.6875,
        },
        "dual": {
            "d_inner": 538,
            "macs_per_token": 937024.0,
            "params": 454352,
            "relative_error": 1.8e-05,
            "width_multiplier": 1.375,
        },
    },
    "medium": {
        "C": {
            "d_inner": 256,
            "macs_per_token": 311872.0,
            "params": 120232,
            "relative_error": -0.004504,
            "width_multiplier": 1.375,
        },
        "H": {
            "d_inner": 256,
            "macs_per_token": 571200.0,
            "params": 120200,
            "relative_error": -0.004769,
            "width_multiplier": 1.875,
        },
        "M2C": {
            "d_inner": 266,
            "macs_per_token": 526080.0,
            "params": 120568,
            "relative_error": -0.001722,
            "width_multiplier": 2.5,
        },
        "M2R": {
            "d_inner": 256,
            "macs_per_token": 297600.0,
            "params": 120200,
            "relative_error": -0.004769,
            "width_multiplier": 1.875,
        },
        "M3R": {
            "d_inner": 306,
            "macs_per_token": 392040.0,
            "params": 120980,
            "relative_error": 0.001689,
            "width_multiplier": 2.53125,
        },
        "M4R": {
            "d_inner": 206,
            "macs_per_token": 482048.0,
            "params": 120808,
            "relative_error": 0.000265,
            "width_multiplier": 3.5,
        },
        "R": {
            "d_inner": 256,
            "macs_per_token": 168448.0,
            "params": 120776,
            "relative_error": 0.0,
            "width_multiplier": 1.0,
        },
        "cross": {
            "d_inner": 238,
            "macs_per_token": 308448.0,
            "params": 120668,
            "relative_error": -0.000894,
            "width_multiplier": 1.6875,
        },
        "dual": {
            "d_inner": 256,
            "macs_per_token": 238304.0,
            "params": 120232,
            "relative_error": -0.004504,
            "width_multiplier": 1.375,
        },
    },
    "small": {
        "C": {
            "d_inner": 118,
            "macs_per_token": 79904.0,
            "params": 33788,
            "relative_error": -0.002244,
            "width_multiplier": 1.375,
        },
        "H": {
            "d_inner": 137,
            "macs_per_token": 133952.0,
            "params": 33832,
            "relative_error": -0.000945,
            "width_multiplier": 1.75,
        },
        "M2C": {
            "d_inner": 83,
            "macs_per_token": 119680.0,
            "params": 33896,
            "relative_error": 0.000945,
            "width_multiplier": 2.5,
        },
        "M2R": {
            "d_inner": 137,
            "macs_per_token": 72576.0,
            "params": 33832,
            "relative_error": -0.000945,
            "width_multiplier": 1.75,
        },
        "M3R": {
            "d_inner": 164,
            "macs_per_token": 87840.0,
            "params": 33770,
            "relative_error": -0.002776,
            "width_multiplier": 2.25,
        },
        "M4R": {
            "d_inner": 96,
            "macs_per_token": 97536.0,
            "params": 33800,
            "relative_error": -0.00189,
            "width_multiplier": 3.0,
        },
        "R": {
            "d_inner": 128,
            "macs_per_token": 45312.0,
            "params": 33864,
            "relative_error": 0.0,
            "width_multiplier": 1.0,
        },
        "cross": {
            "d_inner": 160,
            "macs_per_token": 74112.0,
            "params": 33896,
            "relative_error": 0.000945,
            "width_multiplier": 1.5,
        },
        "dual": {
            "d_inner": 118,
            "macs_per_token": 62128.0,
            "params": 33788,
            "relative_error": -0.002244,
            "width_multiplier": 1.375,
        },
    },
}

IMAGES = {
    "C": {
        "macs": 18303184,
        "params": 78144,
        "relative_error": 0.005016,
        "width_multiplier": 0.707107,
    },
    "H": {
        "macs": 37156608,
        "params": 79210,
        "relative_error": 0.018726,
        "width_multiplier": 1.0,
    },
    "M2C": {
        "macs": 38191968,
        "params": 77458,
        "relative_error": -0.003807,
        "width_multiplier": 1.37959,
    },
    "M2R": {
        "macs": 18691840,
        "params": 79210,
        "relative_error": 0.018726,
        "width_multiplier": 1.0,
    },
    "M3R": {
        "macs": 26825715,
        "params": 79615,
        "relative_error": 0.023934,
        "width_multiplier": 1.5,
    },
    "M4R": {
        "macs": 36257696,
        "params": 76122,
        "relative_error": -0.020989,
        "width_multiplier": 1.89362,
    },
    "R": {
        "macs": 9345920,
        "params": 77754,
        "relative_error": 0.0,
        "width_multiplier": 0.5,
    },
    "cross": {
        "macs": 17964804,
        "params": 77440,
        "relative_error": -0.004038,
        "width_multiplier": 0.866025,
    },
    "dual": {
        "macs": 13766421,
        "params": 78144,
        "relative_error": 0.005016,
        "width_multiplier": 0.707107,
    },
}
