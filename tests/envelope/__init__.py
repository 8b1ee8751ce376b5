"""Tests of the envelope-encryption core."""
