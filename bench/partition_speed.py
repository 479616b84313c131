"""Thin entry point: ``python bench/partition_speed.py …`` runs :mod:`litefaas.benchmark.partition_speed`."""

import sys

from litefaas.benchmark.partition_speed import main

sys.exit(main())
