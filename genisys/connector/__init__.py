"""Connectors: the HTTP agents that own real resources.

``client`` is how genisys calls a connector (the protocol, timeouts, errors).
The rest is the connector side: ``backend`` (the SDK's interface),
``definitions`` (how to run a service), ``server`` (a tornado application
over a Backend) with its ``metrics``, ``batch`` (the batch extension:
many services per call) and ``capacity`` (the most resources it runs at
once, kept by every scale order), the bundled backends ``process``,
``simulated`` and ``docker`` (a package of its own), and ``main``
(``genisys connector``: settings, start-up, shutdown).
"""

#: The header that names the controller a call comes from (its --identity): a connector
#: counts scale orders by it (docs/connectors.md).
IDENTITY_HEADER = "Genisys-Identity"
#: The leader's term, and the scope it counts in (an etcd cluster and key prefix), sent
#: with every call of a leader elected on etcd: a connector refuses the orders of a
#: term older than one it has seen in that scope (docs/connectors.md, "Fencing").
TERM_HEADER = "Genisys-Term"
TERM_SCOPE_HEADER = "Genisys-Term-Scope"
