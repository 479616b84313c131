"""Thin entry point: ``python bench/core_speed.py …`` runs :mod:`litefaas.benchmark.core_speed`."""

import sys

from litefaas.benchmark.core_speed import main

sys.exit(main())
