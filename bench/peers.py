"""Thin entry point: ``python bench/peers.py …`` runs :mod:`litefaas.benchmark.peers`."""

import sys

from litefaas.benchmark.peers import main

sys.exit(main())
