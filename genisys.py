#!/usr/bin/env python3
"""Start genisys, as the seed does: ``python genisys.py`` serves the API.

Flags are those of ``genisys serve`` (``python genisys.py --help``).
"""

import sys

from genisys.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve"] + sys.argv[1:]))
