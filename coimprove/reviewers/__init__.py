"""Reviewers that answer gates without a person: scripted profiles on a simulated clock.

The `Reviewer` protocol itself lives in `coimprove.protocols`; the TUI and the CLI are its
front ends for people.
"""

from coimprove.reviewers.clock import FixedClock, SimClock
from coimprove.reviewers.profiles import (
    Exponential,
    Fatigue,
    Fixed,
    Latency,
    LogNormal,
    ReviewerProfile,
    builtin_profiles,
    load_profile,
    profile_from_yaml,
)
from coimprove.reviewers.scripted import ScriptedReviewer

__all__ = [
    "Exponential",
    "Fatigue",
    "Fixed",
    "FixedClock",
    "Latency",
    "LogNormal",
    "ReviewerProfile",
    "ScriptedReviewer",
    "SimClock",
    "builtin_profiles",
    "load_profile",
    "profile_from_yaml",
]
