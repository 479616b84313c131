"""The function served on this machine by each provider's own local tooling.

- :mod:`~litefaas.local.serving`: the environment, and every provider started and stopped together;
- :mod:`~litefaas.local.server`: one host's launch spec and its process;
- :mod:`~litefaas.local.aws`, :mod:`~litefaas.local.gcp`, :mod:`~litefaas.local.azure`: how each
  provider's host is launched (serverless-offline, functions-framework, ``func`` or the local host);
- :mod:`~litefaas.local.azure_host`: the Azure Functions v2 host used where ``func`` is missing;
- :mod:`~litefaas.local.process`: process groups from ``/proc``.
"""
