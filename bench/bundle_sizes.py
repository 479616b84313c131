"""Thin entry point: ``python bench/bundle_sizes.py …`` runs :mod:`litefaas.benchmark.bundle_sizes`."""

import sys

from litefaas.benchmark.bundle_sizes import main

sys.exit(main())
