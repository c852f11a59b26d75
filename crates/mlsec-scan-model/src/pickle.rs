//! Symbolic pickle analysis: a model of the pickle machine (stack, metastack of marks, memo) that
//! tracks *what* each value is without ever creating it.
//!
//! Every callable a stream can reach is resolved: GLOBAL, STACK_GLOBAL (operands from constants,
//! the memo or BUILD-set attributes), INST, OBJ, NEWOBJ(_EX), REDUCE, BUILD and EXT codes, plus the
//! callables assembled indirectly through `getattr`, `__import__`/`importlib.import_module`,
//! `pkgutil.resolve_name`, `operator.attrgetter`/`methodcaller` and `functools.partial`.
//!
//! Values are immutable and reference-counted; containers keep at most [`MAX_ITEMS_KEPT`] items and
//! values nest at most [`MAX_VALUE_DEPTH`] deep, so hostile streams cannot make analysis quadratic,
//! recurse without bound, or build cycles.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use mlsec_diagnostics::{Rule, Severity};
use mlsec_formats::pickle::{Arg, Limits as OpLimits, Op, OpCode, OpReader, Payload, PickleError};
use mlsec_formats::source::ReadAt;

use crate::policy::{self, Verdict};
use crate::rules;

/// Most opcodes analysed in one stream.
pub const MAX_OPCODES: u64 = 50_000_000;
/// Most memo entries kept. Past it, analysis goes on with the memo saturated: new entries are
/// not stored and reads of them yield opaque values (an import computed from one is then
/// reported as dynamic), and a low-severity PKL007 says so.
pub const MAX_MEMO: usize = 1 << 22;
/// Deepest stack (and metastack).
pub const MAX_STACK: usize = 1 << 20;
/// Items kept per container; the rest are counted, not kept.
pub const MAX_ITEMS_KEPT: usize = 64;
/// Deepest value nesting kept; deeper values become opaque.
pub const MAX_VALUE_DEPTH: u32 = 48;
/// A value that expands to more references than this (see `Val::weight`) ...
pub const EXPANSION_LIMIT: u64 = 1 << 24;
/// ... and to more than this many per opcode read is an expansion bomb; plain large data
/// expands to about one reference per opcode.
pub const EXPANSION_FACTOR: u64 = 64;
/// An allocating constructor called with a size of at least this many bytes is a memory bomb.
pub const MAX_ALLOCATION: u64 = 1 << 30;
/// Most storages recorded per stream.
pub const MAX_STORAGES: usize = 1 << 20;
/// Most hits reported per stream.
pub const MAX_HITS: usize = 200;

/// One thing found in a stream, before it becomes a finding.
#[derive(Debug, Clone)]
pub struct Hit {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub offset: u64,
    pub opcode: &'static str,
    pub message: String,
    pub evidence: Option<String>,
}

/// A byte payload inside the stream that looks like something scannable (a pickle, an archive).
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Offset of the opcode that carries it.
    pub opcode_offset: u64,
    /// Where the bytes are in the source.
    pub data_offset: u64,
    pub len: u64,
    /// The bytes themselves when they are not a span of the source: protocol 0 STRING and
    /// UNICODE arguments are decoded from escapes, so the file holds something else.
    pub decoded: Option<Vec<u8>>,
}

/// A PyTorch storage a stream refers to by persistent id
/// (`('storage', torch.FloatStorage, '0', 'cpu', 4)`), which `torch.load` reads from
/// `data/<key>` of the archive.
#[derive(Debug, Clone)]
pub struct StorageRef {
    pub key: String,
    /// The storage class (`FloatStorage`, `UntypedStorage`, ...).
    pub kind: String,
    /// Elements declared.
    pub numel: u64,
    /// Offset of the opcode that names it.
    pub offset: u64,
}

impl StorageRef {
    /// Bytes per element of the storage class, when known.
    pub fn element_size(&self) -> Option<u64> {
        Some(match self.kind.as_str() {
            "UntypedStorage"
            | "ByteStorage"
            | "CharStorage"
            | "BoolStorage"
            | "QUInt8Storage"
            | "QInt8Storage"
            | "QUInt4x2Storage"
            | "QUInt2x4Storage"
            | "Float8_e4m3fnStorage"
            | "Float8_e5m2Storage" => 1,
            "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
            "FloatStorage" | "IntStorage" | "QInt32Storage" => 4,
            "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
            "ComplexDoubleStorage" => 16,
            _ => return None,
        })
    }
}

/// The outcome of analysing one or more concatenated pickle streams.
#[derive(Debug, Default)]
pub struct Analysis {
    pub hits: Vec<Hit>,
    pub embedded: Vec<Embedded>,
    /// Complete streams (ending in STOP).
    pub streams: u32,
    /// Where analysis stopped.
    pub end: u64,
    /// Whether any global was imported.
    pub imports: usize,
    /// The parse error that ended analysis, if any (already reported as a hit).
    pub error: Option<String>,
    /// PyTorch storages named by persistent ids, in stream order.
    pub storages: Vec<StorageRef>,
    /// Calls made (REDUCE, INST, OBJ, NEWOBJ, BUILD with `__setstate__`), complete stream or not:
    /// a loader makes them before it reaches a later error.
    pub calls: u64,
}

#[derive(Debug)]
struct Global {
    module: String,
    name: String,
}

#[derive(Debug)]
struct Obj {
    func: Val,
    args: Val,
    state: Option<Val>,
    depth: u32,
    weight: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqKind {
    List,
    Tuple,
    Set,
}

#[derive(Debug)]
struct Seq {
    kind: SeqKind,
    /// Shared, so appending to a full list is O(1) even while the memo holds the old value.
    items: Rc<Vec<Val>>,
    len: u64,
    depth: u32,
    /// Values in the fully expanded tree (see [`Val::weight`]).
    weight: u64,
}

#[derive(Debug)]
struct Dict {
    items: Rc<Vec<(Val, Val)>>,
    len: u64,
    depth: u32,
    weight: u64,
}

#[derive(Debug, Clone)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float,
    Str(Rc<str>),
    Bytes {
        head: Rc<[u8]>,
        len: u64,
    },
    Global(Rc<Global>),
    Module(Rc<str>),
    Obj(Rc<Obj>),
    Seq(Rc<Seq>),
    Dict(Rc<Dict>),
    AttrGetter(Rc<str>),
    MethodCaller(Rc<str>),
    Partial(Rc<Val>),
    Persistent,
    /// A PyTorch storage named by a persistent id.
    Storage(Rc<StorageRef>),
    Unknown,
}

impl Val {
    fn depth(&self) -> u32 {
        match self {
            Val::Obj(o) => o.depth,
            Val::Seq(s) => s.depth,
            Val::Dict(d) => d.depth,
            Val::Partial(_) => 1,
            _ => 0,
        }
    }

    /// How many values the value stands for when every shared reference is expanded
    /// (saturating): what `repr`, `json.dumps`, a deep copy or any tree walk of the loaded
    /// object visits. `[x, x]` with `x` from the memo counts `x` twice.
    fn weight(&self) -> u64 {
        match self {
            Val::Obj(o) => o.weight,
            Val::Seq(s) => s.weight,
            Val::Dict(d) => d.weight,
            Val::Partial(p) => p.weight().saturating_add(1),
            _ => 1,
        }
    }

    /// Caps nesting: a value that would nest too deep is replaced by an opaque one.
    fn capped(self) -> Val {
        if self.depth() >= MAX_VALUE_DEPTH {
            Val::Unknown
        } else {
            self
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    fn qualname(&self) -> Option<String> {
        match self {
            Val::Global(g) => Some(format!("{}.{}", g.module, g.name)),
            Val::Module(m) => Some(m.to_string()),
            _ => None,
        }
    }

    fn items(&self) -> &[Val] {
        match self {
            Val::Seq(s) => &s.items,
            _ => &[],
        }
    }
}

/// `('storage', <storage class>, key, location, numel[, view])`.
fn storage_ref(pid: &Val, offset: u64) -> Option<StorageRef> {
    let items = pid.items();
    if items.first().and_then(Val::as_str) != Some("storage") || items.len() < 5 {
        return None;
    }
    let kind = match &items[1] {
        Val::Global(g) => g.name.clone(),
        _ => return None,
    };
    let key = match &items[2] {
        Val::Str(k) => k.to_string(),
        Val::Int(k) => k.to_string(),
        _ => return None,
    };
    let Val::Int(numel) = items[4] else {
        return None;
    };
    Some(StorageRef {
        key,
        kind,
        numel: u64::try_from(numel).unwrap_or(u64::MAX),
        offset,
    })
}

/// Is this value a tensor built by one of PyTorch's rebuild functions?
fn is_tensor(v: &Val) -> bool {
    let Val::Obj(o) = v else { return false };
    let Val::Global(g) = &o.func else {
        return false;
    };
    (g.module == "torch._utils" || g.module == "torch._tensor") && g.name.starts_with("_rebuild_")
        || (g.module == "torch" && g.name == "Tensor")
        || (g.module == "torch.nn.parameter" && g.name == "Parameter")
}

/// Integers of a constant tuple.
fn ints(v: &Val) -> Option<Vec<i64>> {
    v.items()
        .iter()
        .map(|a| match a {
            Val::Int(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// The length of `range(...)` built in the stream, when its arguments are constant.
fn range_len(v: &Val) -> Option<u64> {
    let Val::Obj(o) = v else { return None };
    let Val::Global(g) = &o.func else { return None };
    let q = (g.module.as_str(), g.name.as_str());
    if !matches!(q, ("builtins" | "__builtin__", "range" | "xrange")) {
        return None;
    }
    let ints: Vec<i128> = o
        .args
        .items()
        .iter()
        .map(|a| match a {
            Val::Int(n) => Some(i128::from(*n)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (start, stop, step) = match ints.as_slice() {
        [stop] => (0, *stop, 1),
        [start, stop] => (*start, *stop, 1),
        [start, stop, step] if *step != 0 => (*start, *stop, *step),
        _ => return None,
    };
    let n = if step > 0 {
        (stop - start + step - 1) / step
    } else {
        (start - stop - step - 1) / -step
    };
    Some(u64::try_from(n.max(0)).unwrap_or(u64::MAX))
}

fn weights<'v>(items: impl IntoIterator<Item = &'v Val>) -> u64 {
    items
        .into_iter()
        .fold(0u64, |w, v| w.saturating_add(v.weight()))
}

/// A sequence of `len` items of which `items` are kept; items not kept weigh one each.
fn seq(kind: SeqKind, items: Vec<Val>, len: u64) -> Val {
    let weight = weights(&items)
        .saturating_add(len.saturating_sub(items.len() as u64))
        .saturating_add(1);
    seq_weighing(kind, items, len, weight)
}

fn seq_weighing(kind: SeqKind, items: Vec<Val>, len: u64, weight: u64) -> Val {
    let depth = items.iter().map(Val::depth).max().unwrap_or(0) + 1;
    let items = Rc::new(items.into_iter().map(Val::capped).collect());
    Val::Seq(Rc::new(Seq {
        kind,
        items,
        len,
        depth,
        weight,
    }))
}

fn obj(func: Val, args: Val, state: Option<Val>) -> Val {
    let depth = func
        .depth()
        .max(args.depth())
        .max(state.as_ref().map_or(0, Val::depth))
        + 1;
    let weight = weights([&func, &args])
        .saturating_add(state.as_ref().map_or(0, Val::weight))
        .saturating_add(1);
    Val::Obj(Rc::new(Obj {
        weight,
        func: func.capped(),
        args: args.capped(),
        state: state.map(Val::capped),
        depth,
    }))
}

/// Short, bounded rendering of a value for evidence.
fn render(v: &Val, out: &mut String, depth: u32) {
    if out.len() > 200 {
        return;
    }
    if depth > 3 {
        out.push_str("...");
        return;
    }
    match v {
        Val::None => out.push_str("None"),
        Val::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float => out.push_str("<float>"),
        Val::Str(s) => {
            let t: String = s.chars().take(120).collect();
            let _ = write!(out, "{t:?}");
            if s.chars().count() > 120 {
                out.push_str("...");
            }
        }
        Val::Bytes { head, len } => {
            let shown: String = head
                .iter()
                .take(32)
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b).to_string()
                    } else {
                        format!("\\x{b:02x}")
                    }
                })
                .collect();
            let _ = write!(out, "b\"{shown}\"");
            if *len > 32 {
                let _ = write!(out, "...({len} bytes)");
            }
        }
        Val::Global(g) => {
            let _ = write!(out, "{}.{}", g.module, g.name);
        }
        Val::Module(m) => {
            let _ = write!(out, "<module {m}>");
        }
        Val::Obj(o) => {
            render(&o.func, out, depth + 1);
            out.push('(');
            render_items(o.args.items(), out, depth + 1);
            out.push(')');
        }
        Val::Seq(s) => {
            let (open, close) = match s.kind {
                SeqKind::List => ('[', ']'),
                SeqKind::Tuple => ('(', ')'),
                SeqKind::Set => ('{', '}'),
            };
            out.push(open);
            render_items(&s.items, out, depth + 1);
            out.push(close);
        }
        Val::Dict(d) => {
            out.push('{');
            for (i, (k, v)) in d.items.iter().enumerate().take(6) {
                if i > 0 {
                    out.push_str(", ");
                }
                render(k, out, depth + 1);
                out.push_str(": ");
                render(v, out, depth + 1);
            }
            if d.len > 6 {
                out.push_str(", ...");
            }
            out.push('}');
        }
        Val::AttrGetter(a) => {
            let _ = write!(out, "attrgetter({a:?})");
        }
        Val::MethodCaller(a) => {
            let _ = write!(out, "methodcaller({a:?})");
        }
        Val::Partial(f) => {
            out.push_str("partial(");
            render(f, out, depth + 1);
            out.push(')');
        }
        Val::Persistent => out.push_str("<persistent id>"),
        Val::Storage(s) => {
            let _ = write!(out, "<storage {:?}: {} x {}>", s.key, s.numel, s.kind);
        }
        Val::Unknown => out.push('?'),
    }
}

fn render_items(items: &[Val], out: &mut String, depth: u32) {
    for (i, it) in items.iter().enumerate().take(6) {
        if i > 0 {
            out.push_str(", ");
        }
        render(it, out, depth);
    }
    if items.len() > 6 {
        out.push_str(", ...");
    }
}

fn show(v: &Val) -> String {
    let mut s = String::new();
    render(v, &mut s, 0);
    if s.len() > 240 {
        let cut = (0..=240)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The memo: dense for the sequential keys pickle writes, a map for sparse ones.
#[derive(Default)]
struct Memo {
    dense: Vec<Option<Val>>,
    sparse: HashMap<u64, Val>,
    /// Distinct keys stored (CPython's `len(memo)`, which MEMOIZE uses as its key).
    count: usize,
    saturated: bool,
    /// Where a stored list, set or dict lives (by the address of its shared value): Python's memo
    /// holds the mutable object, so items appended after MEMOIZE are seen by every later GET.
    containers: HashMap<usize, u64>,
}

/// The address of a container's shared value.
fn container_addr(v: &Val) -> Option<usize> {
    match v {
        Val::Seq(s) => Some(Rc::as_ptr(s) as usize),
        Val::Dict(d) => Some(Rc::as_ptr(d) as usize),
        _ => None,
    }
}

/// How far past the dense end a key may land and still extend the dense part.
const DENSE_SLACK: u64 = 4096;

impl Memo {
    /// `old`, stored in the memo, was mutated into `new`: later GETs see `new`.
    fn refresh(&mut self, old: &Val, new: &Val) {
        let Some(addr) = container_addr(old) else {
            return;
        };
        let Some(idx) = self.containers.remove(&addr) else {
            return;
        };
        let still = self
            .get(idx)
            .is_some_and(|v| container_addr(v) == Some(addr));
        if still {
            self.overwrite(idx, new.clone());
        }
    }

    /// Replaces a stored value without counting a new key.
    fn overwrite(&mut self, idx: u64, v: Val) {
        if let Some(addr) = container_addr(&v) {
            self.containers.insert(addr, idx);
        }
        match usize::try_from(idx)
            .ok()
            .and_then(|i| self.dense.get_mut(i))
        {
            Some(slot) => *slot = Some(v),
            None => {
                self.sparse.insert(idx, v);
            }
        }
    }

    fn get(&self, idx: u64) -> Option<&Val> {
        match usize::try_from(idx).ok().and_then(|i| self.dense.get(i)) {
            Some(slot) => slot.as_ref(),
            None => self.sparse.get(&idx),
        }
    }

    fn put(&mut self, idx: u64, v: Val) {
        if let Some(addr) = container_addr(&v) {
            self.containers.insert(addr, idx);
        }
        let dense_len = self.dense.len() as u64;
        if idx < dense_len {
            let slot = &mut self.dense[idx as usize];
            if slot.is_none() {
                self.count += 1;
            }
            *slot = Some(v);
        } else if idx < dense_len + DENSE_SLACK && !self.sparse.contains_key(&idx) {
            self.dense.resize(idx as usize + 1, None);
            self.dense[idx as usize] = Some(v);
            self.count += 1;
        } else if self.sparse.insert(idx, v).is_none() {
            self.count += 1;
        }
    }
}

struct ImportRec {
    qual: String,
    verdict: Verdict,
    offset: u64,
    opcode: &'static str,
    via: Option<String>,
    call: Option<String>,
    count: u32,
    /// For `getattr`: calls whose target and attribute were both resolved.
    resolved_calls: u32,
    /// For `getattr`: calls that could not be resolved statically.
    unresolved_calls: u32,
}

struct Machine<'a> {
    ops: OpReader<'a>,
    stack: Vec<Val>,
    marks: Vec<Vec<Val>>,
    memo: Memo,
    imports: Vec<ImportRec>,
    import_index: HashMap<String, usize>,
    hits: Vec<Hit>,
    embedded: Vec<Embedded>,
    opcodes: u64,
    /// Set when joblib array data must be skipped after the current BUILD.
    pending_joblib: Option<JoblibArray>,
    calls: u64,
    expansion_reported: bool,
    storages: Vec<StorageRef>,
}

enum JoblibArray {
    Raw { bytes: u64, padded: bool },
    Objects,
}

enum Flow {
    Continue,
    Stop,
}

type Fail = (u64, &'static str, String, &'static Rule);

impl<'a> Machine<'a> {
    fn new(src: &'a dyn ReadAt, start: u64) -> Machine<'a> {
        Machine {
            ops: OpReader::new(src, start, OpLimits::default()),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            imports: Vec::new(),
            import_index: HashMap::new(),
            hits: Vec::new(),
            embedded: Vec::new(),
            opcodes: 0,
            pending_joblib: None,
            calls: 0,
            expansion_reported: false,
            storages: Vec::new(),
        }
    }

    fn hit(
        &mut self,
        rule: &'static Rule,
        severity: Severity,
        op: &Op,
        message: String,
        evidence: Option<String>,
    ) {
        if self.hits.len() < MAX_HITS {
            self.hits.push(Hit {
                rule,
                severity,
                offset: op.offset,
                opcode: op.code.name(),
                message,
                evidence,
            });
        }
    }

    /// Records an import of `module.name` (or a module when `name` is empty).
    fn import(&mut self, module: &str, name: &str, op: &Op, via: Option<&str>) {
        let qual = if name.is_empty() {
            module.to_owned()
        } else {
            format!("{module}.{name}")
        };
        if let Some(&i) = self.import_index.get(&qual) {
            self.imports[i].count += 1;
            return;
        }
        let verdict = if name.is_empty() {
            match policy::dangerous_module(module) {
                Some(what) => Verdict::Dangerous {
                    severity: Severity::Critical,
                    what,
                },
                None => Verdict::Unknown {
                    severity: Severity::High,
                    why: "a module imported by name at load time",
                },
            }
        } else {
            policy::classify(module, name)
        };
        self.import_index.insert(qual.clone(), self.imports.len());
        self.imports.push(ImportRec {
            qual,
            verdict,
            offset: op.offset,
            opcode: op.code.name(),
            via: via.map(str::to_owned),
            call: None,
            count: 1,
            resolved_calls: 0,
            unresolved_calls: 0,
        });
    }

    fn note_call(&mut self, func: &Val, args: &Val) {
        let Some(q) = func.qualname() else { return };
        if let Some(&i) = self.import_index.get(&q) {
            let rec = &mut self.imports[i];
            if rec.call.is_none() && !matches!(rec.verdict, Verdict::Safe) {
                let mut s = String::new();
                render_items(args.items(), &mut s, 1);
                rec.call = Some(format!("{q}({s})"));
            }
        }
    }

    fn pop(&mut self, op: &Op) -> Result<Val, Fail> {
        self.stack.pop().ok_or_else(|| {
            (
                op.offset,
                op.code.name(),
                "stack underflow".to_owned(),
                &rules::PICKLE_MALFORMED,
            )
        })
    }

    fn top_mut(&mut self, op: &Op) -> Result<&mut Val, Fail> {
        self.stack.last_mut().ok_or_else(|| {
            (
                op.offset,
                op.code.name(),
                "stack underflow".to_owned(),
                &rules::PICKLE_MALFORMED,
            )
        })
    }

    fn pop_mark(&mut self, op: &Op) -> Result<Vec<Val>, Fail> {
        let items = std::mem::take(&mut self.stack);
        self.stack = self.marks.pop().ok_or_else(|| {
            (
                op.offset,
                op.code.name(),
                "no MARK on the metastack".to_owned(),
                &rules::PICKLE_MALFORMED,
            )
        })?;
        Ok(items)
    }

    fn push(&mut self, op: &Op, v: Val) -> Result<(), Fail> {
        if self.stack.len() >= MAX_STACK {
            return Err((
                op.offset,
                op.code.name(),
                format!("stack deeper than MAX_STACK ({MAX_STACK})"),
                &rules::PICKLE_LIMIT,
            ));
        }
        let weight = v.weight();
        if weight > EXPANSION_LIMIT
            && weight / EXPANSION_FACTOR > self.opcodes
            && !self.expansion_reported
        {
            self.expansion_reported = true;
            self.hit(
                &rules::PICKLE_EXPANSION,
                Severity::Medium,
                op,
                format!(
                    "{} opcodes build a value that expands to more than {EXPANSION_LIMIT} references through shared (memo or DUP) values; anything that walks it (repr, JSON, a copy, a scanner that expands the tree) runs out of time or memory",
                    self.opcodes
                ),
                Some(format!("expanded size {weight} (saturating) after {} opcodes", self.opcodes)),
            );
        }
        self.stack.push(v);
        Ok(())
    }

    /// The container on top of the stack was `before` and has just been mutated.
    fn refresh_memo(&mut self, before: Option<&Val>) {
        if let (Some(old), Some(new)) = (before, self.stack.last()) {
            let new = new.clone();
            self.memo.refresh(old, &new);
        }
    }

    fn memo_put(&mut self, op: &Op, idx: u64) -> Result<(), Fail> {
        let v = self.stack.last().cloned().ok_or_else(|| {
            (
                op.offset,
                op.code.name(),
                "memo store from an empty stack".to_owned(),
                &rules::PICKLE_MALFORMED,
            )
        })?;
        if self.memo.count >= MAX_MEMO && self.memo.get(idx).is_none() {
            if !self.memo.saturated {
                self.memo.saturated = true;
                self.hit(
                    &rules::PICKLE_LIMIT,
                    Severity::Low,
                    op,
                    format!("more than MAX_MEMO ({MAX_MEMO}) memo entries; later entries are analysed as opaque values"),
                    None,
                );
            }
            return Ok(());
        }
        self.memo.put(idx, v);
        Ok(())
    }

    fn payload_val(&mut self, op: &Op, p: &Payload, text: bool) -> Val {
        let (data_offset, inline) = match p {
            Payload::Inline(v) => (None, Some(v)),
            Payload::Skipped { offset, .. } => (Some(*offset), None),
        };
        let head = p.head();
        let scannable =
            mlsec_formats::pickle::looks_like_pickle(head) || mlsec_formats::zip::is_zip(head);
        if scannable && p.len() >= 8 {
            // Binary inline payloads sit right before the reader's position; the arguments of
            // the line-based opcodes are decoded text, scanned from memory instead.
            let line_based = matches!(op.code, OpCode::STRING | OpCode::UNICODE);
            let start = data_offset.or_else(|| self.ops.pos().checked_sub(p.len()));
            match (line_based, start, inline) {
                (false, Some(start), _) => self.embedded.push(Embedded {
                    opcode_offset: op.offset,
                    data_offset: start,
                    len: p.len(),
                    decoded: None,
                }),
                (_, _, Some(v)) => self.embedded.push(Embedded {
                    opcode_offset: op.offset,
                    data_offset: 0,
                    len: p.len(),
                    decoded: Some(v.clone()),
                }),
                _ => {}
            }
        }
        if text && let Some(v) = inline {
            return Val::Str(Rc::from(String::from_utf8_lossy(v).as_ref()));
        }
        Val::Bytes {
            head: Rc::from(&head[..head.len().min(64)]),
            len: p.len(),
        }
    }

    /// `bytes(n)`, `bytearray(n)`, `list(range(n))` and the like allocate what the argument
    /// says: a huge size from a few bytes is a memory bomb.
    fn check_allocation(&mut self, op: &Op, q: &str, first: Option<&Val>) {
        let size = match (q, first) {
            ("builtins.bytes" | "builtins.bytearray", Some(Val::Int(n))) => {
                u64::try_from(*n).unwrap_or(0)
            }
            (
                "builtins.bytes"
                | "builtins.bytearray"
                | "builtins.list"
                | "builtins.tuple"
                | "builtins.set"
                | "builtins.frozenset"
                | "builtins.dict"
                | "collections.deque"
                | "collections.Counter",
                Some(v),
            ) => range_len(v).map_or(0, |n| {
                // A bytes value per item is one byte; a list holds an 8-byte pointer per item.
                if q.starts_with("builtins.byte") {
                    n
                } else {
                    n.saturating_mul(8)
                }
            }),
            _ => 0,
        };
        if size >= MAX_ALLOCATION {
            self.hit(
                &rules::PICKLE_EXPANSION,
                Severity::Medium,
                op,
                format!("{q} is called to allocate about {size} bytes at load time (a memory bomb from a few bytes)"),
                Some(format!("{q}(...) allocating ~{size} bytes")),
            );
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`: the view must lie inside the
    /// storage. PyTorch's `weights_only` loader trusts these numbers; a view past the end reads
    /// or writes memory the storage does not own.
    fn check_view(&mut self, op: &Op, q: &str, args: &[Val]) {
        let [Val::Storage(st), Val::Int(offset), size, stride, ..] = args else {
            return;
        };
        let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
            return;
        };
        let bad = |why: String| {
            (
                why,
                format!(
                    "{q}(<storage {:?}: {} elements>, {offset}, {size:?}, {stride:?})",
                    st.key, st.numel
                ),
            )
        };
        let problem = if *offset < 0 || size.iter().any(|&n| n < 0) || stride.iter().any(|&n| n < 0)
        {
            Some(bad("negative offset, size or stride".to_owned()))
        } else if size.len() != stride.len() {
            Some(bad(format!(
                "{} sizes but {} strides",
                size.len(),
                stride.len()
            )))
        } else if size.contains(&0) {
            None
        } else {
            // Last element reached: offset + sum((size_i - 1) * stride_i), in 128 bits.
            let last = size
                .iter()
                .zip(&stride)
                .fold(i128::from(*offset), |acc, (&n, &s)| {
                    acc + (i128::from(n) - 1) * i128::from(s)
                });
            (last >= i128::from(st.numel)).then(|| {
                bad(format!(
                    "the view reaches element {last} of a storage of {} elements",
                    st.numel
                ))
            })
        };
        if let Some((why, evidence)) = problem {
            self.hit(
                &rules::TORCH_TENSOR_BOUNDS,
                Severity::High,
                op,
                format!("tensor view outside its storage: {why}; PyTorch's weights_only loader trusts these numbers"),
                Some(evidence),
            );
        }
    }

    /// Resolves a call and returns the value it produces.
    fn call(&mut self, op: &Op, func: Val, args: Val) -> Val {
        self.calls += 1;
        self.note_call(&func, &args);
        let first = args.items().first().cloned();
        let second = args.items().get(1).cloned();
        match &func {
            Val::Global(g) => {
                let q = format!("{}.{}", g.module, g.name);
                let q = q
                    .strip_prefix("__builtin__.")
                    .map_or(q.clone(), |rest| format!("builtins.{rest}"));
                self.check_allocation(op, &q, first.as_ref());
                if matches!(
                    q.as_str(),
                    "torch._utils._rebuild_tensor"
                        | "torch._utils._rebuild_tensor_v2"
                        | "torch._utils._rebuild_tensor_v3"
                ) {
                    self.check_view(op, &q, args.items());
                }
                match q.as_str() {
                    "builtins.getattr" => {
                        let key = format!("{}.{}", g.module, g.name);
                        if let (Some(target), Some(Val::Str(attr))) = (first, second) {
                            let (v, resolved) = self.getattr_checked(op, &target, &attr, &q);
                            self.count_getattr(&key, resolved);
                            return v;
                        }
                        self.count_getattr(&key, false);
                        return Val::Unknown;
                    }
                    "operator.getitem" | "_operator.getitem" => {
                        // Item access: a string kept in a dict can feed a later STACK_GLOBAL.
                        if let (Some(target), Some(Val::Str(key))) = (first, second) {
                            return dict_get(&target, &key).cloned().unwrap_or(Val::Unknown);
                        }
                        return Val::Unknown;
                    }
                    "builtins.__import__" | "importlib.import_module" | "importlib.__import__" => {
                        if let Some(Val::Str(m)) = first {
                            self.import(&m, "", op, Some(&q));
                            return Val::Module(m);
                        }
                        return Val::Unknown;
                    }
                    "pkgutil.resolve_name" | "pydoc.locate" | "pydoc.locate.__call__" => {
                        if let Some(Val::Str(path)) = first {
                            let (m, n) = match path.split_once(':') {
                                Some((m, n)) => (m.to_owned(), n.to_owned()),
                                None => match path.rsplit_once('.') {
                                    Some((m, n)) => (m.to_owned(), n.to_owned()),
                                    None => (path.to_string(), String::new()),
                                },
                            };
                            self.import(&m, &n, op, Some(&q));
                            return if n.is_empty() {
                                Val::Module(Rc::from(m.as_str()))
                            } else {
                                Val::Global(Rc::new(Global { module: m, name: n }))
                            };
                        }
                        return Val::Unknown;
                    }
                    "operator.attrgetter" | "_operator.attrgetter" => {
                        if let Some(Val::Str(a)) = first {
                            return Val::AttrGetter(a);
                        }
                        return Val::Unknown;
                    }
                    "operator.methodcaller" | "_operator.methodcaller" => {
                        if let Some(Val::Str(a)) = first {
                            return Val::MethodCaller(a);
                        }
                        return Val::Unknown;
                    }
                    "dill._dill._create_array" => {
                        // `_create_array(f, args, state)` returns `f(*args)`.
                        if let (Some(f), Some(a)) = (first, second) {
                            return self.call(op, f, a);
                        }
                        return Val::Unknown;
                    }
                    "functools.partial" | "_functools.partial" => {
                        if let Some(f) = first {
                            return Val::Partial(Rc::new(f.capped()));
                        }
                        return Val::Unknown;
                    }
                    _ => {}
                }
                obj(func, args, None)
            }
            Val::AttrGetter(attr) => {
                let attr = attr.clone();
                match first {
                    Some(target) => self.getattr(op, &target, &attr, "operator.attrgetter"),
                    None => Val::Unknown,
                }
            }
            Val::MethodCaller(m) => {
                let m = m.clone();
                if let Some(target) = first {
                    let method = self.getattr(op, &target, &m, "operator.methodcaller");
                    return obj(method, seq(SeqKind::Tuple, Vec::new(), 0), None);
                }
                Val::Unknown
            }
            Val::Partial(inner) => {
                let inner = (**inner).clone();
                self.call(op, inner, args)
            }
            Val::Obj(_) | Val::Module(_) | Val::Unknown => {
                if matches!(func, Val::Unknown) || matches!(func, Val::Obj(_)) {
                    self.hit(
                        &rules::PICKLE_DYNAMIC_IMPORT,
                        Severity::High,
                        op,
                        "pickle calls a callable computed at load time, which cannot be resolved statically".to_owned(),
                        Some(format!("{}({})", show(&func), {
                            let mut s = String::new();
                            render_items(args.items(), &mut s, 1);
                            s
                        })),
                    );
                }
                obj(func, args, None)
            }
            _ => {
                self.hit(
                    &rules::PICKLE_MALFORMED,
                    Severity::Medium,
                    op,
                    format!("{} calls a value that is not callable", op.code),
                    Some(show(&func)),
                );
                obj(func, args, None)
            }
        }
    }

    fn count_getattr(&mut self, key: &str, resolved: bool) {
        if let Some(&i) = self.import_index.get(key) {
            if resolved {
                self.imports[i].resolved_calls += 1;
            } else {
                self.imports[i].unresolved_calls += 1;
            }
        }
    }

    /// `getattr(target, attr)`, and whether it was resolved to something classified. A plain
    /// method name on an instance is how pickle stores bound methods (`getattr(obj, 'forward')`);
    /// a dunder name is a reach into interpreter internals.
    fn getattr_checked(&mut self, op: &Op, target: &Val, attr: &str, via: &str) -> (Val, bool) {
        if attr.starts_with("__") && attr.ends_with("__") && attr.len() > 4 {
            self.hit(
                &rules::PICKLE_DANGEROUS_GLOBAL,
                Severity::Critical,
                op,
                format!("pickle reads the internal attribute {attr} through {via}: interpreter internals when the file is loaded"),
                Some(format!("{via}({}, {attr:?})", show(target))),
            );
            return (Val::Unknown, true);
        }
        match target {
            Val::Global(_) | Val::Module(_) => (self.getattr(op, target, attr, via), true),
            Val::Obj(o) => {
                let v = self.getattr(op, target, attr, via);
                // Resolved if the instance's class is itself resolved (its import is classified).
                let known = matches!(o.func, Val::Global(_));
                (v, known)
            }
            _ => (Val::Unknown, false),
        }
    }

    fn getattr(&mut self, op: &Op, target: &Val, attr: &str, via: &str) -> Val {
        match target {
            Val::Global(g) => {
                let name = format!("{}.{attr}", g.name);
                self.import(&g.module, &name, op, Some(via));
                Val::Global(Rc::new(Global {
                    module: g.module.clone(),
                    name,
                }))
            }
            Val::Module(m) => {
                self.import(m, attr, op, Some(via));
                Val::Global(Rc::new(Global {
                    module: m.to_string(),
                    name: attr.to_owned(),
                }))
            }
            Val::Obj(o) => {
                // An attribute set by BUILD: look it up in the state dict.
                if let Some(Val::Dict(d)) = &o.state {
                    for (k, v) in d.items.iter() {
                        if k.as_str() == Some(attr) {
                            return v.clone();
                        }
                    }
                }
                Val::Unknown
            }
            _ => Val::Unknown,
        }
    }

    fn step(&mut self, op: &Op) -> Result<Flow, Fail> {
        use OpCode as O;
        let malformed = |reason: &str| {
            (
                op.offset,
                op.code.name(),
                reason.to_owned(),
                &rules::PICKLE_MALFORMED,
            )
        };
        match (&op.code, &op.arg) {
            (O::PROTO | O::FRAME, _) => {}
            (O::STOP, _) => {
                self.pop(op)?;
                return Ok(Flow::Stop);
            }
            (O::MARK, _) => {
                if self.marks.len() >= MAX_STACK {
                    return Err((
                        op.offset,
                        op.code.name(),
                        "metastack deeper than MAX_STACK".into(),
                        &rules::PICKLE_LIMIT,
                    ));
                }
                let cur = std::mem::take(&mut self.stack);
                self.marks.push(cur);
            }
            (O::POP, _) => {
                if self.stack.is_empty() {
                    // CPython pops a MARK when the stack is empty.
                    self.pop_mark(op)?;
                } else {
                    self.pop(op)?;
                }
            }
            (O::POP_MARK, _) => {
                self.pop_mark(op)?;
            }
            (O::DUP, _) => {
                let v = self
                    .stack
                    .last()
                    .cloned()
                    .ok_or_else(|| malformed("DUP on an empty stack"))?;
                self.push(op, v)?;
            }
            (O::NONE, _) => self.push(op, Val::None)?,
            (O::NEWTRUE, _) => self.push(op, Val::Bool(true))?,
            (O::NEWFALSE, _) => self.push(op, Val::Bool(false))?,
            (
                O::INT | O::BININT | O::BININT1 | O::BININT2 | O::LONG | O::LONG1 | O::LONG4,
                Arg::Int(i),
            ) => self.push(op, Val::Int(*i))?,
            (O::INT | O::LONG | O::LONG1 | O::LONG4, Arg::BigInt(_)) => {
                self.push(op, Val::Unknown)?;
            }
            (O::FLOAT | O::BINFLOAT, _) => self.push(op, Val::Float)?,
            (
                O::STRING
                | O::BINSTRING
                | O::SHORT_BINSTRING
                | O::UNICODE
                | O::BINUNICODE
                | O::SHORT_BINUNICODE
                | O::BINUNICODE8,
                Arg::Str(p),
            ) => {
                let v = self.payload_val(op, p, true);
                self.push(op, v)?;
            }
            (O::BINBYTES | O::SHORT_BINBYTES | O::BINBYTES8 | O::BYTEARRAY8, Arg::Bytes(p)) => {
                let v = self.payload_val(op, p, false);
                self.push(op, v)?;
            }
            (O::EMPTY_LIST, _) => self.push(op, seq(SeqKind::List, Vec::new(), 0))?,
            (O::EMPTY_TUPLE, _) => self.push(op, seq(SeqKind::Tuple, Vec::new(), 0))?,
            (O::EMPTY_SET, _) => self.push(op, seq(SeqKind::Set, Vec::new(), 0))?,
            (O::EMPTY_DICT, _) => self.push(
                op,
                Val::Dict(Rc::new(Dict {
                    items: Rc::new(Vec::new()),
                    len: 0,
                    depth: 1,
                    weight: 1,
                })),
            )?,
            (O::LIST | O::TUPLE | O::FROZENSET, _) => {
                let items = self.pop_mark(op)?;
                let len = items.len() as u64;
                let kind = match op.code {
                    O::LIST => SeqKind::List,
                    O::TUPLE => SeqKind::Tuple,
                    _ => SeqKind::Set,
                };
                let weight = weights(&items).saturating_add(1);
                let kept: Vec<Val> = items.into_iter().take(MAX_ITEMS_KEPT).collect();
                self.push(op, seq_weighing(kind, kept, len, weight))?;
            }
            (O::TUPLE1 | O::TUPLE2 | O::TUPLE3, _) => {
                let n = match op.code {
                    O::TUPLE1 => 1,
                    O::TUPLE2 => 2,
                    _ => 3,
                };
                if self.stack.len() < n {
                    return Err(malformed("stack underflow"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(op, seq(SeqKind::Tuple, items, n as u64))?;
            }
            (O::DICT, _) => {
                let items = self.pop_mark(op)?;
                let d = make_dict(Vec::new(), 0, 1, items);
                self.push(op, d)?;
            }
            (O::APPEND | O::APPENDS | O::ADDITEMS, _) => {
                let new: Vec<Val> = if op.code == O::APPEND {
                    vec![self.pop(op)?]
                } else {
                    self.pop_mark(op)?
                };
                let before = self.stack.last().cloned();
                let top = self.top_mut(op)?;
                match top {
                    Val::Seq(s) => {
                        let len = s.len + new.len() as u64;
                        let weight = s.weight.saturating_add(weights(&new));
                        if s.items.len() >= MAX_ITEMS_KEPT {
                            // Full: count, share the kept items.
                            *top = Val::Seq(Rc::new(Seq {
                                kind: s.kind,
                                items: s.items.clone(),
                                len,
                                depth: s.depth,
                                weight,
                            }));
                        } else {
                            let kind = s.kind;
                            let mut items = (*s.items).clone();
                            items.extend(
                                new.into_iter()
                                    .take(MAX_ITEMS_KEPT.saturating_sub(items.len())),
                            );
                            *top = seq_weighing(kind, items, len, weight);
                        }
                    }
                    // list subclasses append through their own `append`/`extend`.
                    Val::Obj(_) | Val::Unknown => {}
                    _ => return Err(malformed("APPEND to a value that is not a list")),
                }
                self.refresh_memo(before.as_ref());
            }
            (O::SETITEM | O::SETITEMS, _) => {
                let new: Vec<Val> = if op.code == O::SETITEM {
                    let v = self.pop(op)?;
                    let k = self.pop(op)?;
                    vec![k, v]
                } else {
                    self.pop_mark(op)?
                };
                if !new.len().is_multiple_of(2) {
                    return Err(malformed("SETITEMS with an odd number of items"));
                }
                let before = self.stack.last().cloned();
                if before.as_ref().is_some_and(is_tensor) {
                    let shown = before.as_ref().map(show).unwrap_or_default();
                    self.hit(
                        &rules::TORCH_TENSOR_BOUNDS,
                        Severity::High,
                        op,
                        format!("{} applied to a tensor: item assignment into tensor memory at load time, with indices the file chooses", op.code.name()),
                        Some(format!("{shown}[...] = ...")),
                    );
                }
                let top = self.top_mut(op)?;
                match top {
                    Val::Dict(d) => {
                        let full = d.items.len() >= MAX_ITEMS_KEPT * 4;
                        let touches_kept = new.iter().step_by(2).any(|k| {
                            d.items.iter().any(
                                |(ek, _)| matches!((ek, k), (Val::Str(a), Val::Str(b)) if a == b),
                            )
                        });
                        if full && !touches_kept {
                            *top = Val::Dict(Rc::new(Dict {
                                items: d.items.clone(),
                                len: d.len + (new.len() / 2) as u64,
                                depth: d.depth,
                                weight: d.weight.saturating_add(weights(&new)),
                            }));
                        } else {
                            *top = make_dict((*d.items).clone(), d.len, d.weight, new);
                        }
                    }
                    Val::Obj(_) | Val::Unknown => {}
                    _ => return Err(malformed("SETITEM on a value that is not a dict")),
                }
                self.refresh_memo(before.as_ref());
            }
            (O::GLOBAL, Arg::Global(m, n)) => {
                self.import(m, n, op, None);
                self.push(
                    op,
                    Val::Global(Rc::new(Global {
                        module: m.clone(),
                        name: n.clone(),
                    })),
                )?;
            }
            (O::STACK_GLOBAL, _) => {
                let name = self.pop(op)?;
                let module = self.pop(op)?;
                if let (Some(m), Some(n)) = (module.as_str(), name.as_str()) {
                    let (m, n) = (m.to_owned(), n.to_owned());
                    self.import(&m, &n, op, None);
                    self.push(op, Val::Global(Rc::new(Global { module: m, name: n })))?;
                } else {
                    self.hit(
                        &rules::PICKLE_DYNAMIC_IMPORT,
                        Severity::High,
                        op,
                        "STACK_GLOBAL operands are not constant strings; the import is computed at load time".to_owned(),
                        Some(format!("module={}, name={}", show(&module), show(&name))),
                    );
                    self.push(op, Val::Unknown)?;
                }
            }
            (O::INST, Arg::Global(m, n)) => {
                let args = self.pop_mark(op)?;
                self.import(m, n, op, None);
                let f = Val::Global(Rc::new(Global {
                    module: m.clone(),
                    name: n.clone(),
                }));
                let len = args.len() as u64;
                let v = self.call(
                    op,
                    f,
                    seq(
                        SeqKind::Tuple,
                        args.into_iter().take(MAX_ITEMS_KEPT).collect(),
                        len,
                    ),
                );
                self.push(op, v)?;
            }
            (O::OBJ, _) => {
                let mut items = self.pop_mark(op)?;
                if items.is_empty() {
                    return Err(malformed("OBJ without a class"));
                }
                let cls = items.remove(0);
                let len = items.len() as u64;
                let v = self.call(
                    op,
                    cls,
                    seq(
                        SeqKind::Tuple,
                        items.into_iter().take(MAX_ITEMS_KEPT).collect(),
                        len,
                    ),
                );
                self.push(op, v)?;
            }
            (O::REDUCE | O::NEWOBJ, _) => {
                let args = self.pop(op)?;
                let f = self.pop(op)?;
                if !matches!(args, Val::Seq(_) | Val::Unknown) {
                    return Err(malformed(&format!("{} arguments are not a tuple", op.code)));
                }
                let v = self.call(op, f, args);
                self.push(op, v)?;
            }
            (O::NEWOBJ_EX, _) => {
                let _kwargs = self.pop(op)?;
                let args = self.pop(op)?;
                let f = self.pop(op)?;
                let v = self.call(op, f, args);
                self.push(op, v)?;
            }
            (O::BUILD, _) => {
                let state = self.pop(op)?;
                let target = self
                    .stack
                    .last()
                    .cloned()
                    .ok_or_else(|| malformed("BUILD on an empty stack"))?;
                match &target {
                    Val::Global(g) => {
                        let q = format!("{}.{}", g.module, g.name);
                        self.hit(
                            &rules::PICKLE_ATTRIBUTE_OVERWRITE,
                            Severity::Critical,
                            op,
                            format!("BUILD sets attributes on the imported object {q} itself, not on an instance"),
                            Some(format!("{q}.__setstate__({})", show(&state))),
                        );
                    }
                    Val::Module(m) => {
                        self.hit(
                            &rules::PICKLE_ATTRIBUTE_OVERWRITE,
                            Severity::Critical,
                            op,
                            format!("BUILD sets attributes on module {m}"),
                            Some(show(&state)),
                        );
                    }
                    Val::Obj(_) if is_tensor(&target) => {
                        self.hit(
                            &rules::TORCH_TENSOR_BOUNDS,
                            Severity::High,
                            op,
                            "BUILD applied to a tensor: the weights_only loader runs Tensor.set_(*state), re-pointing the tensor at a storage, size and stride the file chooses".to_owned(),
                            Some(format!("{}.set_({})", show(&target), show(&state))),
                        );
                    }
                    Val::Obj(o) => {
                        if let Val::Global(g) = &o.func {
                            let q = format!("{}.{}", g.module, g.name);
                            if q.ends_with("NumpyArrayWrapper")
                                || (q == "copyreg._reconstructor" && is_joblib_wrapper(&o.args))
                            {
                                self.pending_joblib = joblib_array(&state);
                                if self.pending_joblib.is_none() {
                                    return Err(malformed(
                                        "joblib array wrapper with an unreadable shape or dtype",
                                    ));
                                }
                            }
                        }
                        let v = obj(o.func.clone(), o.args.clone(), Some(state));
                        if let Some(top) = self.stack.last_mut() {
                            *top = v;
                        }
                    }
                    _ => {}
                }
            }
            (O::PUT | O::BINPUT | O::LONG_BINPUT, Arg::Int(i)) => {
                let idx = u64::try_from(*i).map_err(|_| malformed("negative memo index"))?;
                self.memo_put(op, idx)?;
            }
            (O::MEMOIZE, _) => {
                let idx = self.memo.count as u64;
                self.memo_put(op, idx)?;
            }
            (O::GET | O::BINGET | O::LONG_BINGET, Arg::Int(i)) => {
                let idx = u64::try_from(*i).map_err(|_| malformed("negative memo index"))?;
                let v = match self.memo.get(idx) {
                    Some(v) => v.clone(),
                    None if self.memo.saturated => Val::Unknown,
                    None => return Err(malformed(&format!("memo key {idx} was never stored"))),
                };
                self.push(op, v)?;
            }
            (O::PERSID, _) => self.push(op, Val::Persistent)?,
            (O::BINPERSID, _) => {
                let pid = self.pop(op)?;
                let v = match storage_ref(&pid, op.offset) {
                    Some(s) => {
                        if self.storages.len() < MAX_STORAGES {
                            self.storages.push(s.clone());
                        }
                        Val::Storage(Rc::new(s))
                    }
                    None => Val::Persistent,
                };
                self.push(op, v)?;
            }
            (O::EXT1 | O::EXT2 | O::EXT4, Arg::Int(code)) => {
                self.hit(
                    &rules::PICKLE_EXTENSION_CODE,
                    Severity::High,
                    op,
                    format!("{} imports the global registered under extension code {code}, which cannot be resolved from the file", op.code),
                    Some(format!("{}({code})", op.code)),
                );
                self.push(op, Val::Unknown)?;
            }
            (O::NEXT_BUFFER | O::READONLY_BUFFER, _) => {
                if op.code == O::NEXT_BUFFER {
                    self.push(op, Val::Unknown)?;
                }
            }
            _ => return Err(malformed("opcode with an unexpected argument")),
        }
        Ok(Flow::Continue)
    }

    /// Runs one stream to STOP. Returns `Ok(true)` at STOP, `Ok(false)` at the end of data before any opcode.
    fn run(&mut self, depth: u32, analysis: &mut Analysis) -> Result<bool, Fail> {
        let mut first = true;
        loop {
            let op = match self.ops.next_op() {
                Ok(Some(op)) => op,
                Ok(None) if first => return Ok(false),
                Ok(None) => {
                    return Err((
                        self.ops.pos(),
                        "",
                        "stream ends without STOP (truncated)".into(),
                        &rules::PICKLE_MALFORMED,
                    ));
                }
                Err(e) => return Err(pickle_fail(&e)),
            };
            first = false;
            self.opcodes += 1;
            if self.opcodes > MAX_OPCODES {
                return Err((
                    op.offset,
                    op.code.name(),
                    format!("more than MAX_OPCODES ({MAX_OPCODES}) opcodes"),
                    &rules::PICKLE_LIMIT,
                ));
            }
            if let Flow::Stop = self.step(&op)? {
                return Ok(true);
            }
            if let Some(arr) = self.pending_joblib.take() {
                match arr {
                    JoblibArray::Raw { bytes, padded } => {
                        if padded {
                            let pad = self.ops.raw_byte().map_err(|e| {
                                (
                                    self.ops.pos(),
                                    "BUILD",
                                    format!("joblib padding: {e}"),
                                    &rules::PICKLE_MALFORMED,
                                )
                            })?;
                            let pad = pad.ok_or_else(|| {
                                (
                                    self.ops.pos(),
                                    "BUILD",
                                    "joblib array data is truncated".to_owned(),
                                    &rules::PICKLE_MALFORMED,
                                )
                            })?;
                            self.ops.skip(u64::from(pad)).map_err(|_| {
                                (
                                    self.ops.pos(),
                                    "BUILD",
                                    "joblib padding is truncated".to_owned(),
                                    &rules::PICKLE_MALFORMED,
                                )
                            })?;
                        }
                        self.ops.skip(bytes).map_err(|_| {
                            (
                                op.offset,
                                "BUILD",
                                format!(
                                    "joblib array declares {bytes} bytes but the file ends first"
                                ),
                                &rules::PICKLE_MALFORMED,
                            )
                        })?;
                    }
                    JoblibArray::Objects => {
                        // joblib writes object arrays as a separate pickle right here.
                        if depth >= MAX_NESTING {
                            return Err((
                                op.offset,
                                "BUILD",
                                format!("pickles nested deeper than MAX_NESTING ({MAX_NESTING})"),
                                &rules::PICKLE_LIMIT,
                            ));
                        }
                        let src = self.ops.source();
                        let inner = analyze_from(src, self.ops.pos(), depth + 1, StreamMode::One);
                        self.hits.extend(inner.hits.into_iter().map(|mut h| {
                            h.message = format!("in joblib object array: {}", h.message);
                            h
                        }));
                        self.embedded.extend(inner.embedded);
                        analysis.imports += inner.imports;
                        self.ops.seek(inner.end);
                        if inner.error.is_some() {
                            return Err((
                                inner.end,
                                "",
                                "joblib object array pickle is malformed".into(),
                                &rules::PICKLE_MALFORMED,
                            ));
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, analysis: &mut Analysis) {
        analysis.imports += self.imports.len();
        analysis.calls += std::mem::take(&mut self.calls);
        analysis.storages.append(&mut self.storages);
        for rec in self.imports.drain(..) {
            // `getattr` whose every use was resolved: what it reached is reported on its own.
            let is_getattr = matches!(
                rec.qual.as_str(),
                "builtins.getattr" | "__builtin__.getattr"
            );
            if is_getattr && rec.resolved_calls > 0 && rec.unresolved_calls == 0 {
                continue;
            }
            let count = if rec.count > 1 {
                format!(" ({} times)", rec.count)
            } else {
                String::new()
            };
            let via = rec
                .via
                .as_ref()
                .map(|v| format!(" through {v}"))
                .unwrap_or_default();
            let mut evidence = rec.call.clone().unwrap_or_else(|| rec.qual.clone());
            if let Some(v) = &rec.via {
                evidence = format!("{evidence} [resolved through {v}]");
            }
            let (rule, severity, message) = match rec.verdict {
                Verdict::Safe => continue,
                Verdict::Dangerous { severity, what } => (
                    &rules::PICKLE_DANGEROUS_GLOBAL,
                    severity,
                    format!(
                        "pickle imports {}{via}{count}: {what} when the file is loaded",
                        rec.qual
                    ),
                ),
                Verdict::Unknown { severity, why } => (
                    &rules::PICKLE_UNKNOWN_GLOBAL,
                    severity,
                    format!(
                        "pickle imports {}{via}{count}, which is not known to be safe: {why}",
                        rec.qual
                    ),
                ),
            };
            if self.hits.len() < MAX_HITS {
                self.hits.push(Hit {
                    rule,
                    severity,
                    offset: rec.offset,
                    opcode: rec.opcode,
                    message,
                    evidence: Some(evidence),
                });
            }
        }
        self.import_index.clear();
        analysis.hits.append(&mut self.hits);
        analysis.embedded.append(&mut self.embedded);
    }
}

fn is_joblib_wrapper(args: &Val) -> bool {
    matches!(args.items().first(), Some(Val::Global(g)) if g.name.ends_with("NumpyArrayWrapper"))
}

/// `items` (kept, `len` in all, weighing `weight`) with the key/value pairs of `flat` set.
fn make_dict(mut items: Vec<(Val, Val)>, len: u64, weight: u64, flat: Vec<Val>) -> Val {
    let weight = weight.saturating_add(weights(&flat));
    let mut len = len;
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        len += 1;
        if let Some(slot) = items
            .iter_mut()
            .find(|(ek, _)| matches!((ek, &k), (Val::Str(a), Val::Str(b)) if a == b))
        {
            slot.1 = v.capped();
        } else if items.len() < MAX_ITEMS_KEPT * 4 {
            items.push((k.capped(), v.capped()));
        }
    }
    let depth = items
        .iter()
        .map(|(k, v)| k.depth().max(v.depth()))
        .max()
        .unwrap_or(0)
        + 1;
    Val::Dict(Rc::new(Dict {
        items: Rc::new(items),
        len,
        depth,
        weight,
    }))
}

fn dict_get<'v>(d: &'v Val, key: &str) -> Option<&'v Val> {
    match d {
        Val::Dict(d) => d
            .items
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Works out how many raw bytes joblib wrote after a `NumpyArrayWrapper` BUILD.
fn joblib_array(state: &Val) -> Option<JoblibArray> {
    let shape = dict_get(state, "shape")?;
    let Val::Seq(s) = shape else { return None };
    if s.items.len() as u64 != s.len {
        return None;
    }
    let mut count: u64 = 1;
    for d in s.items.iter() {
        let Val::Int(i) = d else { return None };
        count = count.checked_mul(u64::try_from(*i).ok()?)?;
    }
    let dtype = dict_get(state, "dtype")?;
    let Val::Obj(o) = dtype else { return None };
    let type_str = o.args.items().first().and_then(Val::as_str)?.to_owned();
    let st = o.state.as_ref().map_or(&[][..], Val::items);
    let flags = match st.get(7) {
        Some(Val::Int(f)) => *f,
        _ => 0,
    };
    if type_str.starts_with('O') || flags & 1 != 0 {
        return Some(JoblibArray::Objects);
    }
    let elsize = match st.get(5) {
        Some(Val::Int(e)) if *e > 0 => u64::try_from(*e).ok()?,
        _ => {
            let t = type_str.trim_start_matches(['<', '>', '|', '=']);
            let n: u64 = t.get(1..)?.parse().ok()?;
            if t.starts_with('U') { n * 4 } else { n }
        }
    };
    // joblib >= 1.2 pads array data for memory mapping and records the alignment; older
    // versions (0.10 to 1.1) write `allow_mmap` but no padding byte.
    let padded = matches!(dict_get(state, "allow_mmap"), Some(Val::Bool(true)))
        && matches!(
            dict_get(state, "numpy_array_alignment_bytes"),
            Some(Val::Int(_))
        );
    Some(JoblibArray::Raw {
        bytes: count.checked_mul(elsize)?,
        padded,
    })
}

fn pickle_fail(e: &PickleError) -> Fail {
    let rule = if matches!(e, PickleError::Limit { .. }) {
        &rules::PICKLE_LIMIT
    } else {
        &rules::PICKLE_MALFORMED
    };
    (e.offset(), "", e.to_string(), rule)
}

/// Deepest nesting of pickles inside pickles (joblib object arrays).
pub const MAX_NESTING: u32 = 8;

/// How many streams to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Exactly one stream.
    One,
    /// Up to `n` streams (legacy PyTorch: magic, protocol, sys info, model, storage keys).
    Upto(u32),
    /// Streams until the end of data; trailing bytes that are not a pickle are reported.
    All,
}

/// Analyses pickle streams in `src` from offset 0.
pub fn analyze(src: &dyn ReadAt, mode: StreamMode) -> Analysis {
    analyze_from(src, 0, 0, mode)
}

fn analyze_from(src: &dyn ReadAt, start: u64, depth: u32, mode: StreamMode) -> Analysis {
    let mut analysis = Analysis::default();
    let mut pos = start;
    loop {
        let mut m = Machine::new(src, pos);
        let result = m.run(depth, &mut analysis);
        let end = m.ops.pos();
        match result {
            Ok(true) => {
                analysis.streams += 1;
                m.finish(&mut analysis);
                pos = end;
                let more = match mode {
                    StreamMode::One => false,
                    StreamMode::Upto(n) => analysis.streams < n,
                    StreamMode::All => true,
                };
                if !more || pos >= src.len() {
                    break;
                }
                if mode == StreamMode::All {
                    let head = src.read_prefix(pos, 16).unwrap_or_default();
                    let next_ok = head
                        .first()
                        .is_some_and(|&b| mlsec_formats::pickle::OpCode::from_byte(b).is_some());
                    if !next_ok
                        || !(mlsec_formats::pickle::looks_like_pickle(&head)
                            || head.first() == Some(&0x80))
                    {
                        analysis.hits.push(Hit {
                            rule: &rules::PICKLE_MALFORMED,
                            severity: Severity::Low,
                            offset: pos,
                            opcode: "",
                            message: format!(
                                "{} bytes after the last pickle stream are not a pickle",
                                src.len() - pos
                            ),
                            evidence: None,
                        });
                        break;
                    }
                }
            }
            Ok(false) => break,
            Err((offset, opcode, reason, rule)) => {
                m.finish(&mut analysis);
                let sev = if std::ptr::eq(rule, &raw const rules::PICKLE_LIMIT) {
                    Severity::High
                } else {
                    Severity::Medium
                };
                analysis.hits.push(Hit { rule, severity: sev, offset, opcode, message: format!("pickle analysis stopped: {reason}; everything resolved before this point is reported"), evidence: None });
                analysis.error = Some(reason);
                pos = end;
                break;
            }
        }
    }
    analysis.end = pos;
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8]) -> Analysis {
        analyze(&data, StreamMode::All)
    }

    fn has(a: &Analysis, needle: &str, sev: Severity) -> bool {
        a.hits.iter().any(|h| {
            h.severity == sev
                && (h.message.contains(needle)
                    || h.evidence.as_deref().is_some_and(|e| e.contains(needle)))
        })
    }

    #[test]
    fn protocol0_system() {
        let a = run(b"cposix\nsystem\n(S'echo hi'\ntR.");
        assert!(has(&a, "posix.system", Severity::Critical), "{:?}", a.hits);
        assert!(
            a.hits
                .iter()
                .any(|h| h.evidence.as_deref() == Some("posix.system(\"echo hi\")")),
            "{:?}",
            a.hits
        );
    }

    #[test]
    fn memoize_desync() {
        // BINPUT 0 then MEMOIZE stores at index 1 (len(memo)), as CPython does.
        let mut p = b"\x80\x04".to_vec();
        p.extend_from_slice(b"\x8c\x05posixq\x00"); // 'posix' at memo 0
        p.extend_from_slice(b"\x8c\x06system\x94"); // 'system' at memo 1 via MEMOIZE
        p.extend_from_slice(b"0h\x00h\x01\x93"); // POP, GET 0, GET 1, STACK_GLOBAL
        p.extend_from_slice(b"\x8c\x02id\x85R.");
        let a = run(&p);
        assert!(has(&a, "posix.system", Severity::Critical), "{:?}", a.hits);
    }

    #[test]
    fn getattr_chain() {
        // getattr(__import__('os'), 'system')('id')
        let p = b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'id'\ntR.";
        let a = run(p);
        assert!(has(&a, "os.system", Severity::Critical), "{:?}", a.hits);
    }

    #[test]
    fn build_on_global_is_gadget() {
        let p = b"cnumpy\nload\n}S'__defaults__'\n(I1\ntsb.";
        let a = run(p);
        assert!(a.hits.iter().any(|h| h.rule.id == "PKL005"), "{:?}", a.hits);
    }

    #[test]
    fn broken_pickle_still_reports_payload() {
        let a = run(b"cos\nsystem\n(S'x'\ntR\xff");
        assert!(has(&a, "os.system", Severity::Critical));
        assert!(a.hits.iter().any(|h| h.rule.id == "PKL006"));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.push(b'.');
        let a = run(&p);
        assert!(a.error.is_none(), "{:?}", a.error);
    }

    #[test]
    fn sparse_and_dense_memo_keys() {
        // LONG_BINPUT at a huge key, MEMOIZE after it uses len(memo) == 1.
        let mut p = b"\x80\x04\x8c\x05posixr\x00\xca\x9a\x3b".to_vec();
        p.extend_from_slice(b"\x8c\x06system\x940");
        p.extend_from_slice(b"j\x00\xca\x9a\x3bh\x01\x93N\x85R.");
        let a = run(&p);
        assert!(has(&a, "posix.system", Severity::Critical), "{:?}", a.hits);
    }

    #[test]
    fn memo_bomb_is_linear() {
        // A list appended to itself through the memo many times.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..100_000 {
            p.extend_from_slice(b"h\x00a");
        }
        p.push(b'.');
        let a = run(&p);
        assert!(a.error.is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = run(&data);
        }

        #[test]
        fn never_panics_on_opcode_soup(ops in proptest::collection::vec(proptest::sample::select(b"()]}tlde.0123aubsRQNhqgjpr\x85\x86\x87\x93\x94\x81\x88\x89K".to_vec()), 0..256)) {
            let mut data = b"\x80\x04".to_vec();
            for o in ops {
                data.push(o);
                if matches!(o, b'h' | b'q' | b'K') { data.push(0); }
            }
            let _ = run(&data);
        }
    }
}
