"""botlab: provision GPU machine-learning labs on bare metal from one inventory.

Keep this module free of imports: `botlab --help` must stay fast.
"""

__version__ = "0.1.0"
