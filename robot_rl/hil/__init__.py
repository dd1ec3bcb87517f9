"""Human in the loop: the intervention wrapper and the simulated person."""
