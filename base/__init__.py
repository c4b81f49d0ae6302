"""The hub's base: settings (environment, then ``.env``; profiles; the PII key), where run-time
files live, and the error types every layer raises.

With ``seeds`` (the city's reference data) this is the floor the other packages stand on:
``schemas``, ``warehouse``, ``simulator`` and ``pipelines`` import it; it imports none of them.
"""
