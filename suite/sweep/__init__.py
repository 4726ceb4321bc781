"""Measuring: what one config's run is made of, and the sweep over configs."""
