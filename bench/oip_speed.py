"""Thin entry point: ``python bench/oip_speed.py …`` runs :mod:`litefaas.benchmark.oip_speed`."""

import sys

from litefaas.benchmark.oip_speed import main

sys.exit(main())
