"""``python -m xrutils.studies ...``: the build's command line (:func:`xrutils.studies.build.main`)."""

import sys

from xrutils.studies.build import main

sys.exit(main())
