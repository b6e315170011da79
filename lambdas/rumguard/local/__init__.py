"""Local tooling: the embedded AWS (moto plus what moto lacks), simulated traffic, the demo."""
