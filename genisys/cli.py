"""The ``genisys`` command.

``genisys serve`` runs the controller (``python genisys.py`` does the same).
Exit status: 0 after a clean shutdown, 1 when genisys cannot start or a
request fails, 2 for bad usage or bad configuration. Errors are one line on
stderr, never a traceback.
"""

import argparse
import asyncio
import logging
import sys

from genisys import config
from genisys.errors import ConfigError, GenisysError

SERVE_EPILOG = """\
Every setting can come from genisys.yml, the environment or a flag; the
later wins: defaults < genisys.yml < GENISYS_* environment < flags.

  genisys.yml key          environment                flag
""" + "\n".join("  %-24s %-26s %s" % (o.key, o.env, o.flag) for o in config.OPTIONS) + """
  -                        GENISYS_CONFIG             --config

Durations are written 15s, 500ms, 2m or 1h. Store URLs: sqlite:///relative.db,
sqlite:////absolute/path.db, memory:// (tests only).

examples:
  genisys serve
  genisys serve --port 7002 --store sqlite:////var/lib/genisys/genisys.db
  GENISYS_POLL_INTERVAL=5s genisys serve --compute-file ./computes.py
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def build_parser():
    parser = _Parser(prog="genisys", description="Compute resource management: a reconciling "
                     "controller that makes connectors run the resources services want.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser("serve", help="run the controller (API and store)",
                                description="Run the genisys controller.", epilog=SERVE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_flags(serve)
    return parser


def add_setting_flags(parser):
    for option in config.OPTIONS + [config.CONFIG_OPTION]:
        parser.add_argument(option.flag, dest=option.flag, metavar=option.metavar,
                            default=None, help="%s [%s]" % (option.help, option.env))


def setup_logging(level):
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per request is too much at INFO; failures still show (4xx/5xx).
    logging.getLogger("tornado.access").setLevel(max(logging.WARNING, getattr(logging, level)))


def fail(message, status):
    print("genisys: %s" % message, file=sys.stderr)
    return status


def cmd_serve(args):
    from genisys import app
    flags = {o.flag: getattr(args, o.flag) for o in config.OPTIONS + [config.CONFIG_OPTION]}
    try:
        settings = config.load_settings(flags)
    except ConfigError as e:
        return fail("config: %s" % e, 2)
    setup_logging(settings.log_level)
    try:
        asyncio.run(app.run(settings))
    except ConfigError as e:
        return fail("config: %s" % e, 2)
    except GenisysError as e:
        return fail(str(e), 1)
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
