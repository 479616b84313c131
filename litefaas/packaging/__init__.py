"""Function bundles and their deployment.

- :mod:`~litefaas.packaging.targets`: cloud, architecture and Python of a bundle; the pins;
- :mod:`~litefaas.packaging.wheels`: the target's wheels, fetched and cached;
- :mod:`~litefaas.packaging.slimming`: what of each wheel a function needs;
- :mod:`~litefaas.packaging.secret_scan`: no private key in a bundle, template or plan;
- :mod:`~litefaas.packaging.bundle`: the bundle, built atomically and reproducibly;
- :mod:`~litefaas.packaging.proof` (with :mod:`~litefaas.packaging.probe`): the bundle answers alone;
- :mod:`~litefaas.packaging.deploy`: ``osls package``, the scan, the provider's deployment.

Every error is a :class:`~litefaas.packaging.targets.PackageError`.
"""
