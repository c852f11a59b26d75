//! Dockerfiles: instructions with their line numbers, a stage model, and the DF rules.

use mlsec_diagnostics::{Finding, Location, Severity};

use crate::rules::{ADD_URL, BASE_UNPINNED, DASHBOARD_CMD, DEVEL_BASE, ROOT_USER, SECRET_IN_ENV};

/// Most instructions read from one Dockerfile.
pub const MAX_INSTRUCTIONS: usize = 100_000;

/// One instruction, continuation lines joined.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// 1-based line of the keyword.
    pub line: u32,
    /// Upper-cased keyword (`FROM`, `RUN`, ...).
    pub keyword: String,
    /// Everything after the keyword, continuations joined with a space.
    pub args: String,
    /// Rule ids suppressed by `# mlsec: ignore[...]` comments right above.
    pub suppressed: Vec<String>,
}

/// Splits a Dockerfile into instructions. Comments, blank lines and heredoc bodies are skipped;
/// `# mlsec: ignore[ID] reason` lines attach to the next instruction.
pub fn parse(src: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending_supp: Vec<String> = Vec::new();
    let mut lines = src.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        if out.len() >= MAX_INSTRUCTIONS {
            break;
        }
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(at) = comment.find("mlsec: ignore[")
                && let Some(end) = comment[at..].find(']')
            {
                let ids = &comment[at + "mlsec: ignore[".len()..at + end];
                pending_supp.extend(
                    ids.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                );
            }
            continue;
        }
        let mut text = line.to_owned();
        while text.ends_with('\\') {
            text.pop();
            // Comment lines inside a continuation are dropped, as Docker does.
            let mut next = None;
            while let Some((_, l)) = lines.peek() {
                let t = l.trim();
                if t.starts_with('#') || t.is_empty() {
                    lines.next();
                    continue;
                }
                next = lines.next().map(|(_, l)| l.trim().to_owned());
                break;
            }
            match next {
                Some(n) => {
                    text.push(' ');
                    text.push_str(&n);
                }
                None => break,
            }
        }
        let (keyword, args) = text
            .split_once(char::is_whitespace)
            .map_or((text.as_str(), ""), |(k, a)| (k, a.trim()));
        // Heredocs (`RUN <<EOF ... EOF`): skip the body.
        if let Some(pos) = args.find("<<") {
            let marker: String = args[pos + 2..]
                .trim_start_matches('-')
                .trim_matches(|c| c == '"' || c == '\'')
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !marker.is_empty() {
                for (_, l) in lines.by_ref() {
                    if l.trim() == marker {
                        break;
                    }
                }
            }
        }
        out.push(Instruction {
            line: i as u32 + 1,
            keyword: keyword.to_ascii_uppercase(),
            args: args.to_owned(),
            suppressed: std::mem::take(&mut pending_supp),
        });
    }
    out
}

/// A stage: its base, alias and the USER in effect at its end.
#[derive(Debug, Clone)]
struct Stage {
    line: u32,
    image: String,
    alias: Option<String>,
    /// Inherited from a previous stage when built on its alias, with the line that set it.
    user: Option<(String, u32)>,
    suppressed: Vec<String>,
}

/// `--NotebookApp.token=''`, `--ServerApp.password=` and the like: Jupyter auth switched off.
/// What a command line starts without protection: Jupyter with an empty token or password, or
/// MLflow, TensorBoard or a Ray head on every interface.
pub fn exposed_dashboard(words: &[String]) -> Option<&'static str> {
    let prog = |name: &str| {
        words
            .iter()
            .any(|w| w == name || w.ends_with(&format!("/{name}")))
    };
    let everywhere = words.windows(2).any(|w| {
        matches!(w[0].as_str(), "--ip" | "--host" | "-h" | "--dashboard-host")
            && matches!(w[1].as_str(), "0.0.0.0" | "*" | "::")
    }) || words.iter().any(|w| {
        [
            "--ip=0.0.0.0",
            "--ip=*",
            "--host=0.0.0.0",
            "--dashboard-host=0.0.0.0",
            "--bind_all",
        ]
        .contains(&w.as_str())
    });
    let server = prog("mlflow")
        || prog("tensorboard")
        || (prog("ray") && words.iter().any(|w| w == "--head"));
    let jupyter = [
        "jupyter",
        "jupyter-lab",
        "jupyter-notebook",
        "jupyter-server",
        "start-notebook.py",
        "start-notebook.sh",
        "start-singleuser.py",
    ]
    .iter()
    .any(|p| prog(p));
    if jupyter && words.iter().any(|w| empty_jupyter_auth(w)) {
        Some("Jupyter without a token or password")
    } else if server && everywhere {
        Some("an ML server on every interface")
    } else {
        None
    }
}

fn empty_jupyter_auth(word: &str) -> bool {
    if word.contains("disable_check_xsrf=True") {
        return true;
    }
    word.split_once('=').is_some_and(|(key, value)| {
        (key.ends_with(".token") || key.ends_with(".password"))
            && value.trim_matches(['\'', '"']).is_empty()
    })
}

/// Words of a shell-form or exec-form (JSON array) command.
fn command_words(args: &str) -> Vec<String> {
    let t = args.trim();
    if t.starts_with('[')
        && let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
    {
        return inner
            .split(',')
            .map(|w| w.trim().trim_matches('"').to_owned())
            .collect();
    }
    t.split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_owned())
        .collect()
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user).trim();
    name == "root" || name == "0"
}

/// Splits `name[:tag][@digest]` off FROM's arguments.
fn image_ref(args: &str) -> (String, Option<String>) {
    let words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let image = words.first().copied().unwrap_or("").to_owned();
    let alias = match words.as_slice() {
        [_, as_kw, name, ..] if as_kw.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
        _ => None,
    };
    (image, alias)
}

/// Why an image reference is not pinned (`has no tag`, `uses \`latest\``), or `None` when it
/// has a version tag or a digest.
pub(crate) fn unpinned_image(image: &str) -> Option<&'static str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = last.split_once(':').map(|(_, t)| t);
    if image.contains('@') {
        None
    } else if tag.is_none() {
        Some("has no tag")
    } else if tag == Some("latest") {
        Some("uses `latest`")
    } else {
        None
    }
}

/// Names that look like secrets but are settings.
const ALLOW: &[&str] = &[
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "HF_HUB_DISABLE_TELEMETRY",
    "TRANSFORMERS_OFFLINE",
];

/// Whether an environment variable's name says it holds a secret (whole tokens, with an
/// allowlist of settings that only look like secrets).
pub(crate) fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let tokens: Vec<&str> = upper
        .split(['_', '-', '.'])
        .filter(|t| !t.is_empty())
        .collect();
    if ALLOW.contains(&upper.as_str())
        || tokens.iter().any(|t| {
            matches!(
                *t,
                "MAX"
                    | "NUM"
                    | "COUNT"
                    | "LIMIT"
                    | "LENGTH"
                    | "PATH"
                    | "FILE"
                    | "DIR"
                    | "URL"
                    | "ENDPOINT"
                    | "HOST"
                    | "ID"
                    | "NAME"
                    | "REF"
                    | "ENABLED"
                    | "ENABLE"
                    | "TYPE"
                    | "MODE"
                    | "HEADER"
                    | "FIELD"
            )
        })
    {
        return false;
    }
    tokens.iter().enumerate().any(|(i, t)| match *t {
        "PASSWORD" | "PASSWD" | "PASS" | "PWD" | "SECRET" | "TOKEN" | "APIKEY" | "CREDENTIALS"
        | "CREDENTIAL" | "PAT" => true,
        "KEY" => {
            i > 0
                && matches!(
                    tokens[i - 1],
                    "API"
                        | "ACCESS"
                        | "PRIVATE"
                        | "SECRET"
                        | "SIGNING"
                        | "ENCRYPTION"
                        | "MASTER"
                        | "LICENSE"
                )
        }
        _ => false,
    })
}

/// Whether a literal value could be a credential: not a boolean, number, path, URL without a
/// password, placeholder or resource name (`kserve-webhook-server-cert`).
pub(crate) fn credential_value(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    let lower = v.to_ascii_lowercase();
    if v.chars().count() < 6
        || v.parse::<f64>().is_ok()
        || matches!(
            lower.as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "none" | "null"
        )
        || v.starts_with('/')
        || v.starts_with("./")
        || v.starts_with("~/")
        || v.contains("${")
        || v.contains("$(")
        || v.contains("{{")
        || v.starts_with('<')
    {
        return false;
    }
    if let Some((_, rest)) = v.split_once("://") {
        // A URL is a credential only when it carries one (`user:password@`).
        return rest
            .split_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    }
    // Resource and variable names: words of three or more letters, each with a vowel.
    let words: Vec<&str> = v.split(['-', '_', '.']).filter(|w| !w.is_empty()).collect();
    let wordy = |w: &&str| {
        w.len() >= 3
            && w.chars().all(|c| c.is_ascii_alphabetic())
            && w.to_ascii_lowercase()
                .contains(['a', 'e', 'i', 'o', 'u', 'y'])
    };
    if words.len() >= 2
        && words.iter().all(wordy)
        // One case throughout (`kserve-webhook-cert`, `HF_TOKEN_NAME`), as names are written.
        && !(v.chars().any(|c| c.is_ascii_uppercase()) && v.chars().any(|c| c.is_ascii_lowercase()))
    {
        return false;
    }
    !matches!(
        lower.as_str(),
        "changeme" | "password" | "secret" | "placeholder" | "redacted"
    )
}

/// `ENV a=1 b=2`, `ENV a 1`, `ARG a=1`, `ARG a`: (name, literal value if any).
fn assignments(keyword: &str, args: &str) -> Vec<(String, Option<String>)> {
    if keyword == "ENV" && !args.contains('=') {
        let (k, v) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(k.to_owned(), Some(v.trim().trim_matches('"').to_owned()))];
    }
    args.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (
                k.to_owned(),
                Some(v.trim_matches('"').trim_matches('\'').to_owned()),
            ),
            None => (pair.to_owned(), None),
        })
        .collect()
}

/// Runs every DF rule over one Dockerfile.
pub fn check(display: &str, src: &str) -> Vec<Finding> {
    let instructions = parse(src);
    let mut findings = Vec::new();
    let at = |line: u32| Location::file(display).line_col(line, 1);
    let mut stages: Vec<Stage> = Vec::new();
    let push = |findings: &mut Vec<Finding>, ins_supp: &[String], f: Finding| {
        if !ins_supp.iter().any(|id| id == f.rule.id) {
            findings.push(f);
        }
    };
    for ins in &instructions {
        match ins.keyword.as_str() {
            "FROM" => {
                let (image, alias) = image_ref(&ins.args);
                let parent = stages
                    .iter()
                    .find(|s| s.alias.as_deref() == Some(image.to_ascii_lowercase().as_str()));
                let user = parent.and_then(|p| p.user.clone());
                let from_stage = parent.is_some();
                if !from_stage
                    && !image.contains('$')
                    && image != "scratch"
                    && let Some(what) = unpinned_image(&image)
                {
                    push(
                        &mut findings,
                        &ins.suppressed,
                        Finding::new(
                            &BASE_UNPINNED,
                            at(ins.line),
                            format!("base image `{image}` {what}"),
                        )
                        .evidence(format!("FROM {}", ins.args)),
                    );
                }
                stages.push(Stage {
                    line: ins.line,
                    image: if from_stage {
                        parent.map(|p| p.image.clone()).unwrap_or_default()
                    } else {
                        image
                    },
                    alias,
                    user,
                    suppressed: ins.suppressed.clone(),
                });
            }
            "USER" => {
                if let Some(s) = stages.last_mut() {
                    s.user = Some((ins.args.trim().to_owned(), ins.line));
                    if is_root(&ins.args) {
                        s.suppressed.extend(ins.suppressed.iter().cloned());
                    }
                }
            }
            "ADD" => {
                let words: Vec<&str> = ins.args.split_whitespace().collect();
                let checksum = words.iter().any(|w| w.starts_with("--checksum"));
                if !checksum
                    && let Some(url) = words
                        .iter()
                        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                {
                    push(
                        &mut findings,
                        &ins.suppressed,
                        Finding::new(
                            &ADD_URL,
                            at(ins.line),
                            format!("ADD fetches {url} without --checksum"),
                        )
                        .evidence(format!("ADD {}", ins.args)),
                    );
                }
            }
            kw @ ("ENV" | "ARG") => {
                for (name, value) in assignments(kw, &ins.args) {
                    let literal = value
                        .as_deref()
                        .is_some_and(|v| !v.is_empty() && !v.starts_with('$'));
                    if literal && secret_name(&name) {
                        let sev = if kw == "ENV" {
                            Severity::High
                        } else {
                            Severity::Medium
                        };
                        let mut f = Finding::new(
                            &SECRET_IN_ENV,
                            at(ins.line),
                            format!("{kw} {name} sets a literal value that ends up in the image"),
                        )
                        .evidence(format!("{kw} {name}=<redacted>"));
                        f.severity = sev;
                        push(&mut findings, &ins.suppressed, f);
                    }
                }
            }
            kw @ ("CMD" | "ENTRYPOINT" | "RUN") => {
                let words = command_words(&ins.args);
                let joined = words.join(" ");
                if let Some(what) = exposed_dashboard(&words) {
                    push(
                        &mut findings,
                        &ins.suppressed,
                        Finding::new(&DASHBOARD_CMD, at(ins.line), format!("{kw} starts {what}"))
                            .evidence(format!("{kw} {joined}")),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(last) = stages.last() {
        let nonroot_base =
            last.image.contains("nonroot") || last.image.starts_with("cgr.dev/chainguard/");
        match &last.user {
            Some((u, line))
                if is_root(u) && !last.suppressed.iter().any(|id| id == ROOT_USER.id) =>
            {
                let mut f = Finding::new(
                    &ROOT_USER,
                    at(*line),
                    format!("the final stage runs as `{u}`"),
                )
                .evidence(format!("USER {u}"));
                f.severity = Severity::High;
                findings.push(f);
            }
            None if !nonroot_base && !last.suppressed.iter().any(|id| id == ROOT_USER.id) => {
                findings.push(Finding::new(&ROOT_USER, at(last.line), format!("the final stage (FROM {}) never sets USER, so it runs as the base image's user, usually root", last.image)));
            }
            _ => {}
        }
        if let Some(why) = heavy_base(&last.image) {
            let supp = instructions
                .iter()
                .find(|i| i.line == last.line)
                .map(|i| i.suppressed.clone())
                .unwrap_or_default();
            if !supp.iter().any(|id| id == DEVEL_BASE.id) {
                findings.push(Finding::new(
                    &DEVEL_BASE,
                    at(last.line),
                    format!("the final image is built on `{}`, {why}", last.image),
                ));
            }
        }
    }
    findings
}

/// Why a final-stage base is heavier than serving needs, if it is: a -devel image, a full
/// distribution, or the full `python` image where `-slim` would do.
pub fn heavy_base(image: &str) -> Option<&'static str> {
    let image = image.to_ascii_lowercase();
    if image.contains("-devel") || image.ends_with(":devel") {
        return Some("a development image with compilers and headers");
    }
    let (name, tag) = match image
        .split_once('@')
        .map_or(image.as_str(), |(n, _)| n)
        .rsplit_once(':')
    {
        Some((n, t)) if !t.contains('/') => (n.to_owned(), t.to_owned()),
        _ => (
            image.split('@').next().unwrap_or("").to_owned(),
            String::new(),
        ),
    };
    let name = name
        .trim_start_matches("docker.io/")
        .trim_start_matches("library/")
        .to_owned();
    let small = [
        "slim",
        "alpine",
        "minimal",
        "distroless",
        "micro",
        "runtime",
        "base",
    ]
    .iter()
    .any(|w| tag.contains(w));
    match name.as_str() {
        "python" | "pypy" if !small => {
            Some("the full Debian-based image; `-slim` serves the same Python")
        }
        "ubuntu" | "debian" | "centos" | "fedora" | "rockylinux" | "almalinux" | "amazonlinux"
            if !small =>
        {
            Some("a full distribution; a slim or distroless base carries less to attack")
        }
        "continuumio/anaconda3" | "continuumio/anaconda" => {
            Some("the full Anaconda distribution; miniconda or a slim base carries less")
        }
        n if n.starts_with("jupyter/") || n.starts_with("quay.io/jupyter/") => {
            Some("a notebook image with a full toolchain; serving does not need it")
        }
        _ => None,
    }
}

/// Whether a file name is a Dockerfile.
pub fn is_dockerfile(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "dockerfile"
        || lower == "containerfile"
        || lower.starts_with("dockerfile.")
        || lower.ends_with(".dockerfile")
        || lower.ends_with(".containerfile")
}
