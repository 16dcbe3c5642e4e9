#!/usr/bin/env python3
"""Start genisys, as the seed does: ``python genisys.py`` serves the API.

``python genisys.py [flags]`` is ``genisys serve [flags]``; a first argument
that names a command (``serve``, ``connector``, ...) runs that command.
"""

import sys

from genisys.cli import COMMANDS, main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in COMMANDS:
        argv = ["serve"] + argv
    sys.exit(main(argv))
