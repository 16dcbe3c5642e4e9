"""Hypothesis property tests of everything that turns outside input into genisys values."""
