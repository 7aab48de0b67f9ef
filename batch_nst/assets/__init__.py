"""Pixels and containers: stills, alpha and animations (GIF / APNG / WebP) in and out with Pillow.

It may import `batch_nst.errors` only: both the engine and the job read and write pictures through it.
"""
