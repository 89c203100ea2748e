"""raympl: decentralized personalized mask learning (MCE-PL and baselines) simulated on Ray."""

__version__ = "0.1.0"
