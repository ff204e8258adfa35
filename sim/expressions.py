"""Expression presets: muscle activations and jaw poses for named expressions.

Built from FACS action units (ANATOMY.md, "Expressions as action units") resolved to
muscles exactly as the performances resolve them (``performances.unit_activations``:
each muscle's action units in ``data/muscles.toml`` and the [units] of
``data/performances.toml``); lid closure AU43/AU45 and the widening AU5 reach the lid
muscles (``sim/eyelids.py``). A muscle's activation is the strongest unit it serves.
AU26/AU27 are jaw poses.
"""

from __future__ import annotations

from dataclasses import dataclass

from .anatomy import JawPose

# Action units with intensities in [0, 1], and the jaw pose, per expression.
EXPRESSIONS: dict[str, tuple[dict[str, float], JawPose]] = {
    "neutral": ({}, JawPose()),
    "smile": ({"AU6": 0.6, "AU12": 1.0}, JawPose(opening_deg=2.0)),
    "anger": (
        {
            "AU4": 1.0,
            "AU5": 0.4,
            "AU7": 0.7,
            "AU9": 0.3,
            "AU10": 0.4,
            "AU17": 0.5,
            "AU23": 0.8,
            "AU24": 0.6,
        },  # fmt: skip
        JawPose(),
    ),
    "surprise": ({"AU1": 1.0, "AU2": 1.0, "AU5": 1.0}, JawPose(opening_deg=14.0)),
    "fear": (
        {"AU1": 0.9, "AU2": 0.6, "AU4": 0.6, "AU5": 0.7, "AU7": 0.4, "AU20": 0.9},
        JawPose(opening_deg=8.0),
    ),
    "pain": (
        {"AU4": 0.9, "AU6": 0.8, "AU7": 0.9, "AU9": 0.7, "AU10": 0.7, "AU43": 0.5},
        JawPose(opening_deg=3.0),
    ),
    "sadness": ({"AU1": 0.8, "AU4": 0.5, "AU15": 0.8, "AU17": 0.4}, JawPose()),
    "disgust": ({"AU9": 1.0, "AU10": 0.8, "AU15": 0.4, "AU16": 0.3}, JawPose(opening_deg=2.0)),
    "pucker": ({"AU18": 1.0, "AU22": 0.5}, JawPose()),
    "blink": ({"AU45": 1.0}, JawPose()),
}


@dataclass(frozen=True)
class Expression:
    """Activations per muscle name (missing = 0) and a jaw pose."""

    activations: dict[str, float]
    jaw: JawPose


def expression(name: str, book=None) -> Expression:
    """The named expression, its action units resolved to muscles by the performance
    book (``performances.unit_activations``, default book when None)."""
    from .performances import load_performance_book, unit_activations

    if name not in EXPRESSIONS:
        raise KeyError(f"Unknown expression {name!r}; choose one of {', '.join(EXPRESSIONS)}.")
    units, jaw = EXPRESSIONS[name]
    return Expression(unit_activations(book or load_performance_book(), units), jaw)
