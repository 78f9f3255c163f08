"""rmapwalk: reproduce "KSM: Optimizations for rmap_walk_ksm" (v4) by simulation and measurement."""
__version__ = "0.1.0"
