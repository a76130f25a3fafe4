#!/usr/bin/env python3
"""Render helm/herald without Helm: a small interpreter for the subset of Helm's template
language that the chart uses, so deploy/validate.sh can schema-check its output offline.

    helm_render.py CHART [--values FILE]... [--release NAME] [--namespace NS] [--notes]

Prints the rendered manifests (like `helm template`) on stdout, or NOTES.txt with --notes.

What it implements (anything else is an error, never a silent guess):
  * actions {{ }}, trim markers {{- and -}}, comments {{/* */}};
  * if / else if / else, range (lists and maps, `$v :=` and `$k, $v :=`), with, end,
    variable declarations `$x := pipeline`, `$` and `.`;
  * pipelines with `|`, parenthesised sub-pipelines, string / number / bool literals;
  * the functions the chart calls: default, required, fail, quote, toYaml, toJson, indent,
    nindent, eq, ne, lt, le, gt, ge, not, and, or, empty, kindIs, b64enc, sha256sum, print,
    printf (%s %d %v %q), toString, int, add;
  * .Files.Get "path" (a file of the chart, as text);
  * .Values (values.yaml deep-merged with --values files, like Helm, and checked against
    values.schema.json), .Release.Name /
    .Namespace / .Service / .IsInstall, .Chart.Name / .Version / .AppVersion.
Numbers print as Helm prints them (Helm reads values as float64: 1000000 prints as 1e+06).
Maps and lists cannot be printed directly (Helm would print Go syntax): use toYaml or toJson.

What it is not: Helm. Sprig has hundreds of functions, Go templates have more syntax (define,
include, template, block, break, continue…), and Helm adds lookup, tpl, .Capabilities, the rest of .Files and
subcharts; a template using any of them fails here with "unsupported". deploy/validate.sh also
runs the real Helm engine (`helm lint`, through the helm-sdkpy wheel, which bundles Helm's Go
library) when Python 3.12+ is available, which checks that the same templates parse and render
under Helm itself.
"""

from __future__ import annotations

import argparse
import base64
import copy
import decimal
import hashlib
import json
import os
import re
import sys

import yaml


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Values formatting, as Go's fmt and Helm's functions do it.


def go_float(v: float) -> str:
    """fmt's %v of a float64, i.e. strconv.FormatFloat(v, 'g', -1, 64): the shortest digits
    that round-trip, in exponent form when the exponent is < -4 or >= 6 (so 100000 prints as
    100000 but 1000000 as 1e+06, the classic Helm surprise with large integers)."""
    if v != v or v in (float("inf"), float("-inf")):
        raise TemplateError("cannot print NaN or Inf")
    if v == 0:
        return "0"
    d = decimal.Decimal(repr(v))
    sign, digits, exponent = d.as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    nd = len(digits)
    dp = nd + exponent  # decimal point position
    exp = dp - 1
    eprec = 6  # strconv uses precision 6 for this decision in the shortest form
    s = "-" if sign else ""
    ds = "".join(map(str, digits))
    if exp < -4 or exp >= eprec:
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{s}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if dp <= 0:
        return f"{s}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{s}{ds}{'0' * (dp - nd)}"
    return f"{s}{ds[:dp]}.{ds[dp:]}"


def go_print(v) -> str:
    """How {{ v }} prints a value."""
    if v is None:
        return ""  # Helm turns <no value> into an empty string
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return go_float(float(v))
    if isinstance(v, str):
        return v
    raise TemplateError(
        f"cannot print a {kind_of(v)} directly (Helm would print Go syntax); use toYaml or toJson"
    )


def kind_of(v) -> str:
    if v is None:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, float):
        return "float64"  # every number in Helm's values is a float64
    if isinstance(v, int):
        return "int"  # integer literals in templates, and the int function
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    return type(v).__name__


def truthy(v) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def plain_numbers(v):
    """Helm's toYaml and toJson go through encoding/json, which writes float64 3 as 3."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: plain_numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain_numbers(x) for x in v]
    return v


def to_yaml(v) -> str:
    v = plain_numbers(v)
    if v is None:
        return "null"
    out = yaml.safe_dump(v, default_flow_style=False, sort_keys=True, width=10_000)
    if out.endswith("\n...\n"):
        out = out[: -len("...\n")]
    return out.rstrip("\n")


def to_json(v) -> str:
    return json.dumps(plain_numbers(v), sort_keys=True, separators=(",", ":"))


def indent(n, s) -> str:
    pad = " " * int(n)
    return pad + str(s).replace("\n", "\n" + pad)


def as_number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TemplateError(f"expected a number, got {kind_of(v)} {v!r}")
    return v


def compare(a, b):
    """lt/gt & co. accept two numbers of one kind only: Go errors on float64 (every value) vs int
    (a literal such as 1); write `gt (int .Values.replicaCount) 1`."""
    as_number(a), as_number(b)
    if kind_of(a) != kind_of(b):
        raise TemplateError(f"incompatible types for comparison: {kind_of(a)} {a!r} and "
                            f"{kind_of(b)} {b!r} (convert with int)")
    return a, b


def go_eq(a, b) -> bool:
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        raise TemplateError("eq/ne on maps or lists is an error in Go templates")
    if a is None or b is None:
        return a is b
    if kind_of(a) != kind_of(b):
        raise TemplateError(f"incompatible types for comparison: {kind_of(a)} {a!r} and "
                            f"{kind_of(b)} {b!r}")
    return a == b


def go_printf(fmt: str, *args) -> str:
    out, i, ai = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        verb = fmt[i + 1 : i + 2]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            raise TemplateError(f"printf: missing argument for %{verb}")
        a = args[ai]
        ai += 1
        if verb in ("s", "v"):
            out.append(go_print(a))
        elif verb == "d":
            out.append(str(int(as_number(a))))
        elif verb == "q":
            out.append(json.dumps(go_print(a)))
        else:
            raise TemplateError(f"printf: unsupported verb %{verb}")
    return "".join(out)


def fn_required(msg, v):
    if v is None or (isinstance(v, str) and v == ""):
        raise TemplateError(f"required: {msg}")
    return v


def fn_fail(msg):
    raise TemplateError(f"fail: {msg}")


def fn_and(*args):
    for a in args:
        if not truthy(a):
            return a
    return args[-1]


def fn_or(*args):
    for a in args:
        if truthy(a):
            return a
    return args[-1]


def fn_int(v):
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return 0
    return int(as_number(v))


FUNCS = {
    "default": lambda d, v=None: v if truthy(v) else d,
    "required": fn_required,
    "fail": fn_fail,
    "quote": lambda *vs: " ".join(json.dumps(go_print(v)) for v in vs),
    "toYaml": to_yaml,
    "toJson": to_json,
    "indent": indent,
    "nindent": lambda n, s: "\n" + indent(n, s),
    "eq": lambda a, *bs: any(go_eq(a, b) for b in bs),
    "ne": lambda a, b: not go_eq(a, b),
    "lt": lambda a, b: (lambda x, y: x < y)(*compare(a, b)),
    "le": lambda a, b: (lambda x, y: x <= y)(*compare(a, b)),
    "gt": lambda a, b: (lambda x, y: x > y)(*compare(a, b)),
    "ge": lambda a, b: (lambda x, y: x >= y)(*compare(a, b)),
    "not": lambda v: not truthy(v),
    "and": fn_and,
    "or": fn_or,
    "empty": lambda v: not truthy(v),
    "kindIs": lambda k, v: kind_of(v) == k,
    "b64enc": lambda s: base64.b64encode(go_print(s).encode()).decode(),
    "sha256sum": lambda s: hashlib.sha256(go_print(s).encode()).hexdigest(),
    "print": lambda *vs: "".join(go_print(v) for v in vs),
    "printf": go_printf,
    "toString": go_print,
    "int": fn_int,
    "add": lambda *xs: sum(int(as_number(x)) for x in xs),
}

# Go template keywords and Helm/Sprig functions this renderer deliberately does not implement.
UNSUPPORTED = {"define", "template", "block", "include", "tpl", "lookup", "break", "continue"}


# ---------------------------------------------------------------------------------------------
# Lexing and parsing.

ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)


def tokenize(src: str, name: str):
    """Split into ("text", s) and ("action", s, line) items, applying trim markers."""
    items = []
    pos = 0
    for m in ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        items.append(["text", text])
        line = src.count("\n", 0, m.start()) + 1
        body = m.group(2).strip()
        items.append(["action", body, f"{name}:{line}", bool(m.group(3))])
        pos = m.end()
    items.append(["text", src[pos:]])
    # Right trim markers remove the whitespace at the start of the following text.
    for i, it in enumerate(items):
        if it[0] == "action" and it[3] and i + 1 < len(items):
            items[i + 1][1] = items[i + 1][1].lstrip(" \t\r\n")
    return items


TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<assign>:=|=(?!=))
    | (?P<pipe>\|)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


def lex_expr(s: str, where: str):
    toks, pos = [], 0
    while pos < len(s):
        if s[pos:].strip() == "":
            break
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot parse '{s[pos:]}'")
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


class Parser:
    """Recursive descent over one action's tokens: pipeline := command ('|' command)*."""

    def __init__(self, toks, where):
        self.toks, self.i, self.where = toks, 0, where

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def pipeline(self):
        cmds = [self.command()]
        while self.peek()[0] == "pipe":
            self.take()
            cmds.append(self.command())
        return ("pipe", cmds)

    def command(self):
        args = []
        while self.peek()[0] not in (None, "pipe", "rp"):
            args.append(self.operand())
        if not args:
            raise TemplateError(f"{self.where}: empty command")
        return args

    def operand(self):
        kind, val = self.take()
        if kind == "str":
            return ("lit", json.loads(val))
        if kind == "raw":
            return ("lit", val[1:-1])
        if kind == "num":
            return ("lit", float(val) if "." in val else int(val))
        if kind == "lp":
            p = self.pipeline()
            if self.take()[0] != "rp":
                raise TemplateError(f"{self.where}: missing )")
            return p
        if kind == "var":
            name, *path = val.split(".")
            return ("var", name, path)
        if kind == "field":
            return ("field", [] if val == "." else val[1:].split("."))
        if kind == "ident":
            if val in ("true", "false"):
                return ("lit", val == "true")
            if val == "nil":
                return ("lit", None)
            if val in UNSUPPORTED:
                raise TemplateError(f"{self.where}: '{val}' is not supported by this renderer")
            if val not in FUNCS:
                raise TemplateError(f"{self.where}: unknown function '{val}'")
            return ("fn", val)
        raise TemplateError(f"{self.where}: unexpected '{val}'")


def parse_pipeline(s: str, where: str):
    p = Parser(lex_expr(s, where), where)
    node = p.pipeline()
    if p.i != len(p.toks):
        raise TemplateError(f"{where}: trailing tokens in '{s}'")
    return node


DECL = re.compile(r"^(\$[A-Za-z0-9_]*)\s*(?:,\s*(\$[A-Za-z0-9_]*)\s*)?:=\s*(.*)$", re.S)


def build_tree(items):
    """Nest the flat token list into blocks: ("seq", [...]) of text/expr/if/range/with/decl."""
    stack = [("root", [], None)]
    for it in items:
        if it[0] == "text":
            if it[1]:
                stack[-1][1].append(("text", it[1]))
            continue
        body, where = it[1], it[2]
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"{where}: unterminated comment")
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word) :].strip()
        if word in UNSUPPORTED:
            raise TemplateError(f"{where}: '{word}' is not supported by this renderer")
        if word == "if":
            node = {"kind": "if", "branches": [(parse_pipeline(rest, where), [])], "else": None}
            stack[-1][1].append(node)
            stack.append(("if", node["branches"][0][1], node))
        elif word == "else":
            top = stack[-1]
            if top[0] not in ("if", "else", "range", "with"):
                raise TemplateError(f"{where}: else without if")
            node = top[2]
            stack.pop()
            if rest.startswith("if "):
                if node["kind"] != "if":
                    raise TemplateError(f"{where}: else if inside {node['kind']}")
                node["branches"].append((parse_pipeline(rest[3:], where), []))
                stack.append(("if", node["branches"][-1][1], node))
            elif rest == "":
                node["else"] = []
                stack.append(("else", node["else"], node))
            else:
                raise TemplateError(f"{where}: unsupported else form '{body}'")
        elif word in ("range", "with"):
            m = DECL.match(rest)
            names = []
            if m:
                names = [n for n in (m.group(1), m.group(2)) if n]
                rest = m.group(3)
            node = {"kind": word, "pipe": parse_pipeline(rest, where), "vars": names,
                    "body": [], "else": None, "where": where}
            stack[-1][1].append(node)
            stack.append((word, node["body"], node))
        elif word == "end":
            if len(stack) == 1:
                raise TemplateError(f"{where}: end without a block")
            stack.pop()
        else:
            m = DECL.match(body)
            if m and not m.group(2):
                stack[-1][1].append({"kind": "decl", "name": m.group(1),
                                     "pipe": parse_pipeline(m.group(3), where)})
            else:
                stack[-1][1].append({"kind": "expr", "pipe": parse_pipeline(body, where),
                                     "where": where})
    if len(stack) != 1:
        raise TemplateError(f"unclosed {stack[-1][0]} block")
    return stack[0][1]


# ---------------------------------------------------------------------------------------------
# Evaluation.


def walk_path(v, path, where):
    for p in path:
        if v is None:
            raise TemplateError(f"{where}: nil pointer evaluating .{p}")
        if not isinstance(v, dict):
            raise TemplateError(f"{where}: can't evaluate field {p} in a {kind_of(v)}")
        v = v.get(p)
    return v


class Scope:
    def __init__(self, root):
        self.frames = [{"$": root}]

    def get(self, name, where):
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        raise TemplateError(f"{where}: undefined variable {name}")


def eval_pipe(node, dot, scope, where):
    value, first = None, True
    for cmd in node[1]:
        args = cmd
        head = args[0]
        if head[0] == "fn" and head[1] in ("and", "or") and first:
            # Go 1.18+ templates short-circuit and/or: later arguments may not be evaluated.
            value = None
            for a in args[1:]:
                value = eval_operand(a, dot, scope, where)
                if truthy(value) != (head[1] == "and"):
                    break
            if len(args) < 3:
                raise TemplateError(f"{where}: {head[1]} needs at least two arguments")
        elif head[0] == "fn":
            vals = [eval_operand(a, dot, scope, where) for a in args[1:]]
            if not first:
                vals.append(value)
            try:
                value = FUNCS[head[1]](*vals)
            except TypeError as e:
                raise TemplateError(f"{where}: {head[1]}: wrong arguments ({e})") from None
            except TemplateError as e:
                raise TemplateError(f"{where}: {e}") from None
        else:
            target = eval_operand(head, dot, scope, where)
            if callable(target):
                # A method such as .Files.Get: called with the command's arguments.
                vals = [eval_operand(a, dot, scope, where) for a in args[1:]]
                if not first:
                    vals.append(value)
                try:
                    value = target(*vals)
                except TemplateError as e:
                    raise TemplateError(f"{where}: {e}") from None
            else:
                if len(args) != 1 or not first:
                    raise TemplateError(f"{where}: cannot pipe into a non-function")
                value = target
        first = False
    return value


def eval_operand(a, dot, scope, where):
    kind = a[0]
    if kind == "lit":
        return a[1]
    if kind == "field":
        return walk_path(dot, a[1], where)
    if kind == "var":
        return walk_path(scope.get(a[1], where), a[2], where)
    if kind == "pipe":
        return eval_pipe(a, dot, scope, where)
    if kind == "fn":
        return eval_pipe(("pipe", [[a]]), dot, scope, where)
    raise TemplateError(f"{where}: bad operand {a}")


def render_seq(seq, dot, scope, out):
    for node in seq:
        if isinstance(node, tuple):  # text
            out.append(node[1])
            continue
        kind = node["kind"]
        if kind == "expr":
            out.append(go_print(eval_pipe(node["pipe"], dot, scope, node["where"])))
        elif kind == "decl":
            scope.frames[-1][node["name"]] = eval_pipe(node["pipe"], dot, scope, "decl")
        elif kind == "if":
            for cond, body in node["branches"]:
                if truthy(eval_pipe(cond, dot, scope, "if")):
                    scope.frames.append({})
                    render_seq(body, dot, scope, out)
                    scope.frames.pop()
                    break
            else:
                if node["else"] is not None:
                    scope.frames.append({})
                    render_seq(node["else"], dot, scope, out)
                    scope.frames.pop()
        elif kind == "with":
            v = eval_pipe(node["pipe"], dot, scope, node["where"])
            scope.frames.append({})
            if truthy(v):
                if node["vars"]:
                    scope.frames[-1][node["vars"][0]] = v
                render_seq(node["body"], v, scope, out)
            elif node["else"] is not None:
                render_seq(node["else"], dot, scope, out)
            scope.frames.pop()
        elif kind == "range":
            v = eval_pipe(node["pipe"], dot, scope, node["where"])
            if v is None:
                pairs = []
            elif isinstance(v, list):
                pairs = list(enumerate(v))
            elif isinstance(v, dict):
                pairs = sorted(v.items())  # Go ranges over maps in key order
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                pairs = [(i, i) for i in range(int(v))]
            else:
                raise TemplateError(f"{node['where']}: range can't iterate over {v!r}")
            if not pairs and node["else"] is not None:
                render_seq(node["else"], dot, scope, out)
            for k, item in pairs:
                frame = {}
                if len(node["vars"]) == 1:
                    frame[node["vars"][0]] = item
                elif len(node["vars"]) == 2:
                    frame[node["vars"][0]] = k
                    frame[node["vars"][1]] = item
                scope.frames.append(frame)
                render_seq(node["body"], item, scope, out)
                scope.frames.pop()
        else:
            raise TemplateError(f"unknown node {kind}")


def render_template(src: str, name: str, ctx) -> str:
    tree = build_tree(tokenize(src, name))
    out: list[str] = []
    render_seq(tree, ctx, Scope(ctx), out)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The chart.


def deep_merge(base, over):
    """Helm's coalescing of a values file over the defaults: maps merge, anything else replaces,
    and null deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def as_helm_values(v):
    """Helm reads values through JSON: every number becomes a float64."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {str(k): as_helm_values(x) for k, x in v.items()}
    if isinstance(v, list):
        return [as_helm_values(x) for x in v]
    return v


def load_values(chart: str, extra: list[str]):
    """values.yaml, then each file merged over it; checked against values.schema.json as Helm
    does (with the jsonschema package)."""
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in extra:
        with open(path) as f:
            values = deep_merge(values, yaml.safe_load(f) or {})
    schema_path = os.path.join(chart, "values.schema.json")
    if os.path.exists(schema_path):
        import jsonschema

        with open(schema_path) as f:
            schema = json.load(f)
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=str)
        if errors:
            raise TemplateError("values don't meet values.schema.json: " + "; ".join(
                f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in errors))
    return as_helm_values(values)


def context(chart: str, values, release: str, namespace: str):
    with open(os.path.join(chart, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    return {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm",
                    "IsInstall": True, "IsUpgrade": False, "Revision": 1},
        "Chart": {"Name": meta["name"], "Version": meta["version"],
                  "AppVersion": meta.get("appVersion", "")},
        "Files": {"Get": lambda name: chart_file(chart, name)},
    }


def chart_file(chart: str, name: str) -> str:
    """`.Files.Get`: a file of the chart (not under templates/), as text."""
    path = os.path.normpath(os.path.join(chart, name))
    if not path.startswith(os.path.normpath(chart) + os.sep) or "/templates/" in path:
        raise TemplateError(f".Files.Get {name!r}: not a file of the chart")
    with open(path) as f:
        return f.read()


def render_chart(chart: str, values_files: list[str], release="herald", namespace="default"):
    """Returns [(template path, rendered text)] for templates/*.yaml, in name order."""
    ctx = context(chart, load_values(chart, values_files), release, namespace)
    tdir = os.path.join(chart, "templates")
    out = []
    for name in sorted(os.listdir(tdir)):
        path = os.path.join(tdir, name)
        if name.startswith("_"):
            raise TemplateError(f"{name}: helper templates (define/include) are not supported")
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(path) as f:
            out.append((f"templates/{name}", render_template(f.read(), f"templates/{name}", ctx)))
    return out, ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chart")
    ap.add_argument("--values", "-f", action="append", default=[])
    ap.add_argument("--release", default="herald")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--notes", action="store_true", help="render templates/NOTES.txt instead")
    args = ap.parse_args()
    try:
        if args.notes:
            ctx = context(args.chart, load_values(args.chart, args.values), args.release,
                          args.namespace)
            with open(os.path.join(args.chart, "templates", "NOTES.txt")) as f:
                print(render_template(f.read(), "templates/NOTES.txt", ctx))
            return
        docs, _ = render_chart(args.chart, args.values, args.release, args.namespace)
    except TemplateError as e:
        sys.exit(f"helm_render: {e}")
    for name, text in docs:
        if text.strip():
            print(f"---\n# Source: herald/{name}")
            print(text.strip("\n"))


if __name__ == "__main__":
    main()
