//! Python analysis on ruff's AST: name resolution (imports, aliases, constants, `**kwargs`
//! dicts), argument states, a little model-output taint, and the rules.

use std::collections::HashMap;

use mlsec_diagnostics::{Finding, Location, Rule, Severity};
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, Stmt};
use ruff_text_size::Ranged;

use crate::rules::{
    AGENT_CODE_EXECUTION, EVAL_MODEL_OUTPUT, HF_TRUST_REMOTE_CODE, HF_UNPINNED_REVISION,
    KERAS_UNSAFE_MODE, NUMPY_ALLOW_PICKLE, PICKLE_LOAD, SERVER_EXPOSED, SYSTEM_PROMPT_INJECTION,
    TLS_VERIFY_DISABLED, TORCH_LOAD_UNSAFE, YAML_UNSAFE_LOAD,
};

/// What a name or expression is known to be.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A module, class or function, by dotted name (`torch.load`).
    Qualified(String),
    Bool(bool),
    Str(String),
    None,
    /// Another literal (number, bytes, ...).
    OtherLiteral,
    /// A dict literal or `dict(...)` with constant keys.
    Dict(Vec<(String, Value)>),
    List(Vec<Value>),
    /// Derived from a model or LLM call.
    ModelOutput,
    /// Derived from a parameter of an agent tool (chosen by the model).
    ToolInput,
    Unknown,
}

impl Value {
    /// Model output or a tool's model-chosen argument.
    fn tainted(&self) -> bool {
        matches!(self, Value::ModelOutput | Value::ToolInput)
    }
}

/// Most nodes of one expression searched for tainted names.
const TAINT_BUDGET: usize = 512;

/// The `Name` and `Call` nodes of an expression, outermost first, at most [`TAINT_BUDGET`].
#[derive(Default)]
struct Leaves<'e> {
    out: Vec<&'e Expr>,
    seen: usize,
}

impl<'e> Visitor<'e> for Leaves<'e> {
    fn visit_expr(&mut self, e: &'e Expr) {
        self.seen += 1;
        if self.seen > TAINT_BUDGET {
            return;
        }
        if matches!(e, Expr::Name(_) | Expr::Call(_)) {
            self.out.push(e);
        }
        // A lambda's body runs later, on its own arguments.
        if !matches!(e, Expr::Lambda(_)) {
            visitor::walk_expr(self, e);
        }
    }
}

/// The state of one call argument.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Absent,
    Known(Value),
    /// Passed, but not statically known (or possibly passed through an unknown `**kwargs`).
    Unknown,
}

impl Arg {
    fn is_true(&self) -> bool {
        matches!(self, Arg::Known(Value::Bool(true)))
    }
    fn is_false(&self) -> bool {
        matches!(self, Arg::Known(Value::Bool(false)))
    }
}

/// Maps byte offsets to 1-based line and column.
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    pub fn position(&self, src: &str, offset: usize) -> (u32, u32) {
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts[line];
        let col = src.get(start..offset).map_or(0, |s| s.chars().count());
        (line as u32 + 1, col as u32 + 1)
    }
}

/// Bindings of one scope, in source order; a name bound to two different values is unknown.
#[derive(Default, Clone)]
struct Scope {
    names: HashMap<String, Value>,
}

impl Scope {
    fn bind(&mut self, name: &str, v: Value) {
        match self.names.get(name) {
            Some(old) if *old != v => {
                self.names.insert(name.to_owned(), Value::Unknown);
            }
            _ => {
                self.names.insert(name.to_owned(), v);
            }
        }
    }
}

const PICKLE: &[&str] = &[
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "sklearn.externals.joblib.load",
    "pandas.read_pickle",
    "shelve.open",
    "torch.serialization._load",
    "jsonpickle.decode",
    "torch.package.PackageImporter",
    "pickle._loads",
    "pickle._load",
    "pickle._Unpickler",
    "pandas.compat.pickle_compat.load",
    "joblib.numpy_pickle.load",
];

const TOOLS: &[&str] = &[
    "PythonREPLTool",
    "PythonREPL",
    "PythonAstREPLTool",
    "ShellTool",
    "BashProcess",
    "TerminalTool",
];

const MODEL_CALLS: &[&str] = &[
    "generate",
    "invoke",
    "ainvoke",
    "predict",
    "complete",
    "completion",
    "chat",
    "run",
    "arun",
    "stream",
    "create",
    "generate_content",
    "text_generation",
    "chat_completion",
];

pub struct Analyzer<'a> {
    src: &'a str,
    lines: Lines,
    module: Scope,
    stack: Vec<Scope>,
    /// What the pre-pass found: agent tools and whether the module calls LLMs.
    facts: Facts,
    /// The agent tool whose body is being visited.
    tool: Option<String>,
    pub findings: Vec<(usize, &'static Rule, Severity, String, String)>,
}

/// Packages whose import marks a module as one that talks to LLMs.
const LLM_PACKAGES: &[&str] = &[
    "langchain",
    "langchain_core",
    "langchain_community",
    "langchain_experimental",
    "langchain_openai",
    "langgraph",
    "openai",
    "anthropic",
    "llama_index",
    "autogen",
    "autogen_agentchat",
    "crewai",
    "dspy",
    "litellm",
    "guidance",
    "semantic_kernel",
    "haystack",
    "smolagents",
    "cohere",
    "mistralai",
    "ollama",
    "vertexai",
    "agents",
    "mcp",
    "pydantic_ai",
];

/// Decorators that make a function an agent tool (`@tool`, `@mcp.tool()`, `@function_tool`).
const TOOL_DECORATORS: &[&str] = &[
    "tool",
    "function_tool",
    "kernel_function",
    "register_for_llm",
    "ai_function",
    "llm_tool",
    "call_tool",
    "tool_plain",
];

/// Calls that wrap a function into a tool (`Tool(func=f)`, `FunctionTool.from_defaults(fn=f)`).
const TOOL_WRAPPERS: &[&str] = &[
    "Tool",
    "StructuredTool",
    "from_function",
    "from_defaults",
    "FunctionTool",
    "register_function",
    "tool",
    "function_tool",
    "bind_tools",
];

/// Keywords of any call whose list (or dict) values are tools (`Agent(tools=[f])`).
const TOOL_LISTS: &[&str] = &["tools", "functions", "function_map"];

/// Base classes whose `_run`/`forward` methods receive model-chosen input.
const TOOL_METHODS: &[&str] = &["_run", "_arun", "forward"];

/// The last name of a dotted expression or of a call's callee (`mcp.tool()` is `tool`).
fn last_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Name(n) => Some(n.id.as_str()),
        Expr::Attribute(a) => Some(a.attr.as_str()),
        Expr::Call(c) => last_name(&c.func),
        _ => None,
    }
}

/// What a first look over the whole module finds.
#[derive(Default)]
struct Facts {
    /// Names of functions used as agent tools.
    tool_names: std::collections::HashSet<String>,
    /// Start offsets of function definitions that are tools by decorator or by class.
    tool_defs: std::collections::HashSet<usize>,
    /// The module imports an LLM framework or client.
    llm: bool,
}

impl<'e> Visitor<'e> for Facts {
    fn visit_stmt(&mut self, stmt: &'e Stmt) {
        match stmt {
            Stmt::Import(imp) => {
                for a in &imp.names {
                    let top = a.name.as_str().split('.').next().unwrap_or("");
                    self.llm |= LLM_PACKAGES.contains(&top);
                }
            }
            Stmt::ImportFrom(imp) => {
                let m = imp.module.as_ref().map_or("", |m| m.as_str());
                self.llm |=
                    imp.level == 0 && LLM_PACKAGES.contains(&m.split('.').next().unwrap_or(""));
            }
            Stmt::FunctionDef(f)
                if f.decorator_list.iter().any(|d| {
                    last_name(&d.expression).is_some_and(|n| TOOL_DECORATORS.contains(&n))
                }) =>
            {
                self.tool_defs.insert(f.range.start().to_usize());
            }
            Stmt::ClassDef(c) => {
                let tool_class = c
                    .bases()
                    .iter()
                    .any(|b| last_name(b).is_some_and(|n| n.ends_with("Tool") || n == "Toolkit"));
                if tool_class {
                    for s in &c.body {
                        if let Stmt::FunctionDef(f) = s
                            && TOOL_METHODS.contains(&f.name.as_str())
                        {
                            self.tool_defs.insert(f.range.start().to_usize());
                        }
                    }
                }
            }
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, e: &'e Expr) {
        if let Expr::Call(c) = e {
            let mut names = |x: &Expr| match x {
                Expr::Name(n) => {
                    self.tool_names.insert(n.id.to_string());
                }
                Expr::List(l) => {
                    for el in &l.elts {
                        if let Expr::Name(n) = el {
                            self.tool_names.insert(n.id.to_string());
                        }
                    }
                }
                Expr::Dict(d) => {
                    for item in &d.items {
                        if let Expr::Name(n) = &item.value {
                            self.tool_names.insert(n.id.to_string());
                        }
                    }
                }
                _ => {}
            };
            if last_name(&c.func).is_some_and(|n| TOOL_WRAPPERS.contains(&n)) {
                for a in &c.arguments.args {
                    names(a);
                }
                for k in &c.arguments.keywords {
                    if k.arg.as_ref().is_some_and(|a| {
                        matches!(a.as_str(), "func" | "fn" | "function" | "coroutine" | "f")
                    }) {
                        names(&k.value);
                    }
                }
            }
            for k in &c.arguments.keywords {
                if k.arg
                    .as_ref()
                    .is_some_and(|a| TOOL_LISTS.contains(&a.as_str()))
                {
                    names(&k.value);
                }
            }
        }
        visitor::walk_expr(self, e);
    }
}

impl<'a> Analyzer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            lines: Lines::new(src),
            module: Scope::default(),
            stack: Vec::new(),
            facts: Facts::default(),
            tool: None,
            findings: Vec::new(),
        }
    }

    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    fn scope(&self) -> &Scope {
        self.stack.last().unwrap_or(&self.module)
    }

    /// First pass over a block: imports and assignments (not inside nested functions or classes).
    fn collect(&self, body: &[Stmt], scope: &mut Scope) {
        for stmt in body {
            match stmt {
                Stmt::Import(imp) => {
                    for a in &imp.names {
                        let full = a.name.as_str();
                        if let Some(alias) = &a.asname {
                            scope.bind(alias.as_str(), Value::Qualified(full.to_owned()));
                        } else {
                            let top = full.split('.').next().unwrap_or(full);
                            scope.bind(top, Value::Qualified(top.to_owned()));
                        }
                    }
                }
                Stmt::ImportFrom(imp) => {
                    let module = imp.module.as_ref().map_or("", |m| m.as_str());
                    for a in &imp.names {
                        let local = a.asname.as_ref().unwrap_or(&a.name).as_str();
                        let full = if module.is_empty() {
                            a.name.to_string()
                        } else {
                            format!("{module}.{}", a.name.as_str())
                        };
                        scope.bind(local, Value::Qualified(full));
                    }
                }
                Stmt::Assign(asg) => {
                    let v = self.eval_in(&asg.value, scope);
                    for t in &asg.targets {
                        if let Expr::Name(n) = t {
                            scope.bind(n.id.as_str(), v.clone());
                        }
                    }
                }
                Stmt::AnnAssign(asg) => {
                    if let (Expr::Name(n), Some(v)) = (&*asg.target, &asg.value) {
                        let v = self.eval_in(v, scope);
                        scope.bind(n.id.as_str(), v);
                    }
                }
                Stmt::If(s) => {
                    self.collect(&s.body, scope);
                    for c in &s.elif_else_clauses {
                        self.collect(&c.body, scope);
                    }
                }
                Stmt::Try(s) => {
                    self.collect(&s.body, scope);
                    for h in &s.handlers {
                        let ast::ExceptHandler::ExceptHandler(h) = h;
                        self.collect(&h.body, scope);
                    }
                    self.collect(&s.orelse, scope);
                    self.collect(&s.finalbody, scope);
                }
                Stmt::With(s) => self.collect(&s.body, scope),
                Stmt::While(s) => self.collect(&s.body, scope),
                // `for block in blocks_of(llm_output):` taints `block`.
                Stmt::For(s) => {
                    if let Expr::Name(n) = &*s.target {
                        let v = self.eval_in(&s.iter, scope);
                        scope.bind(n.id.as_str(), if v.tainted() { v } else { Value::Unknown });
                    }
                    self.collect(&s.body, scope);
                }
                _ => {}
            }
        }
    }

    fn eval(&self, e: &Expr) -> Value {
        self.eval_in(e, self.scope())
    }

    /// What an expression is, as far as static resolution goes.
    fn eval_in(&self, e: &Expr, scope: &Scope) -> Value {
        let lookup = |name: &str| {
            scope
                .names
                .get(name)
                .or_else(|| self.module.names.get(name))
                .cloned()
        };
        match e {
            Expr::BooleanLiteral(b) => Value::Bool(b.value),
            Expr::StringLiteral(s) => Value::Str(s.value.to_str().to_owned()),
            Expr::NoneLiteral(_) => Value::None,
            Expr::NumberLiteral(_) | Expr::BytesLiteral(_) => Value::OtherLiteral,
            Expr::FString(_) if !self.src[e.range()].contains('{') => Value::Str(String::new()),
            Expr::Name(n) => lookup(n.id.as_str()).unwrap_or_else(|| match n.id.as_str() {
                b @ ("eval" | "exec" | "compile" | "open" | "__import__" | "dict" | "getattr") => {
                    Value::Qualified(format!("builtins.{b}"))
                }
                _ => Value::Unknown,
            }),
            Expr::Attribute(a) => match self.eval_in(&a.value, scope) {
                Value::Qualified(q) => Value::Qualified(format!("{q}.{}", a.attr.as_str())),
                v if v.tainted() => v,
                _ => Value::Unknown,
            },
            Expr::Subscript(s) => match self.eval_in(&s.value, scope) {
                v if v.tainted() => v,
                _ => Value::Unknown,
            },
            Expr::Dict(d) => {
                let mut items = Vec::new();
                for item in &d.items {
                    match (&item.key, self.eval_in(&item.value, scope)) {
                        (Some(k), v) => match self.eval_in(k, scope) {
                            Value::Str(k) => items.push((k, v)),
                            _ => return Value::Unknown,
                        },
                        (None, Value::Dict(inner)) => items.extend(inner),
                        (None, _) => return Value::Unknown,
                    }
                }
                Value::Dict(items)
            }
            Expr::List(l) => Value::List(l.elts.iter().map(|x| self.eval_in(x, scope)).collect()),
            Expr::Tuple(l) => Value::List(l.elts.iter().map(|x| self.eval_in(x, scope)).collect()),
            Expr::Call(c) => {
                let callee = self.eval_in(&c.func, scope);
                if callee == Value::Qualified("builtins.dict".into()) && c.arguments.args.is_empty()
                {
                    let mut items = Vec::new();
                    for k in &c.arguments.keywords {
                        match &k.arg {
                            Some(name) => items
                                .push((name.as_str().to_owned(), self.eval_in(&k.value, scope))),
                            None => match self.eval_in(&k.value, scope) {
                                Value::Dict(inner) => items.extend(inner),
                                _ => return Value::Unknown,
                            },
                        }
                    }
                    return Value::Dict(items);
                }
                if self.is_model_call(c) {
                    return Value::ModelOutput;
                }
                // `__import__('pickle')` and `importlib.import_module('pickle')` are the module.
                if let Value::Qualified(q) = &callee
                    && matches!(
                        q.as_str(),
                        "builtins.__import__" | "importlib.import_module"
                    )
                    && let Some(Value::Str(m)) =
                        c.arguments.args.first().map(|a| self.eval_in(a, scope))
                {
                    return Value::Qualified(m);
                }
                // What a call computes from model output (`out.strip()`, `extract_code(out)`,
                // `compile(out, ...)`) is still model output.
                self.derived(e, scope)
            }
            _ => self.derived(e, scope),
        }
    }

    /// The taint of an expression built from others (an f-string, `+`, a call): that of its
    /// first tainted part, searched within [`TAINT_BUDGET`] nodes; otherwise unknown.
    fn derived(&self, e: &Expr, scope: &Scope) -> Value {
        let mut leaves = Leaves::default();
        visitor::walk_expr(&mut leaves, e);
        for leaf in leaves.out {
            let v = match leaf {
                Expr::Name(_) => self.eval_in(leaf, scope),
                Expr::Call(c) if self.is_model_call(c) => Value::ModelOutput,
                _ => continue,
            };
            if v.tainted() {
                return v;
            }
        }
        Value::Unknown
    }

    fn is_model_call(&self, c: &ast::ExprCall) -> bool {
        let Expr::Attribute(a) = &*c.func else {
            return false;
        };
        let method = a.attr.as_str();
        if !MODEL_CALLS.contains(&method) {
            return false;
        }
        // `create` and `run` are too common alone: require an LLM-looking receiver chain.
        if matches!(method, "create" | "run" | "arun" | "stream") {
            let text = &self.src[a.value.range()];
            return [
                "completions",
                "chat",
                "messages",
                "responses",
                "llm",
                "chain",
                "agent",
                "model",
                "client",
            ]
            .iter()
            .any(|k| text.to_ascii_lowercase().contains(k));
        }
        if method == "predict" {
            // sklearn's predict returns arrays, not text; only LLM-ish receivers count.
            let text = self.src[a.value.range()].to_ascii_lowercase();
            return ["llm", "chain", "chat", "agent"]
                .iter()
                .any(|k| text.contains(k));
        }
        true
    }

    fn callee(&self, c: &ast::ExprCall) -> Option<String> {
        match self.eval(&c.func) {
            Value::Qualified(q) => Some(q),
            _ => None,
        }
    }

    /// The state of keyword `name` (or positional `pos`), seeing through `**dict`.
    fn arg(&self, c: &ast::ExprCall, name: &str, pos: Option<usize>) -> Arg {
        for k in &c.arguments.keywords {
            if k.arg.as_ref().is_some_and(|a| a.as_str() == name) {
                return match self.eval(&k.value) {
                    Value::Unknown | Value::ModelOutput | Value::ToolInput => Arg::Unknown,
                    v => Arg::Known(v),
                };
            }
        }
        if let Some(p) = pos
            && let Some(e) = c.arguments.args.get(p)
        {
            if matches!(e, Expr::Starred(_)) {
                return Arg::Unknown;
            }
            return match self.eval(e) {
                Value::Unknown | Value::ModelOutput | Value::ToolInput => Arg::Unknown,
                v => Arg::Known(v),
            };
        }
        let mut unknown_spread = false;
        for k in &c.arguments.keywords {
            if k.arg.is_none() {
                match self.eval(&k.value) {
                    Value::Dict(items) => {
                        if let Some((_, v)) = items.iter().rev().find(|(key, _)| key == name) {
                            return match v {
                                Value::Unknown | Value::ModelOutput | Value::ToolInput => {
                                    Arg::Unknown
                                }
                                v => Arg::Known(v.clone()),
                            };
                        }
                    }
                    _ => unknown_spread = true,
                }
            }
        }
        if unknown_spread
            || (pos.is_some()
                && c.arguments
                    .args
                    .iter()
                    .any(|a| matches!(a, Expr::Starred(_))))
        {
            Arg::Unknown
        } else {
            Arg::Absent
        }
    }

    fn report(
        &mut self,
        node: &impl Ranged,
        rule: &'static Rule,
        severity: Severity,
        message: String,
    ) {
        let evidence = self.snippet(node);
        self.findings.push((
            node.range().start().to_usize(),
            rule,
            severity,
            message,
            evidence,
        ));
    }

    fn snippet(&self, node: &impl Ranged) -> String {
        let text = &self.src[node.range()];
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 160 {
            format!("{}...", one_line.chars().take(157).collect::<String>())
        } else {
            one_line
        }
    }

    /// The non-constant parts of a string built at run time (the fields of an f-string, the
    /// operands of `+` and `%`, the arguments of `.format` and `.join`); `None` when `e` is not
    /// such a string.
    fn interpolated<'e>(&self, e: &'e Expr) -> Option<Vec<&'e Expr>> {
        let mut parts = Vec::new();
        match e {
            Expr::FString(f) => {
                for part in f.value.as_slice() {
                    if let ast::FStringPart::FString(fs) = part {
                        parts.extend(fs.elements.interpolations().map(|i| &*i.expression));
                    }
                }
            }
            Expr::BinOp(b) if b.op == ast::Operator::Add => {
                for side in [&*b.left, &*b.right] {
                    match self.interpolated(side) {
                        Some(inner) => parts.extend(inner),
                        None => parts.push(side),
                    }
                }
            }
            Expr::BinOp(b) if b.op == ast::Operator::Mod => match &*b.right {
                Expr::Tuple(t) => parts.extend(t.elts.iter()),
                Expr::Dict(d) => parts.extend(d.items.iter().map(|i| &i.value)),
                r => parts.push(r),
            },
            Expr::Call(c) => match &*c.func {
                Expr::Attribute(a) if matches!(a.attr.as_str(), "format" | "join") => {
                    parts.extend(c.arguments.args.iter());
                    parts.extend(c.arguments.keywords.iter().map(|k| &k.value));
                }
                _ => return None,
            },
            _ => return None,
        }
        parts.retain(|p| !matches!(self.eval(p), Value::Str(_)));
        Some(parts)
    }

    /// Whether a value put into a prompt is known not to carry anyone's text: a constant, a
    /// number, a date or time, a length, or a name that says it is a template part.
    fn is_safe_part(&self, e: &Expr) -> bool {
        /// Words that, making up the whole name, mark developer-side or clock values.
        const SAFE: &[&str] = &[
            "date",
            "time",
            "now",
            "today",
            "timestamp",
            "datetime",
            "year",
            "month",
            "day",
            "current",
            "prefix",
            "suffix",
            "template",
            "format",
            "instructions",
            "tool",
            "tools",
            "names",
            "descriptions",
            "schema",
            "language",
            "lang",
            "version",
            "model",
            "max",
            "min",
            "num",
            "count",
            "limit",
            "n",
            "k",
            "sep",
            "separator",
            "newline",
            "nl",
            "examples",
            "example",
            "fmt",
            "str",
            "iso",
            "utc",
            "zone",
            "tz",
        ];
        match self.eval(e) {
            Value::Str(_) | Value::OtherLiteral | Value::Bool(_) | Value::None => return true,
            Value::Qualified(q) if q.starts_with("datetime.") || q.starts_with("time.") => {
                return true;
            }
            _ => {}
        }
        match e {
            Expr::NumberLiteral(_) => true,
            Expr::Call(c) => {
                let callee = self.callee(c).unwrap_or_default();
                let last = last_name(&c.func).unwrap_or("");
                callee.starts_with("datetime.")
                    || callee.starts_with("time.")
                    || matches!(
                        last,
                        "strftime"
                            | "isoformat"
                            | "now"
                            | "today"
                            | "utcnow"
                            | "ctime"
                            | "len"
                            | "date"
                            | "time"
                    )
            }
            Expr::Name(_) | Expr::Attribute(_) => last_name(e).is_some_and(|n| {
                n.to_ascii_lowercase()
                    .split('_')
                    .filter(|w| !w.is_empty())
                    .all(|w| SAFE.contains(&w))
            }),
            _ => false,
        }
    }

    /// Whether an expression is a string built at run time from something that may carry
    /// someone's text (a timestamp or a constant template part does not count).
    fn is_dynamic_string(&self, e: &Expr) -> bool {
        self.interpolated(e)
            .is_some_and(|parts| parts.iter().any(|p| !self.is_safe_part(p)))
    }

    /// A prompt that puts instructions and user input in one string: Low, since delimiting
    /// cannot make it safe, only the roles and the guard can.
    fn check_single_prompt(&mut self, e: &'a Expr, how: &str) {
        if let Some(user) = self.user_part(e) {
            self.report(
                e,
                &SYSTEM_PROMPT_INJECTION,
                Severity::Low,
                format!("instructions and user input `{user}` joined into one prompt{how}: the input can override the instructions"),
            );
        }
    }

    /// The first interpolated part of a built string whose name says it is user input, when
    /// the string also holds instruction text of its own.
    fn user_part(&self, e: &Expr) -> Option<String> {
        const USER: &[&str] = &[
            "user",
            "query",
            "question",
            "input",
            "message",
            "msg",
            "request",
            "comment",
            "email",
            "review",
            "feedback",
            "document",
            "doc",
            "page",
            "html",
            "tweet",
            "post",
            "utterance",
            "ticket",
            "transcript",
            "userinput",
        ];
        let parts = self.interpolated(e)?;
        let letters = |t: &str| t.chars().filter(char::is_ascii_alphabetic).count();
        let own = letters(&self.src[e.range()])
            .saturating_sub(parts.iter().map(|p| letters(&self.src[p.range()])).sum());
        let spaces = |t: &str| t.matches(' ').count();
        let own_spaces = spaces(&self.src[e.range()])
            .saturating_sub(parts.iter().map(|p| spaces(&self.src[p.range()])).sum());
        // Instructions are words: `<s_question>{q}</s_question>` is a model's input format.
        if own < 12 || own_spaces < 2 {
            return None;
        }
        parts.into_iter().find_map(|p| {
            let name = match p {
                Expr::Name(_) | Expr::Attribute(_) | Expr::Subscript(_) => &self.src[p.range()],
                _ => return None,
            };
            name.to_ascii_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| USER.contains(&w))
                .then(|| name.to_owned())
        })
    }

    fn check_call(&mut self, c: &'a ast::ExprCall) {
        let name = self.callee(c);
        let q = name.as_deref().unwrap_or("");
        let method = match &*c.func {
            Expr::Attribute(a) => a.attr.as_str(),
            Expr::Name(n) => n.id.as_str(),
            _ => "",
        };

        // PY001 torch.load and the loaders that call it
        if matches!(
            q,
            "torch.load"
                | "torch.serialization.load"
                | "torch.hub.load_state_dict_from_url"
                | "torch.utils.model_zoo.load_url"
        ) {
            let q = q.trim_start_matches("torch.serialization.");
            match self.arg(c, "weights_only", None) {
                Arg::Known(Value::Bool(true)) => {}
                Arg::Known(Value::Bool(false)) => self.report(c, &TORCH_LOAD_UNSAFE, Severity::High, format!("{q} with weights_only=False unpickles arbitrary objects")),
                Arg::Absent => self.report(c, &TORCH_LOAD_UNSAFE, Severity::Medium, format!("{q} without weights_only=True: before torch 2.6 this unpickles arbitrary objects")),
                _ => self.report(c, &TORCH_LOAD_UNSAFE, Severity::Low, format!("{q} with a weights_only value that is not statically known")),
            }
        }
        // PY002 pickle and friends; `pickle.loads(pickle.dumps(x))` (a deep copy) reads only
        // what the program itself just wrote.
        let round_trip = q.ends_with(".loads")
            && c.arguments.args.first().is_some_and(|a| match a {
                Expr::Call(inner) => self.callee(inner).is_some_and(|d| {
                    d.ends_with(".dumps")
                        && PICKLE.contains(&d.replace(".dumps", ".loads").as_str())
                }),
                _ => false,
            });
        if PICKLE.contains(&q) && !round_trip {
            self.report(
                c,
                &PICKLE_LOAD,
                Severity::High,
                format!("{q} runs code embedded in the data it reads"),
            );
        }
        // PY003 numpy.load(allow_pickle=True)
        if q == "numpy.load" {
            match self.arg(c, "allow_pickle", Some(2)) {
                a if a.is_true() => self.report(
                    c,
                    &NUMPY_ALLOW_PICKLE,
                    Severity::High,
                    "numpy.load with allow_pickle=True unpickles object arrays".into(),
                ),
                Arg::Unknown => self.report(
                    c,
                    &NUMPY_ALLOW_PICKLE,
                    Severity::Low,
                    "numpy.load with an allow_pickle value that is not statically known".into(),
                ),
                _ => {}
            }
        }
        // PY004 yaml
        if q == "yaml.unsafe_load" || q == "yaml.unsafe_load_all" {
            self.report(
                c,
                &YAML_UNSAFE_LOAD,
                Severity::High,
                format!("{q} constructs arbitrary Python objects"),
            );
        }
        if q == "yaml.load" || q == "yaml.load_all" {
            match self.arg(c, "Loader", Some(1)) {
                Arg::Absent => self.report(
                    c,
                    &YAML_UNSAFE_LOAD,
                    Severity::High,
                    format!(
                        "{q} without Loader= (PyYAML < 6 defaults to an unsafe loader; 6 raises)"
                    ),
                ),
                Arg::Known(Value::Qualified(l))
                    if !["SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"]
                        .iter()
                        .any(|s| l.ends_with(s)) =>
                {
                    self.report(
                        c,
                        &YAML_UNSAFE_LOAD,
                        Severity::High,
                        format!("{q} with Loader={l}, which constructs Python objects"),
                    );
                }
                _ => {}
            }
        }
        // PY005 keras: unsafe deserialization switched on for the whole process
        if q.ends_with("enable_unsafe_deserialization")
            && (q.starts_with("keras.")
                || q.starts_with("tensorflow.keras.")
                || q.starts_with("tf_keras."))
        {
            self.report(
                c,
                &KERAS_UNSAFE_MODE,
                Severity::High,
                format!("{q}() lets every later load_model deserialize Lambda bytecode"),
            );
        }
        // PY010 torch.hub.load imports the repository's hubconf.py
        if q == "torch.hub.load"
            && !matches!(self.arg(c, "source", None), Arg::Known(Value::Str(s)) if s == "local")
        {
            self.report(
                c,
                &HF_TRUST_REMOTE_CODE,
                Severity::High,
                "torch.hub.load imports and runs hubconf.py from a GitHub repository".into(),
            );
        }
        // PY005 keras safe_mode=False
        if method == "load_model"
            && (q.starts_with("keras.")
                || q.starts_with("tensorflow.keras.")
                || q.starts_with("tf_keras."))
            && self.arg(c, "safe_mode", None).is_false()
        {
            self.report(
                c,
                &KERAS_UNSAFE_MODE,
                Severity::High,
                "load_model with safe_mode=False deserializes Lambda bytecode".into(),
            );
        }
        // PY010 trust_remote_code=True (any call)
        if self.arg(c, "trust_remote_code", None).is_true() {
            self.report(
                c,
                &HF_TRUST_REMOTE_CODE,
                Severity::High,
                "trust_remote_code=True imports Python from the model repository".into(),
            );
        }
        // PY011 unpinned Hub downloads
        let repo = match (method, q) {
            ("from_pretrained", _) => Some(self.arg(c, "pretrained_model_name_or_path", Some(0))),
            (
                _,
                "huggingface_hub.hf_hub_download"
                | "huggingface_hub.snapshot_download"
                | "huggingface_hub.file_download.hf_hub_download",
            ) => Some(self.arg(c, "repo_id", Some(0))),
            (_, "datasets.load_dataset" | "datasets.load_dataset_builder") => {
                match self.arg(c, "path", Some(0)) {
                    Arg::Known(Value::Str(p)) if PACKAGED_BUILDERS.contains(&p.as_str()) => None,
                    a => Some(a),
                }
            }
            (_, "transformers.pipeline" | "transformers.pipelines.pipeline") => {
                match self.arg(c, "model", Some(1)) {
                    Arg::Absent => None,
                    a => Some(a),
                }
            }
            _ => None,
        };
        if let Some(Arg::Known(Value::Str(id))) = repo
            && looks_like_hub_id(&id)
        {
            match self.arg(c, "revision", None) {
                Arg::Known(Value::Str(rev)) if is_commit(&rev) => {}
                Arg::Known(Value::Str(rev)) => self.report(
                    c,
                    &HF_UNPINNED_REVISION,
                    Severity::Medium,
                    format!("`{id}` at revision `{rev}`, a branch or tag that can move"),
                ),
                Arg::Absent => self.report(
                    c,
                    &HF_UNPINNED_REVISION,
                    Severity::Medium,
                    format!(
                        "`{id}` without a pinned revision: the repository's latest commit is loaded"
                    ),
                ),
                _ => self.report(
                    c,
                    &HF_UNPINNED_REVISION,
                    Severity::Low,
                    format!("`{id}` with a revision that is not statically known"),
                ),
            }
        }
        // PY020 / PY030: model output or a tool's model-chosen argument run as code or as a
        // shell command.
        self.check_execution(c, q, method);
        // PY030 agent tools
        let last = q.rsplit('.').next().unwrap_or(method);
        if TOOLS.contains(&last) || TOOLS.contains(&method) {
            self.report(
                c,
                &AGENT_CODE_EXECUTION,
                Severity::High,
                format!("{last} lets the agent run code on this host"),
            );
        }
        if last == "load_tools"
            && let Arg::Known(Value::List(items)) = self.arg(c, "tool_names", Some(0))
        {
            for it in items {
                if let Value::Str(t) = it
                    && ["python_repl", "terminal", "shell", "bash"].contains(&t.as_str())
                {
                    self.report(
                        c,
                        &AGENT_CODE_EXECUTION,
                        Severity::High,
                        format!("load_tools gives the agent the `{t}` tool"),
                    );
                }
            }
        }
        for flag in [
            "allow_dangerous_code",
            "allow_dangerous_requests",
            "allow_dangerous_deserialization",
        ] {
            if self.arg(c, flag, None).is_true() {
                self.report(
                    c,
                    &AGENT_CODE_EXECUTION,
                    Severity::High,
                    format!("{flag}=True"),
                );
            }
        }
        if let Arg::Known(Value::Dict(items)) = self.arg(c, "code_execution_config", None)
            && items
                .iter()
                .any(|(k, v)| k == "use_docker" && *v == Value::Bool(false))
        {
            self.report(
                c,
                &AGENT_CODE_EXECUTION,
                Severity::High,
                "AutoGen executes generated code without Docker (use_docker=False)".into(),
            );
        }
        // PY040 system prompts
        if last == "SystemMessage" || last == "SystemMessagePromptTemplate" {
            let content = c
                .arguments
                .keywords
                .iter()
                .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "content"))
                .map(|k| &k.value)
                .or_else(|| c.arguments.args.first());
            if let Some(content) = content
                && self.is_dynamic_string(content)
            {
                self.report(
                    content,
                    &SYSTEM_PROMPT_INJECTION,
                    Severity::Medium,
                    "system message built from non-constant text".into(),
                );
            }
        }
        if let Some(k) = c.arguments.keywords.iter().find(|k| {
            k.arg.as_ref().is_some_and(|a| a.as_str() == "instructions")
                || k.arg
                    .as_ref()
                    .is_some_and(|a| a.as_str() == "system_prompt")
        }) && self.is_dynamic_string(&k.value)
        {
            self.report(
                &k.value,
                &SYSTEM_PROMPT_INJECTION,
                Severity::Medium,
                "system instructions built from non-constant text".into(),
            );
        }
        // PY040 (low): one prompt string holding instructions and user input
        if self.is_model_call(c) {
            let prompt = c
                .arguments
                .keywords
                .iter()
                .find(|k| {
                    k.arg
                        .as_ref()
                        .is_some_and(|a| matches!(a.as_str(), "prompt" | "input" | "inputs"))
                })
                .map(|k| &k.value)
                .or_else(|| c.arguments.args.first());
            if let Some(p) = prompt {
                self.check_single_prompt(p, " sent to the model");
            }
        }
        // PY050 exposed servers
        // Only servers without authentication of their own: a web app bound to 0.0.0.0 in a
        // container is normal and not this rule's business.
        let everywhere = |a: Arg| matches!(a, Arg::Known(Value::Str(h)) if matches!(h.as_str(), "0.0.0.0" | "::" | "*" | "[::]"));
        if method == "launch"
            && everywhere(self.arg(c, "server_name", None))
            && self.arg(c, "auth", None) == Arg::Absent
        {
            self.report(
                c,
                &SERVER_EXPOSED,
                Severity::Medium,
                "Gradio app on every interface without auth".into(),
            );
        }
        if method == "run" && q.starts_with("mlflow.") && everywhere(self.arg(c, "host", None)) {
            self.report(
                c,
                &SERVER_EXPOSED,
                Severity::Medium,
                "the MLflow server app (no authentication by default) listens on every interface"
                    .into(),
            );
        }
        let ray_serve = matches!(q, "ray.serve.start" | "ray.serve.run")
            && match self.arg(c, "http_options", None) {
                Arg::Known(Value::Dict(items)) => items
                    .iter()
                    .any(|(k, v)| k == "host" && everywhere(Arg::Known(v.clone()))),
                _ => false,
            };
        if ray_serve
            || (q.ends_with("serve.config.HTTPOptions") || q == "ray.serve.HTTPOptions")
                && everywhere(self.arg(c, "host", None))
        {
            self.report(
                c,
                &SERVER_EXPOSED,
                Severity::Medium,
                "Ray Serve's HTTP proxy (no authentication) listens on every interface".into(),
            );
        }
        if q == "ray.init" && everywhere(self.arg(c, "dashboard_host", None)) {
            self.report(
                c,
                &SERVER_EXPOSED,
                Severity::High,
                "the Ray dashboard (which runs jobs) listens on every interface".into(),
            );
        }
        if method == "launch"
            && self.arg(c, "share", None).is_true()
            && self.arg(c, "auth", None) == Arg::Absent
        {
            self.report(
                c,
                &SERVER_EXPOSED,
                Severity::High,
                "launch(share=True) publishes the app on a public URL without auth".into(),
            );
        }
        if (q.starts_with("subprocess.") || q == "os.system")
            && let Some(Value::List(items)) = c.arguments.args.first().map(|a| self.eval(a))
        {
            let words: Vec<String> = items
                .iter()
                .filter_map(|v| {
                    if let Value::Str(s) = v {
                        Some(s.clone())
                    } else {
                        None
                    }
                })
                .collect();
            if words.first().is_some_and(|w| {
                w == "mlflow" || w.ends_with("jupyter") || w == "tensorboard" || w == "ray"
            }) && words.windows(2).any(|w| {
                matches!(
                    w[0].as_str(),
                    "--host" | "-h" | "--ip" | "--bind_all" | "--dashboard-host"
                ) && matches!(w[1].as_str(), "0.0.0.0" | "::" | "*")
            }) {
                self.report(
                    c,
                    &SERVER_EXPOSED,
                    Severity::Medium,
                    format!("`{}` started on every interface", words.join(" ")),
                );
            }
        }
        // PY060 TLS
        // Only HTTP clients: `verify=False` means other things elsewhere (mpmath's findroot).
        let http = [
            "requests.",
            "httpx.",
            "aiohttp.",
            "urllib3.",
            "mlflow.",
            "huggingface_hub.",
            "openai.",
            "boto3.",
            "botocore.",
            "kserve.",
        ]
        .iter()
        .any(|p| q.starts_with(p))
            || matches!(
                method,
                "get"
                    | "post"
                    | "put"
                    | "patch"
                    | "delete"
                    | "head"
                    | "options"
                    | "request"
                    | "urlopen"
            )
            || matches!(
                last,
                "Client"
                    | "AsyncClient"
                    | "Session"
                    | "ClientSession"
                    | "OpenAI"
                    | "AsyncOpenAI"
                    | "TCPConnector"
            );
        // These keyword names mean certificate checks wherever they appear.
        let unambiguous = [
            "ssl_verify",
            "verify_ssl",
            "verify_certs",
            "ssl_cert_verify",
        ]
        .iter()
        .any(|k| self.arg(c, k, None).is_false())
            || self.arg(c, "cert_reqs", None)
                == Arg::Known(Value::Qualified("ssl.CERT_NONE".into()))
            || matches!(self.arg(c, "cert_reqs", None), Arg::Known(Value::Str(s)) if s == "CERT_NONE" || s == "none");
        if unambiguous
            || http
                && (self.arg(c, "verify", None).is_false() || self.arg(c, "ssl", None).is_false())
        {
            self.report(
                c,
                &TLS_VERIFY_DISABLED,
                Severity::Medium,
                "certificate verification disabled (verify=False)".into(),
            );
        }
        if q == "ssl._create_unverified_context" {
            self.report(
                c,
                &TLS_VERIFY_DISABLED,
                Severity::Medium,
                "ssl._create_unverified_context() skips certificate checks".into(),
            );
        }
    }

    /// Code or commands run from model output (PY020) or from an agent tool's argument (PY030).
    fn check_execution(&mut self, c: &'a ast::ExprCall, q: &str, method: &str) {
        let first = c.arguments.args.first();
        let first_value = first.map_or(Value::Unknown, |a| self.eval(a));
        let python = matches!(q, "builtins.eval" | "builtins.exec" | "builtins.compile");
        let shell = matches!(
            q,
            "os.system" | "os.popen" | "subprocess.getoutput" | "subprocess.getstatusoutput"
        ) || (q.starts_with("subprocess.")
            && matches!(
                method,
                "run" | "call" | "Popen" | "check_output" | "check_call"
            )
            && (self.arg(c, "shell", None).is_true()
                || matches!(&first_value, Value::List(items)
                    if items.iter().any(|v| *v == Value::Str("-c".into())) && items.iter().any(Value::tainted))));
        let shell_tainted = match &first_value {
            Value::List(items) => items.iter().find(|v| v.tainted()).cloned(),
            v if v.tainted() => Some(v.clone()),
            _ => None,
        };
        let what = q.trim_start_matches("builtins.");
        let kind = if python {
            "Python code"
        } else {
            "a shell command"
        };
        let taint = if python {
            first_value.tainted().then_some(first_value.clone())
        } else if shell {
            shell_tainted
        } else {
            None
        };
        match taint {
            Some(Value::ModelOutput) => self.report(
                c,
                &EVAL_MODEL_OUTPUT,
                Severity::Critical,
                format!("{what} runs {kind} produced by a model"),
            ),
            Some(_) => {
                let tool = self.tool.clone().unwrap_or_default();
                self.report(
                    c,
                    &AGENT_CODE_EXECUTION,
                    Severity::High,
                    format!(
                        "agent tool `{tool}` runs its model-chosen argument as {kind} ({what})"
                    ),
                );
            }
            None if python
                && self.facts.llm
                && first.is_some()
                && !matches!(first_value, Value::Str(_)) =>
            {
                self.report(
                    c,
                    &EVAL_MODEL_OUTPUT,
                    Severity::High,
                    format!(
                        "{what} of a value that is not a constant, in a module that calls LLMs: if the text can come from a model, this runs attacker-chosen code"
                    ),
                );
            }
            None => {}
        }
        // pandas evaluates expressions (and, with the python engine, calls) from a string;
        // databases run the query they are given.
        if python || first_value != Value::ModelOutput {
            return;
        }
        let receiver = match &*c.func {
            Expr::Attribute(a) => self.eval(&a.value),
            _ => Value::Unknown,
        };
        let pandas = q == "pandas.eval"
            || matches!(&receiver, Value::Qualified(r) if r == "pandas" || r.starts_with("pandas."))
            || (matches!(method, "query" | "eval")
                && self.src[c.func.range()].to_ascii_lowercase().contains("df"));
        let message = if pandas {
            format!("pandas {method}() evaluates an expression produced by a model")
        } else if matches!(
            method,
            "query" | "execute" | "executemany" | "executescript" | "sql" | "run_query"
        ) {
            format!("{method}() runs a query produced by a model: injection into the database")
        } else {
            return;
        };
        self.report(c, &EVAL_MODEL_OUTPUT, Severity::High, message);
    }

    fn check_dict(&mut self, d: &'a ast::ExprDict) {
        let mut role_system = false;
        let mut content = None;
        for item in &d.items {
            let Some(key) = &item.key else { continue };
            match (self.eval(key), &item.value) {
                // sslopt={"cert_reqs": ssl.CERT_NONE} (websocket-client, urllib3 pools)
                (Value::Str(k), v)
                    if matches!(k.as_str(), "cert_reqs" | "verify_mode")
                        && self.eval(v) == Value::Qualified("ssl.CERT_NONE".into()) =>
                {
                    self.report(
                        &item.value,
                        &TLS_VERIFY_DISABLED,
                        Severity::Medium,
                        format!("{k}=ssl.CERT_NONE disables certificate verification"),
                    );
                }
                (Value::Str(k), v) if k == "role" => {
                    role_system = self.eval(v) == Value::Str("system".into());
                }
                (Value::Str(k), v) if k == "content" => content = Some(v),
                _ => {}
            }
        }
        if role_system
            && let Some(v) = content
            && self.is_dynamic_string(v)
        {
            self.report(
                v,
                &SYSTEM_PROMPT_INJECTION,
                Severity::Medium,
                "system-role message built from non-constant text".into(),
            );
        }
    }

    fn check_tuple(&mut self, t: &'a ast::ExprTuple) {
        if let [role, content] = t.elts.as_slice()
            && self.eval(role) == Value::Str("system".into())
            && self.is_dynamic_string(content)
        {
            self.report(
                content,
                &SYSTEM_PROMPT_INJECTION,
                Severity::Medium,
                "('system', ...) prompt built from non-constant text".into(),
            );
        }
    }

    fn check_assign(&mut self, asg: &'a ast::StmtAssign) {
        if asg.targets.iter().any(
            |t| matches!(t, Expr::Name(n) if n.id.as_str().to_ascii_lowercase().contains("prompt")),
        ) {
            self.check_single_prompt(&asg.value, "");
        }
        for t in &asg.targets {
            // os.environ['X'] = ...
            if let Expr::Subscript(s) = t
                && self.eval(&s.value) == Value::Qualified("os.environ".into())
                && let Value::Str(key) = self.eval(&s.slice)
                && let Value::Str(val) = self.eval(&asg.value)
            {
                let insecure = match key.as_str() {
                    "CURL_CA_BUNDLE" | "REQUESTS_CA_BUNDLE" => val.is_empty(),
                    "MLFLOW_TRACKING_INSECURE_TLS" => {
                        val.eq_ignore_ascii_case("true") || val == "1"
                    }
                    "PYTHONHTTPSVERIFY" => val == "0",
                    _ => false,
                };
                if insecure {
                    self.report(
                        asg,
                        &TLS_VERIFY_DISABLED,
                        Severity::Medium,
                        format!("{key}='{val}' disables certificate verification"),
                    );
                }
            }
            // session.verify = False, ctx.check_hostname = False, ctx.verify_mode = ssl.CERT_NONE
            if let Expr::Attribute(a) = t {
                let v = self.eval(&asg.value);
                let off = match a.attr.as_str() {
                    "verify" | "verify_ssl" | "ssl_verify" | "check_hostname" => {
                        v == Value::Bool(false)
                    }
                    "verify_mode" => v == Value::Qualified("ssl.CERT_NONE".into()),
                    _ => false,
                };
                if off {
                    self.report(
                        asg,
                        &TLS_VERIFY_DISABLED,
                        Severity::Medium,
                        format!("`{}` disables certificate verification", self.snippet(asg)),
                    );
                }
            }
            // c.NotebookApp.ip = '0.0.0.0' / c.ServerApp.ip
            if let Expr::Attribute(a) = t
                && a.attr.as_str() == "ip"
                && matches!(&*a.value, Expr::Attribute(inner) if matches!(inner.attr.as_str(), "NotebookApp" | "ServerApp"))
                && let Value::Str(h) = self.eval(&asg.value)
                && matches!(h.as_str(), "0.0.0.0" | "*" | "::")
            {
                self.report(
                    asg,
                    &SERVER_EXPOSED,
                    Severity::High,
                    format!("Jupyter listens on every interface (ip='{h}')"),
                );
            }
        }
    }

    pub fn run(&mut self, body: &'a [Stmt]) {
        for s in body {
            self.facts.visit_stmt(s);
        }
        let mut module = Scope::default();
        self.collect(body, &mut module);
        self.module = module;
        for s in body {
            self.visit_stmt(s);
        }
    }
}

/// `datasets.load_dataset` builders that ship with the library and read local or given files.
const PACKAGED_BUILDERS: &[&str] = &[
    "csv",
    "json",
    "parquet",
    "text",
    "arrow",
    "pandas",
    "imagefolder",
    "audiofolder",
    "videofolder",
    "webdataset",
    "xml",
    "sql",
    "generator",
    "cache",
    "pdffolder",
    "niftifolder",
];

fn looks_like_hub_id(id: &str) -> bool {
    if id.is_empty()
        || id.starts_with(['.', '/', '~'])
        || id.contains('\\')
        || id.contains("://")
        || id.ends_with('/')
    {
        return false;
    }
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<'a> Visitor<'a> for Analyzer<'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                for d in &f.decorator_list {
                    self.visit_expr(&d.expression);
                }
                let mut scope = self.scope().clone();
                let is_tool = self.facts.tool_names.contains(f.name.as_str())
                    || self.facts.tool_defs.contains(&f.range.start().to_usize());
                // Parameters shadow outer names; a tool's parameters are chosen by the model.
                let p = &f.parameters;
                for name in p
                    .iter_non_variadic_params()
                    .map(|x| &x.parameter.name)
                    .chain(p.vararg.iter().map(|x| &x.name))
                    .chain(p.kwarg.iter().map(|x| &x.name))
                {
                    let v = if is_tool && !matches!(name.as_str(), "self" | "cls") {
                        Value::ToolInput
                    } else {
                        Value::Unknown
                    };
                    scope.names.insert(name.to_string(), v);
                }
                self.collect(&f.body, &mut scope);
                self.stack.push(scope);
                let inner = if is_tool {
                    Some(f.name.to_string())
                } else {
                    self.tool.clone()
                };
                let outer = std::mem::replace(&mut self.tool, inner);
                for s in &f.body {
                    self.visit_stmt(s);
                }
                self.tool = outer;
                self.stack.pop();
            }
            Stmt::Assign(asg) => {
                self.check_assign(asg);
                visitor::walk_stmt(self, stmt);
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Call(c) => self.check_call(c),
            Expr::Dict(d) => self.check_dict(d),
            Expr::Tuple(t) => self.check_tuple(t),
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }
}

/// Analyses one module's source; returns findings with file-relative positions.
pub fn analyse(src: &str, body: &[Stmt], location: &dyn Fn(u32, u32) -> Location) -> Vec<Finding> {
    let mut a = Analyzer::new(src);
    a.run(body);
    let mut out = Vec::new();
    let findings = std::mem::take(&mut a.findings);
    for (offset, rule, severity, message, evidence) in findings {
        let (line, col) = a.lines().position(src, offset);
        let mut f = Finding::new(rule, location(line, col), message).evidence(evidence);
        f.severity = severity;
        out.push(f);
    }
    out
}
