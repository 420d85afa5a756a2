"""Tables (and later figures) aggregated from score files."""
