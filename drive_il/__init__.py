"""drive_il: driving imitation learning.

A rule-based planner expert drives a car in a simulator (an embedded OpenDRIVE world or a
CARLA server); its camera-to-steering labels train ALVINN (Pomerleau 1989) and DAVE-2
(Bojarski et al. 2016) policies by behaviour cloning and DAgger (Ross et al. 2011).
"""

__version__ = "0.1.0"
