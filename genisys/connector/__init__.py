"""Connectors: the HTTP agents that own real resources.

``client`` is how genisys calls a connector (the protocol, timeouts, errors);
``server`` is the SDK to write one (a tornado application over a Backend);
``process`` and ``simulated`` are the two bundled backends.
"""
