"""The HTTP edge: the path table, the ASGI and RSGI adapters, keys and IP allow-lists, request
bodies and ids. A request enters here, then goes to its handler in ``gateway.api``, which
plans it (``gateway.routing``), admits it (``gateway.governance``), runs it
(``gateway.providers``) and meters it (``gateway.governance`` again, through ``gateway.store``).
"""
