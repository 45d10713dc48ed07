"""Local stack launcher: real Kafka, PostGIS, Triton and Ray on 127.0.0.1.

Each service is a separate OS process whose PID, logs and data live under one
state directory; ``down`` stops only the PIDs that ``up`` recorded.
"""

from terrawatch_dev.stack.launcher import Stack

__all__ = ["Stack"]
