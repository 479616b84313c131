"""Thin entry point: ``python bench/simulate_speed.py …`` runs :mod:`litefaas.benchmark.simulate_speed`."""

import sys

from litefaas.benchmark.simulate_speed import main

sys.exit(main())
