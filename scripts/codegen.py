#!/usr/bin/env python3
"""Generate Coffer's protocol layer from the vendored service models.

Two services share one endpoint (told apart by the SigV4 signing name), each generated from its
own model with the same code: AWS Backup from model/backup/service-2.json into
crates/coffer-api/src/generated/, and AWS Backup Search from model/backupsearch/service-2.json
into crates/coffer-api/src/generated/search/ (its own module, so that shapes both models name,
such as ResourceType or TagResourceRequest, never clash). For each service it writes:
  types.rs       one Rust struct per modelled structure (wire names, serde), and one Rust enum per
                 enum shape: a unit variant per model value (UpperCamelCase; `as_str()` gives the
                 wire spelling), `Unknown(String)` for any other value so that output from a newer
                 model or an input outside the set still decodes, `VALUES` (the allowed values),
                 serde as the wire string; members whose target is an enum shape (also inside
                 lists and maps) are typed with the enum
  validate.rs    input validation from the model's constraints (length, range, pattern, enum: an
                 `Unknown` value is refused with "Member must satisfy enum value set: [...]")
  operations.rs  the operation table (method, URI template, bindings, status code), the
                 service trait (`BackupService`, `BackupSearchService`) with one async method
                 per operation, and `dispatch`; a query-string member whose shape is a list of
                 strings (Backup Search's UntagResource `tagKeys`) is bound as a repeated
                 parameter

The generated files are committed so that a reader can browse them; CI runs this script and
fails if the result differs from what is committed (see .ci/run). Never edit generated files:
change the model (via scripts/refresh-model.py) or this script instead.

  scripts/codegen.py
"""
import json
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
GENERATED = os.path.join(ROOT, "crates", "coffer-api", "src", "generated")


class Service:
    """What differs between the generated services: where the model is, where the code goes,
    and the names the generated code uses for the service."""

    def __init__(self, model_dir, out, title, trait, module, generic_spec):
        self.model = os.path.join(ROOT, "model", model_dir, "service-2.json")
        self.version = os.path.join(ROOT, "model", model_dir, "VERSION")
        self.model_rel = "model/%s/service-2.json" % model_dir
        self.out = out
        self.title = title
        self.trait = trait
        self.module = module
        # The Backup table keeps the plain `OperationSpec` (its default type parameter).
        self.generic_spec = generic_spec


BACKUP = Service("backup", GENERATED, "AWS Backup", "BackupService", "crate::generated", False)
SEARCH = Service("backupsearch", os.path.join(GENERATED, "search"), "AWS Backup Search",
                 "BackupSearchService", "crate::generated::search", True)
# Backup Search first: the Backup mod.rs names its module, and rustfmt follows it.
SERVICES = [SEARCH, BACKUP]

RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
}
# Model deviations (of the Backup model): constraints the model states that AWS itself does not honour, replaced by a
# named pattern. ResourceType's pattern allows no space, yet AWS's own resource types include
# "Storage Gateway" and "SAP HANA on Amazon EC2" (DescribeRegionSettings returns them;
# UpdateRegionSettings and the ByResourceType filters must accept them).
PATTERN_DEVIATIONS = {
    "ResourceType": ("PATTERN_RESOURCE_TYPE", r"^[a-zA-Z0-9\-\_\. ]{1,50}$"),
}
# The catch-all variant every generated enum has; a model value spelled the same is renamed.
UNKNOWN_VARIANT = "Unknown"
# Structure names that would shadow names the generated code relies on.
RESERVED_TYPES = {"Result", "Option", "Vec", "String", "Box", "Timestamp", "Value"}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.replace("-", "_").lower()
    if s in RUST_KEYWORDS:
        s = "r#" + s
    return s


def type_name(shape_name):
    n = shape_name[0].upper() + shape_name[1:]
    if n in RESERVED_TYPES:
        n = n + "Shape"
    return n


def variant_name(value):
    """The Rust variant for a model enum value: `COMPLETED_WITH_ISSUES` -> `CompletedWithIssues`."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", value) if p]
    n = "".join(p[:1].upper() + (p[1:].lower() if p.isupper() else p[1:]) for p in parts)
    if not n or n[0].isdigit():
        n = "V" + n
    if n == UNKNOWN_VARIANT:
        n += "Value"
    return n


def rust_str(s):
    return json.dumps(s)


def raw_str(s):
    hashes = "#"
    while ('"' + hashes) in s:
        hashes += "#"
    return "r" + hashes + '"' + s + '"' + hashes


class Gen:
    def __init__(self, model, service):
        self.svc = service
        self.m = model
        self.shapes = model["shapes"]
        self.ops = model["operations"]

    def is_exception(self, name):
        return bool(self.shapes[name].get("exception"))

    def rust_type(self, shape_name):
        sh = self.shapes[shape_name]
        t = sh["type"]
        if t == "string":
            return type_name(shape_name) if "enum" in sh else "String"
        if t == "integer":
            return "i32"
        if t == "long":
            return "i64"
        if t == "boolean":
            return "bool"
        if t == "timestamp":
            return "Timestamp"
        if t in ("double", "float"):
            return "f64"
        if t == "list":
            return "Vec<%s>" % self.rust_type(sh["member"]["shape"])
        if t == "map":
            return "BTreeMap<%s, %s>" % (self.rust_type(sh["key"]["shape"]), self.rust_type(sh["value"]["shape"]))
        if t == "structure":
            return type_name(shape_name)
        raise SystemExit("unsupported shape type %s (%s)" % (t, shape_name))

    def enums(self):
        return sorted(n for n, s in self.shapes.items() if "enum" in s)

    def structures(self):
        return sorted(n for n, s in self.shapes.items()
                      if s["type"] == "structure" and not self.is_exception(n))

    def fields(self, struct_name):
        sh = self.shapes[struct_name]
        required = set(sh.get("required", []))
        out = []
        used = set()
        for member, mm in sorted(sh["members"].items()):
            f = snake(member)
            while f in used:
                f += "_"
            used.add(f)
            out.append((member, f, mm, member in required))
        return out

    # ---------------------------------------------------------------- types.rs
    def gen_types(self):
        w = []
        w.append(self.header())
        w.append("//! Request, response and nested types of the %s API, one per modelled" % self.svc.title)
        w.append("//! structure, with the model's member names on the wire.\n")
        w.append("#![allow(clippy::all, missing_docs)]\n")
        w.append("use std::collections::BTreeMap;\n")
        w.append("use serde::{Deserialize, Serialize};\n")
        w.append("use crate::model_enum::{ModelEnumVisitor, model_enum_impls};")
        w.append("use crate::timestamp::Timestamp;\n")
        for name in self.structures():
            w.append("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
            w.append("pub struct %s {" % type_name(name))
            for member, f, mm, req in self.fields(name):
                rt = self.rust_type(mm["shape"])
                w.append("    #[serde(rename = %s%s)]" % (
                    rust_str(member),
                    "" if req else ", default, skip_serializing_if = \"Option::is_none\""))
                w.append("    pub %s: %s," % (f, rt if req else "Option<%s>" % rt))
            w.append("}\n")
        for name in self.enums():
            w.extend(self.gen_enum(name))
        w.append("/// Calls `visitor` once per enum of the model, in name order.")
        w.append("pub fn for_each_model_enum(visitor: &mut impl ModelEnumVisitor) {")
        for name in self.enums():
            w.append("    visitor.visit::<%s>();" % type_name(name))
        w.append("}")
        return "\n".join(w)

    def gen_enum(self, name):
        """One model enum: variants, wire spelling, value table, and the shared impls."""
        t = type_name(name)
        values = self.shapes[name]["enum"]
        variants = [(variant_name(v), v) for v in values]
        if len({vn for vn, _ in variants}) != len(variants) or any(vn == UNKNOWN_VARIANT for vn, _ in variants):
            raise SystemExit("enum %s: values %s give clashing variant names" % (name, values))
        w = []
        w.append("/// The model's `%s`: one variant per value it allows, `Unknown` for any other." % name)
        w.append("#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]")
        w.append("pub enum %s {" % t)
        for vn, v in variants:
            w.append("    /// `%s`" % v)
            w.append("    %s," % vn)
        w.append("    /// A value outside the model's set, kept as it came; validation refuses it on input.")
        w.append("    %s(String)," % UNKNOWN_VARIANT)
        w.append("}\n")
        w.append("impl %s {" % t)
        w.append("    /// The shape's name in the model.")
        w.append("    pub const SHAPE: &'static str = %s;" % rust_str(name))
        w.append("    /// Every value the model allows, in the model's order.")
        w.append("    pub const VALUES: &'static [&'static str] = &[%s];\n" % ", ".join(rust_str(v) for v in values))
        w.append("    /// The value as it goes on the wire.")
        w.append("    pub fn as_str(&self) -> &str {")
        w.append("        match self {")
        for vn, v in variants:
            w.append("            %s::%s => %s," % (t, vn, rust_str(v)))
        w.append("            %s::%s(value) => value," % (t, UNKNOWN_VARIANT))
        w.append("        }")
        w.append("    }\n")
        w.append("    /// Whether the value is one the model allows (not `Unknown`).")
        w.append("    pub fn is_known(&self) -> bool {")
        w.append("        !matches!(self, %s::%s(_))" % (t, UNKNOWN_VARIANT))
        w.append("    }")
        w.append("}\n")
        w.append("impl From<&str> for %s {" % t)
        w.append("    fn from(value: &str) -> Self {")
        w.append("        match value {")
        for vn, v in variants:
            w.append("            %s => %s::%s," % (rust_str(v), t, vn))
        w.append("            other => %s::%s(other.to_owned())," % (t, UNKNOWN_VARIANT))
        w.append("        }")
        w.append("    }")
        w.append("}\n")
        w.append("model_enum_impls!(%s);\n" % t)
        return w

    # ------------------------------------------------------------- validate.rs
    def input_reachable(self):
        seen = set()
        stack = [o["input"]["shape"] for o in self.ops.values() if "input" in o]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            sh = self.shapes[n]
            if sh["type"] == "structure":
                stack.extend(mm["shape"] for mm in sh["members"].values())
            elif sh["type"] == "list":
                stack.append(sh["member"]["shape"])
            elif sh["type"] == "map":
                stack.append(sh["key"]["shape"])
                stack.append(sh["value"]["shape"])
        return seen

    def checks(self, shape_name, expr, path_expr, indent, depth=0):
        """Rust statements validating `expr` (a reference) against the shape's constraints."""
        sh = self.shapes[shape_name]
        t = sh["type"]
        pad = " " * indent
        out = []
        if t == "string":
            if "enum" in sh:
                # A model enum: its checks apply to the wire spelling.
                out.append("%scheck_enum(%s, %s)?;" % (pad, path_expr, expr))
                expr = "%s.as_str()" % expr
            if "min" in sh or "max" in sh:
                out.append("%scheck_length(%s, %s.chars().count(), %s, %s)?;" % (
                    pad, path_expr, expr, self.opt(sh.get("min")), self.opt(sh.get("max"))))
            if self.svc is BACKUP and shape_name in PATTERN_DEVIATIONS:
                ident, pattern = PATTERN_DEVIATIONS[shape_name]
                self.pattern_ref(sh["pattern"])  # keeps the numbering of the other patterns
                self.named_patterns[ident] = pattern
                out.append("%scheck_pattern(%s, %s, &%s)?;" % (pad, path_expr, expr, ident))
            elif "pattern" in sh:
                out.append("%scheck_pattern(%s, %s, %s)?;" % (pad, path_expr, expr, self.pattern_ref(sh["pattern"])))
        elif t in ("integer", "long"):
            if "min" in sh or "max" in sh:
                out.append("%scheck_range(%s, i64::from(*%s), %s, %s)?;" % (
                    pad, path_expr, expr, self.opt(sh.get("min")), self.opt(sh.get("max"))))
        elif t == "list":
            if "min" in sh or "max" in sh:
                out.append("%scheck_count(%s, %s.len(), %s, %s)?;" % (
                    pad, path_expr, expr, self.opt(sh.get("min")), self.opt(sh.get("max"))))
            item = "item%d" % depth
            idx = "i%d" % depth
            inner = self.checks(sh["member"]["shape"], item,
                                "&format!(\"{}[{}]\", %s, %s)" % (path_expr, idx), indent + 4, depth + 1)
            if inner:
                out.append("%sfor (%s, %s) in %s.iter().enumerate() {" % (pad, idx, item, expr))
                out.extend(inner)
                out.append("%s}" % pad)
        elif t == "map":
            if "min" in sh or "max" in sh:
                out.append("%scheck_count(%s, %s.len(), %s, %s)?;" % (
                    pad, path_expr, expr, self.opt(sh.get("min")), self.opt(sh.get("max"))))
            k = "key%d" % depth
            v = "value%d" % depth
            inner = self.checks(sh["key"]["shape"], k, "&format!(\"{}.key\", %s)" % path_expr, indent + 4, depth + 1)
            inner += self.checks(sh["value"]["shape"], v, "&format!(\"{}[{}]\", %s, %s)" % (path_expr, k), indent + 4, depth + 1)
            if inner:
                out.append("%sfor (%s, %s) in %s.iter() {" % (pad, k, v, expr))
                out.extend(inner)
                out.append("%s}" % pad)
        elif t == "structure":
            if self.struct_has_checks(shape_name):
                out.append("%s%s.validate_at(%s)?;" % (pad, expr, path_expr))
        return out

    def struct_has_checks(self, name, seen=None):
        seen = seen or set()
        if name in seen:
            return False
        seen.add(name)
        sh = self.shapes[name]
        for mm in sh["members"].values():
            if self.shape_has_checks(mm["shape"], seen):
                return True
        return False

    def shape_has_checks(self, n, seen):
        sh = self.shapes[n]
        t = sh["type"]
        if t == "string":
            return any(k in sh for k in ("min", "max", "pattern", "enum"))
        if t in ("integer", "long"):
            return "min" in sh or "max" in sh
        if t == "list":
            return "min" in sh or "max" in sh or self.shape_has_checks(sh["member"]["shape"], seen)
        if t == "map":
            return ("min" in sh or "max" in sh or self.shape_has_checks(sh["key"]["shape"], seen)
                    or self.shape_has_checks(sh["value"]["shape"], seen))
        if t == "structure":
            return self.struct_has_checks(n, seen)
        return False

    @staticmethod
    def opt(v):
        return "None" if v is None else "Some(%d)" % v

    def pattern_ref(self, pattern):
        if pattern not in self.patterns:
            self.patterns[pattern] = "PATTERN_%d" % len(self.patterns)
        return "&%s" % self.patterns[pattern]

    def gen_validate(self):
        self.patterns = {}
        self.named_patterns = {}
        body = []
        reachable = self.input_reachable()
        for name in sorted(n for n in reachable if self.shapes[n]["type"] == "structure"):
            has = self.struct_has_checks(name)
            body.append("impl Validate for %s {" % type_name(name))
            if not has:
                body.append("    fn validate_at(&self, _path: &str) -> Result<(), ApiError> {")
                body.append("        Ok(())")
                body.append("    }")
                body.append("}\n")
                continue
            body.append("    fn validate_at(&self, path: &str) -> Result<(), ApiError> {")
            for member, f, mm, req in self.fields(name):
                path_expr = "&member_path(path, %s)" % rust_str(member)
                if req:
                    inner = self.checks(mm["shape"], "(&self.%s)" % f, path_expr, 8)
                    body.extend(inner)
                else:
                    inner = self.checks(mm["shape"], "value", path_expr, 12)
                    if inner:
                        body.append("        if let Some(value) = &self.%s {" % f)
                        body.extend(inner)
                        body.append("        }")
            body.append("        Ok(())")
            body.append("    }")
            body.append("}\n")
        w = [self.header()]
        w.append("//! Input validation generated from the model's constraints.\n")
        w.append("#![allow(clippy::all, unused_variables, unused_parens)]\n")
        w.append("use std::sync::LazyLock;\n")
        w.append("use crate::error::ApiError;")
        w.append("use %s::types::*;" % self.svc.module)
        w.append("use crate::validate::{")
        w.append("    Pattern, Validate, check_count, check_enum, check_length, check_pattern, check_range,")
        w.append("    member_path,")
        w.append("};\n")
        for pattern, ident in self.patterns.items():
            w.append("static %s: LazyLock<Pattern> = LazyLock::new(|| Pattern::new(%s));" % (ident, raw_str(pattern)))
        for ident, pattern in sorted(self.named_patterns.items()):
            w.append("static %s: LazyLock<Pattern> = LazyLock::new(|| Pattern::new(%s));" % (ident, raw_str(pattern)))
        w.append("")
        w.extend(body)
        return "\n".join(w)

    # ----------------------------------------------------------- operations.rs
    def gen_operations(self):
        w = [self.header()]
        w.append("//! The operation table, the service trait and request dispatch.\n")
        w.append("#![allow(clippy::all, unused_variables, unused_parens)]\n")
        w.append("use async_trait::async_trait;\n")
        w.append("use crate::error::ApiError;")
        w.append("use %s::types::*;" % self.svc.module)
        w.append("use crate::operation::{Binding, Location, OperationSpec, ScalarKind};")
        w.append("use crate::request::RequestContext;")
        w.append("use crate::validate::{Validate, decode_input, encode_output};\n")
        names = sorted(self.ops)
        w.append("/// Every operation of the %s API." % self.svc.title)
        w.append("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]")
        w.append("pub enum Operation {")
        for n in names:
            w.append("    %s," % n)
        w.append("}\n")
        w.append("impl Operation {")
        w.append("    /// All operations, in name order.")
        w.append("    pub const ALL: &'static [Operation] = &[%s];\n" % ", ".join("Operation::%s" % n for n in names))
        w.append("    /// The operation's name as the model spells it.")
        w.append("    pub fn name(self) -> &'static str {")
        w.append("        self.spec().name")
        w.append("    }\n")
        w.append("    /// The operation's HTTP binding.")
        w.append("    pub fn spec(self) -> &'static %s {" % self.spec_type())
        w.append("        &OPERATIONS[self as usize]")
        w.append("    }")
        w.append("}\n")
        w.append("/// The HTTP binding of every operation, indexed by `Operation as usize`.")
        w.append("pub static OPERATIONS: &[%s] = &[" % self.spec_type())
        for n in names:
            op = self.ops[n]
            http = op["http"]
            bindings = []
            if "input" in op:
                for member, f, mm, req in self.fields(op["input"]["shape"]):
                    loc = mm.get("location")
                    if loc in ("uri", "querystring"):
                        target = self.shapes[mm["shape"]]
                        if target["type"] == "list":
                            if self.shapes[target["member"]["shape"]]["type"] != "string":
                                raise SystemExit("unsupported bound list %s" % mm["shape"])
                            kind = "StringList"
                        else:
                            kind = {"string": "String", "integer": "Integer", "long": "Long",
                                    "boolean": "Boolean", "timestamp": "Timestamp"}[target["type"]]
                        bindings.append("Binding { member: %s, wire: %s, location: Location::%s, kind: ScalarKind::%s }" % (
                            rust_str(member), rust_str(mm.get("locationName", member)),
                            "Uri" if loc == "uri" else "Query", kind))
            w.append("    OperationSpec {")
            w.append("        operation: Operation::%s," % n)
            w.append("        name: %s," % rust_str(n))
            w.append("        method: %s," % rust_str(http["method"]))
            w.append("        uri: %s," % rust_str(http["requestUri"]))
            w.append("        success_status: %d," % http.get("responseCode", 200))
            w.append("        has_input: %s," % ("true" if "input" in op else "false"))
            w.append("        bindings: &[%s]," % ", ".join(bindings))
            w.append("    },")
        w.append("];\n")
        # Service trait.
        w.append("/// The %s API as one async trait: one method per operation." % self.svc.title)
        w.append("///")
        w.append("/// Every method has a default body answering that the operation is not implemented, so")
        w.append("/// an implementation overrides exactly the operations it really provides.")
        w.append("#[async_trait]")
        w.append("pub trait %s: Send + Sync + 'static {" % self.svc.trait)
        for n in names:
            op = self.ops[n]
            args = "&self, ctx: &RequestContext"
            if "input" in op:
                args += ", input: %s" % type_name(op["input"]["shape"])
            out = type_name(op["output"]["shape"]) if "output" in op else "()"
            w.append("    async fn %s(%s) -> Result<%s, ApiError> {" % (snake(n), args, out))
            w.append("        Err(ApiError::not_implemented(%s))" % rust_str(n))
            w.append("    }\n")
        w.append("}\n")
        # Dispatch.
        w.append("/// Decodes the operation's input from its JSON form (body members plus bound URI and")
        w.append("/// query members), validates it, calls the service and encodes the output body.")
        w.append("pub async fn dispatch<S: %s + ?Sized>(" % self.svc.trait)
        w.append("    service: &S,")
        w.append("    ctx: &RequestContext,")
        w.append("    operation: Operation,")
        w.append("    input: serde_json::Value,")
        w.append(") -> Result<Vec<u8>, ApiError> {")
        w.append("    match operation {")
        for n in names:
            op = self.ops[n]
            w.append("        Operation::%s => {" % n)
            if "input" in op:
                w.append("            let input: %s = decode_input(input)?;" % type_name(op["input"]["shape"]))
                w.append("            input.validate()?;")
                call = "service.%s(ctx, input).await?" % snake(n)
            else:
                call = "service.%s(ctx).await?" % snake(n)
            if "output" in op:
                w.append("            encode_output(&%s)" % call)
            else:
                w.append("            %s;" % call)
                w.append("            Ok(Vec::new())")
            w.append("        }")
        w.append("    }")
        w.append("}\n")
        w.append("/// Calls the operation with an empty (default) input, skipping decoding and validation.")
        w.append("/// Used to read off which operations an implementation provides (see coffer-core's")
        w.append("/// coverage); run it only against a throwaway instance.")
        w.append("pub async fn call_with_default_input<S: %s + ?Sized>(" % self.svc.trait)
        w.append("    service: &S,")
        w.append("    ctx: &RequestContext,")
        w.append("    operation: Operation,")
        w.append(") -> Result<(), ApiError> {")
        w.append("    match operation {")
        for n in names:
            op = self.ops[n]
            if "input" in op:
                w.append("        Operation::%s => service.%s(ctx, Default::default()).await.map(drop)," % (n, snake(n)))
            else:
                w.append("        Operation::%s => service.%s(ctx).await.map(drop)," % (n, snake(n)))
        w.append("    }")
        w.append("}")
        return "\n".join(w)

    def spec_type(self):
        return "OperationSpec<Operation>" if self.svc.generic_spec else "OperationSpec"

    def header(self):
        version = open(self.svc.version).read().strip()
        return ("// @generated by scripts/codegen.py from %s (%s). Do not edit.\n" % (self.svc.model_rel, version))


def generate(svc):
    model = json.load(open(svc.model))
    g = Gen(model, svc)
    os.makedirs(svc.out, exist_ok=True)
    if svc is BACKUP:
        mod = ("//! Code generated from the service model; see scripts/codegen.py.\n\n"
               "pub mod operations;\npub mod search;\npub mod types;\nmod validate;\n")
    else:
        mod = ("//! Code generated from the %s service model; see scripts/codegen.py.\n\n"
               "pub mod operations;\npub mod types;\nmod validate;\n" % svc.title)
    files = {
        "types.rs": g.gen_types(),
        "validate.rs": g.gen_validate(),
        "operations.rs": g.gen_operations(),
        "mod.rs": g.header() + mod,
    }
    for name, text in files.items():
        path = os.path.join(svc.out, name)
        with open(path, "w") as f:
            f.write(text.rstrip("\n") + "\n")
        subprocess.run(["rustfmt", "--edition", "2024", path], check=True)
    print("generated %d operations, %d structures into %s" % (
        len(model["operations"]), len(g.structures()), os.path.relpath(svc.out, ROOT)))


def main():
    for svc in SERVICES:
        generate(svc)


if __name__ == "__main__":
    main()
