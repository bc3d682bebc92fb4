"""``python -m stepnet.bench`` (``make bench``)."""

import sys

from stepnet.bench import main

sys.exit(main())
