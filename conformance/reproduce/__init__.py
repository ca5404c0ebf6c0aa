"""Reproducers: a divergence's calls rendered as a script that replays and judges them."""
