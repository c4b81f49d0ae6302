"""Connectors: one package per platform kind (``bigdata``, ``battle``, ``workbook``), each with
``client.py`` (HTTP client), ``normalise.py`` (landed pages → canonical frames), ``layout.py``
(the platform's published record layouts) and one :func:`~pipelines.connectors.registry.register`
call in its ``__init__.py``; ``parsing.py`` holds the helpers the normalisers share.

Look a kind up with :func:`~pipelines.connectors.registry.connector_for`.
"""
