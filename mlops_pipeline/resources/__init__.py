"""Dagster ConfigurableResources: each has a local (embedded) and a networked implementation."""
