"""``python -m jaxopt_lab.cli``: the ``jaxopt-lab`` command."""

import sys

from jaxopt_lab.cli import main

sys.exit(main())
