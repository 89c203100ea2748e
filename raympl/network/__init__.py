"""The simulated network: device and link profiles, the simulated clock, and agent availability (churn).

Nothing here runs a model: the driver asks, per round, who is online and what each round's transfers
cost in simulated time; time-varying graphs live in raympl.topologies.schedule.
"""
