"""Write the variable tables of the roles' READMEs from their meta/argument_specs.yml.

    python tests/bin/role_docs.py           rewrite the tables in roles/*/README.md
    python tests/bin/role_docs.py --check   fail, naming the README, where a table is not what the specs say

Each README holds its table between the two marker lines below; everything else of the README is
written by hand. The argument specs are the one place a variable is declared (type, choices,
default, description): the tables only show them.
"""

import argparse
import difflib
import glob
import json
import os
import re
import sys

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml by tests/bin/role_docs.py, do not edit -->"
END = "<!-- END variables -->"

# Ansible's documentation markup, as Markdown
MARKUP = [
    # an option or return value of another plugin, O(FQCN#TYPE:NAME): its name
    (re.compile(r"(?:O|RV)\(([^)#]*)#[^):]*:([^)]*)\)"), lambda m: "`%s` of `%s`" % (m.group(2), m.group(1))),
    (re.compile(r"(?:C|V|O|RV|E)\(([^)]*)\)"), lambda m: "`%s`" % m.group(1).replace("`", "")),
    # a module or a role, M(FQCN) or P(FQCN#TYPE)
    (re.compile(r"[MP]\(([^)#]*)(?:#[^)]*)?\)"), lambda m: "`%s`" % m.group(1)),
    (re.compile(r"I\(([^)]*)\)"), lambda m: "*%s*" % m.group(1)),
    (re.compile(r"B\(([^)]*)\)"), lambda m: "**%s**" % m.group(1)),
    (re.compile(r"U\(([^)]*)\)"), lambda m: "<%s>" % m.group(1)),
    (re.compile(r"L\(([^,)]*),\s*([^)]*)\)"), lambda m: "[%s](%s)" % (m.group(1), m.group(2))),
]


def markdown(text):
    if isinstance(text, list):
        text = " ".join(text)
    text = " ".join(str(text or "").split())
    for pattern, replace in MARKUP:
        text = pattern.sub(replace, text)
    return text.replace("|", "\\|")


def kind(option):
    name = option.get("type", "str")
    if name == "list" and option.get("elements"):
        name = "list of %s" % option["elements"]
    return name


def shown(value):
    return "`%s`" % (value if isinstance(value, str) and value else json.dumps(value, sort_keys=True))


def table(options):
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in options.items():
        default = shown(option["default"]) if "default" in option else ("required" if option.get("required") else "")
        description = markdown(option.get("description"))
        if option.get("choices"):
            description += " Choices: %s." % ", ".join(shown(c) for c in option["choices"])
        if option.get("options"):
            description += " Fields: %s." % ", ".join("`%s`" % sub for sub in option["options"])
        if option.get("no_log"):
            description += " Secret (`no_log`)."
        rows.append("| `%s` | %s | %s | %s |" % (name, kind(option), default.replace("|", "\\|"), description.strip()))
    return rows


def generated(specs):
    """The lines between the markers: one table per set of options, naming the entry points that take it."""
    lines = []
    groups = []
    for entry, spec in specs.items():
        for group in groups:
            if group["options"] == spec.get("options", {}):
                group["entries"].append(entry)
                break
        else:
            groups.append(dict(entries=[entry], options=spec.get("options", {})))
    for group in groups:
        names = " and ".join("`%s`" % entry for entry in group["entries"])
        plural = "entry points" if len(group["entries"]) > 1 else "entry point"
        lines += ["", "The %s %s (`ansible-doc -t role` shows the same):" % (plural, names), ""]
        lines += table(group["options"])
    return lines + [""]


def render(readme, specs):
    with open(readme) as handle:
        text = handle.read()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit("role-docs: %s needs one line %s and one line %s" % (readme, BEGIN, END))
    head, rest = text.split(BEGIN + "\n", 1)
    tail = rest.split(END, 1)[1]
    return head + BEGIN + "\n" + "\n".join(generated(specs)) + "\n" + END + tail, text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail where a README is not up to date")
    args = parser.parse_args()
    stale = []
    for spec_file in sorted(glob.glob(os.path.join(TOP, "roles", "*", "meta", "argument_specs.yml"))):
        role = os.path.dirname(os.path.dirname(spec_file))
        with open(spec_file) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        readme = os.path.join(role, "README.md")
        new, old = render(readme, specs)
        if new == old:
            continue
        relative = os.path.relpath(readme, TOP)
        if args.check:
            stale.append(relative)
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), relative, relative))
        else:
            with open(readme, "w") as handle:
                handle.write(new)
            print("role-docs: wrote %s" % relative)
    if stale:
        raise SystemExit("role-docs: not what meta/argument_specs.yml says (run tests/bin/role_docs.py): %s"
                         % ", ".join(stale))


if __name__ == "__main__":
    main()
