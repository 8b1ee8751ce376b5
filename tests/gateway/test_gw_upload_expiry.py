"""How often abandoned multipart uploads are swept, for the ages an operator may set."""

from __future__ import annotations

from kmsgate.gateway.upload_expiry import MAX_SWEEP_SECONDS, MIN_SWEEP_SECONDS, sweep_interval


def test_uploads_are_swept_a_quarter_of_their_age_apart_within_bounds() -> None:
    assert sweep_interval(7 * 24 * 3600) == MAX_SWEEP_SECONDS
    assert sweep_interval(400) == 100
    assert sweep_interval(1) == MIN_SWEEP_SECONDS
