"""Peers: other systems run by the bench on the same machine, in the same run, with the same closed loop as
Baton's C1, so their numbers sit beside Baton's (`bench/run.py --peer restate`)."""
