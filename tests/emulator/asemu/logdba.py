"""logdba: the login records of etc/db/log.db, read as root.

Options as the real tool has them (their output shapes are not public; the emulator's settings
play the variants that a reader must survive):

* ``--json`` (a list of row objects, or ``{"rows": [...], "total": N}`` with the setting
  ``logdba_json`` = ``object``), ``--csv`` (a header line, then one line per row), else a plain
  text table;
* ``--start_time_ge`` / ``--start_time_lt``: relative (``-30s``, ``-10m``, ``-2h``, ``-1d``) or
  absolute (epoch seconds, or ``YYYY-MM-DD HH:MM:SS`` in UTC);
* ``--service_filt=VPN,WEB_%`` and ``--username_filt=alice`` (``%`` wildcards);
* ``--auth_bfilt=0`` (failures only) or ``1``, ``--active=0|1``;
* ``--columns="+api_method"`` adds columns to the default set, ``--columns=username,error``
  replaces it.

Rows come oldest first, newest last.  ``start_time`` and ``timestamp`` are epoch seconds, or
``YYYY-MM-DD HH:MM:SS`` UTC strings with the setting ``log_time_format`` = ``text``.  Exit codes:
0, or 2 for a bad command line.
"""

import argparse
import calendar
import csv
import json
import os
import re
import signal
import sys
import time

from asemu import logdb
from asemu.root import Root

RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
ABSOLUTE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
# options whose value may start with "-" (a relative time), also when it is a separate argument
TIME_OPTIONS = ("--start_time_ge", "--start_time_lt")


class LogdbaUsage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise LogdbaUsage(message)


def build_parser():
    parser = _Parser(prog="logdba", add_help=True, allow_abbrev=False)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV with a header line")
    parser.add_argument("--start_time_ge", metavar="TIME", help="rows that started at or after TIME")
    parser.add_argument("--start_time_lt", metavar="TIME", help="rows that started before TIME")
    parser.add_argument("--service_filt", metavar="LIST", help="services, comma-separated, %% wildcards")
    parser.add_argument("--username_filt", metavar="NAME", help="a user name, %% wildcards")
    parser.add_argument("--auth_bfilt", metavar="0|1", help="0: failed logins only, 1: successful ones only")
    parser.add_argument("--active", metavar="0|1", help="1: active sessions only, 0: ended ones only")
    parser.add_argument("--columns", metavar="LIST", help='"+a,+b" adds to the default columns, "a,b" replaces them')
    return parser


def join_time_options(argv):
    """``--start_time_ge -10m`` as ``--start_time_ge=-10m`` (argparse takes "-10m" for an option)."""
    result, index = [], 0
    while index < len(argv):
        item = argv[index]
        if item in TIME_OPTIONS and index + 1 < len(argv):
            result.append("%s=%s" % (item, argv[index + 1]))
            index += 2
        else:
            result.append(item)
            index += 1
    return result


def parse_time(text, now=None):
    """Epoch seconds of a relative (``-10m``) or absolute (epoch or ``YYYY-MM-DD HH:MM:SS`` UTC) time."""
    text = text.strip()
    match = RELATIVE.match(text)
    if match:
        now = time.time() if now is None else now
        return now - float(match.group(1)) * UNITS[match.group(2)]
    if re.match(r"^\d+(\.\d+)?$", text):
        return float(text)
    for layout in ABSOLUTE_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(text, layout)))
        except ValueError:
            continue
    raise LogdbaUsage("not a time: %r (use -30s, -10m, -2h, -1d, epoch seconds or 'YYYY-MM-DD HH:MM:SS' UTC)" % text)


def parse_flag(text, option):
    if text is None:
        return None
    if text.strip() not in ("0", "1"):
        raise LogdbaUsage("%s must be 0 or 1, got %r" % (option, text))
    return int(text.strip())


def parse_columns(text):
    """The columns to print from a --columns value."""
    if text is None:
        return list(logdb.FIELDS)
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise LogdbaUsage("--columns names no column")
    added = [item.startswith("+") for item in items]
    if any(added) and not all(added):
        raise LogdbaUsage("--columns either adds (+a,+b) or replaces (a,b), not both: %r" % text)
    names = [item.lstrip("+") for item in items]
    unknown = [name for name in names if name not in logdb.COLUMNS]
    if unknown:
        raise LogdbaUsage("unknown column: %s (columns: %s)" % (", ".join(unknown), ", ".join(logdb.COLUMNS)))
    columns = list(logdb.FIELDS) if all(added) else []
    for name in names:
        if name not in columns:
            columns.append(name)
    return columns


def present(row, columns, time_format):
    """A row as printed: the selected columns, flags as "1"/"0", times as the setting says."""
    result = {}
    for name in columns:
        value = row[name]
        if name in logdb.FLAG_FIELDS and value is not None:
            value = "1" if value else "0"
        elif name in logdb.TIME_FIELDS and value is not None and time_format == "text":
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
        result[name] = value
    return result


def text_table(rows, columns):
    cells = [list(columns)] + [["" if row[name] is None else str(row[name]) for name in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def run(root, args):
    settings = root.settings()
    columns = parse_columns(args.columns)
    services = [item.strip() for item in (args.service_filt or "").split(",") if item.strip()]
    now = time.time()
    rows = logdb.read(
        root.log_db,
        start_ge=parse_time(args.start_time_ge, now) if args.start_time_ge is not None else None,
        start_lt=parse_time(args.start_time_lt, now) if args.start_time_lt is not None else None,
        services=services,
        auth=parse_flag(args.auth_bfilt, "--auth_bfilt"),
        active=parse_flag(args.active, "--active"),
        username=args.username_filt,
        now=now,
    )
    rows = [present(row, columns, settings["log_time_format"]) for row in rows]
    if args.json:
        data = {"rows": rows, "total": len(rows)} if settings["logdba_json"] == "object" else rows
        print(json.dumps(data, indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[name] is None else row[name] for name in columns])
    else:
        print(text_table(rows, columns))


def main(root_path, argv):
    started = time.time()
    root = Root(root_path)
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    options, rc = [], 2
    try:
        try:
            args = build_parser().parse_args(join_time_options(list(argv)))
            options = [name for name, value in vars(args).items() if value not in (None, False)]
            run(root, args)
            sys.stdout.flush()
            rc = 0
        except LogdbaUsage as exc:
            sys.stderr.write("logdba: %s\n" % exc)
            rc = 2
        except BrokenPipeError:
            # the reader went away (logdba | head): nothing more to print, and no traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            rc = 1
        return rc
    finally:
        root.record_call("logdba", "query", options, started, rc)
