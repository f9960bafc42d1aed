"""State estimation: truth-plus-noise (named mode) and visual-inertial fusion."""
