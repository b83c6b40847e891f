"""Hypothesis profiles for the fuzz suite (tests/fuzz).

`ci`, the default, keeps the whole suite well under a minute on two cores (200 examples per
property; schemathesis takes an eighth of that per operation). `deep` is for a longer hunt:
`HUB_FUZZ_PROFILE=deep make test PYTEST_ARGS=tests/fuzz` (about ten minutes). Every test here
is marked `fuzz`, so `make test PYTEST_ARGS='-m "not fuzz"'` leaves the suite out.

Under CI=true the examples are derandomized, as Hypothesis's own CI profile does: CI gives the
same verdict on the same code, and new inputs are explored by every local run, which also
replays the failures it found before from `.hypothesis/` (git ignores it)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI") == "true"

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,  # a busy shared core must not turn a slow example into a failure
    # Large generated bodies (deep nesting, long forms) are the point here, not a smell.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    print_blob=True,
)
settings.register_profile("deep", settings.get_profile("ci"), max_examples=5_000, derandomize=False)
settings.load_profile(os.environ.get("HUB_FUZZ_PROFILE", "ci"))
