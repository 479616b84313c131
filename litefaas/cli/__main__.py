"""``python -m litefaas.cli``: the ``litefaas`` command."""

import sys

from litefaas.cli.main import main

sys.exit(main())
