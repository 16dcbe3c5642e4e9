"""The Docker backend: each resource of a service is a container on a Docker engine.

``definition`` says how to run a service's containers (the original Docker
connector's ``{"name", "image", "command", "environment", "ports"}`` and
more), ``engine`` is how the blocking Docker SDK is called without blocking
the event loop (and how its failures become genisys errors), ``state`` keeps
the definitions on disk, and ``backend`` is the ``Backend`` itself: which
containers belong to which service, scaling, tidying.
"""
