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
    Unknown,
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
    pub findings: Vec<(usize, &'static Rule, Severity, String, String)>,
}

impl<'a> Analyzer<'a> {
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            lines: Lines::new(src),
            module: Scope::default(),
            stack: Vec::new(),
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
                Stmt::For(s) => self.collect(&s.body, scope),
                Stmt::While(s) => self.collect(&s.body, scope),
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
                b @ ("eval" | "exec" | "compile" | "open" | "__import__" | "dict") => {
                    Value::Qualified(format!("builtins.{b}"))
                }
                _ => Value::Unknown,
            }),
            Expr::Attribute(a) => match self.eval_in(&a.value, scope) {
                Value::Qualified(q) => Value::Qualified(format!("{q}.{}", a.attr.as_str())),
                Value::ModelOutput => Value::ModelOutput,
                _ => Value::Unknown,
            },
            Expr::Subscript(s) => match self.eval_in(&s.value, scope) {
                Value::ModelOutput => Value::ModelOutput,
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
                Value::Unknown
            }
            _ => Value::Unknown,
        }
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
                    Value::Unknown | Value::ModelOutput => Arg::Unknown,
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
                Value::Unknown | Value::ModelOutput => Arg::Unknown,
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
                                Value::Unknown | Value::ModelOutput => Arg::Unknown,
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

    /// Whether an expression is a string built at run time (f-string with fields, `+`, `.format`, `%`).
    fn is_dynamic_string(&self, e: &Expr) -> bool {
        match e {
            Expr::FString(_) => self.src[e.range()].contains('{'),
            Expr::BinOp(b) => {
                matches!(b.op, ast::Operator::Add | ast::Operator::Mod)
                    && !(matches!(self.eval(&b.left), Value::Str(_))
                        && matches!(self.eval(&b.right), Value::Str(_)))
            }
            Expr::Call(c) => {
                matches!(&*c.func, Expr::Attribute(a) if a.attr.as_str() == "format" || a.attr.as_str() == "join")
            }
            // A variable whose value is not known is not evidence of construction: no finding.
            _ => false,
        }
    }

    fn check_call(&mut self, c: &'a ast::ExprCall) {
        let name = self.callee(c);
        let q = name.as_deref().unwrap_or("");
        let method = match &*c.func {
            Expr::Attribute(a) => a.attr.as_str(),
            Expr::Name(n) => n.id.as_str(),
            _ => "",
        };

        // PY001 torch.load
        if q == "torch.load" {
            match self.arg(c, "weights_only", None) {
                Arg::Known(Value::Bool(true)) => {}
                Arg::Known(Value::Bool(false)) => self.report(c, &TORCH_LOAD_UNSAFE, Severity::High, "torch.load with weights_only=False unpickles arbitrary objects".into()),
                Arg::Absent => self.report(c, &TORCH_LOAD_UNSAFE, Severity::Medium, "torch.load without weights_only=True: before torch 2.6 this unpickles arbitrary objects".into()),
                _ => self.report(c, &TORCH_LOAD_UNSAFE, Severity::Low, "torch.load with a weights_only value that is not statically known".into()),
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
        // PY020 eval/exec of model output
        if matches!(q, "builtins.eval" | "builtins.exec" | "builtins.compile")
            && let Some(first) = c.arguments.args.first()
            && self.eval(first) == Value::ModelOutput
        {
            self.report(
                c,
                &EVAL_MODEL_OUTPUT,
                Severity::Critical,
                format!(
                    "{} executes text produced by a model",
                    q.trim_start_matches("builtins.")
                ),
            );
        }
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
            if words
                .first()
                .is_some_and(|w| w == "mlflow" || w.ends_with("jupyter") || w == "tensorboard")
                && words.windows(2).any(|w| {
                    matches!(w[0].as_str(), "--host" | "-h" | "--ip" | "--bind_all")
                        && matches!(w[1].as_str(), "0.0.0.0" | "::" | "*")
                })
            {
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
        if http
            && (self.arg(c, "verify", None).is_false()
                || self.arg(c, "verify_ssl", None).is_false()
                || self.arg(c, "ssl", None).is_false())
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

    fn check_dict(&mut self, d: &'a ast::ExprDict) {
        let mut role_system = false;
        let mut content = None;
        for item in &d.items {
            let Some(key) = &item.key else { continue };
            match (self.eval(key), &item.value) {
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
        let mut module = Scope::default();
        self.collect(body, &mut module);
        self.module = module;
        for s in body {
            self.visit_stmt(s);
        }
    }
}

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
                self.collect(&f.body, &mut scope);
                self.stack.push(scope);
                for s in &f.body {
                    self.visit_stmt(s);
                }
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
