//! YAML documents as small trees that remember their lines, built from yaml-rust2's event parser
//! with explicit limits: nesting depth and node count (aliases count as what they expand to, so
//! a "billion laughs" file stops at the budget instead of exhausting memory).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 256;
/// Most nodes built from one file, alias expansions included.
pub const MAX_NODES: usize = 2_000_000;

/// One node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar's text; `quoted` is true for quoted and block scalars (never booleans or null).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; later duplicates are kept (the first wins on lookup, as in most
    /// Kubernetes tooling that rejects or warns on them).
    Map(Vec<(Node, Node)>),
}

static NULL: Node = Node {
    value: Value::Seq(Vec::new()),
    line: 0,
};

impl Node {
    /// The value under `key` in a mapping, with the line of the key.
    pub fn entry(&self, key: &str) -> Option<(u32, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.str() == Some(key))
                .map(|(k, v)| (k.line, v)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Follows a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }

    /// The scalar text, if this is a non-null scalar.
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, quoted } if *quoted || !is_null(text) => Some(text),
            _ => None,
        }
    }

    /// A boolean as Kubernetes reads it (YAML 1.1 spellings, which sigs.k8s.io/yaml accepts).
    pub fn bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y"
                | "Y" => Some(true),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
                | "N" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// An integer scalar.
    pub fn int(&self) -> Option<i64> {
        self.str().and_then(|s| s.trim().parse().ok())
    }

    /// Items of a sequence (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// Entries of a mapping (empty for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(e) => e,
            _ => &[],
        }
    }

    /// String keys and string values of a mapping (labels, annotations, selectors).
    pub fn string_map(&self) -> Vec<(&str, &str)> {
        self.entries()
            .iter()
            .filter_map(|(k, v)| Some((k.str()?, v.str().unwrap_or(""))))
            .collect()
    }

    /// Calls `f` on every scalar below this node, with its line.
    pub fn each_scalar<'a>(&'a self, f: &mut impl FnMut(&'a str, u32)) {
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.value {
                Value::Scalar { text, .. } => f(text, n.line),
                Value::Seq(items) => stack.extend(items.iter().rev()),
                Value::Map(entries) => {
                    for (k, v) in entries.iter().rev() {
                        stack.push(v);
                        stack.push(k);
                    }
                }
            }
        }
    }

    /// Calls `f` with every mapping key (scalar keys only) in this tree.
    pub fn each_key<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.value {
                Value::Map(entries) => {
                    for (k, v) in entries {
                        if let Some(k) = k.str() {
                            f(k);
                        }
                        stack.push(v);
                    }
                }
                Value::Seq(items) => stack.extend(items),
                Value::Scalar { .. } => {}
            }
        }
    }

    /// An empty node, for absent optional structure.
    pub fn null() -> &'static Node {
        &NULL
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Why a file could not be read as YAML. Documents before the error are still returned.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: u32,
    pub message: String,
}

/// The documents of a YAML stream, and the error that stopped reading, if any.
pub struct Documents {
    pub docs: Vec<Node>,
    pub error: Option<YamlError>,
}

enum Frame {
    Seq(Vec<Node>, u32, usize),
    /// Entries, a key waiting for its value, the start line and the anchor id.
    Map(Vec<(Node, Node)>, Option<Node>, u32, usize),
}

/// Parses every document of `src`. A stream the YAML spec refuses only for the indentation of a
/// flow collection's or quoted scalar's continuation lines (`args: [` closed by a `]` under the
/// key, a quoted description whose next line sits left of the key) is read the way PyYAML and
/// Kubernetes' go-yaml read it: those lines are indented further, which changes no value.
pub fn parse(src: &str) -> Documents {
    let strict = parse_strict(src);
    if strict.error.is_none() {
        return strict;
    }
    match reindent_continuations(src) {
        Some(fixed) => {
            let lenient = parse_strict(&fixed);
            if lenient.error.is_none() {
                lenient
            } else {
                strict
            }
        }
        None => strict,
    }
}

/// Where a line ends, for [`reindent_continuations`].
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Nothing,
    /// Inside `[`/`{` this deep.
    Flow(usize),
    /// Inside a quoted scalar opened by this quote.
    Quote(u8, usize),
    /// Inside a block scalar (`|`, `>`) whose header line was this indented.
    Block(usize),
}

/// The lines that continue a flow collection or a quoted scalar, indented at least one column
/// past the line that opened it; `None` when no line needed it. Whitespace at the start of such
/// lines carries no meaning (flow tokens are free-form, quoted scalars fold it away).
fn reindent_continuations(src: &str) -> Option<String> {
    let mut out = String::with_capacity(src.len() + 64);
    let mut open = Open::Nothing;
    // The least indentation a continuation line needs.
    let mut min = 0usize;
    let mut changed = false;
    for line in src.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line[indent..].trim_end_matches(['\n', '\r']);
        match open {
            Open::Block(parent) if body.is_empty() || indent > parent => {
                out.push_str(line);
                continue;
            }
            // Document markers and tabs inside a flow or quoted scalar stay errors.
            Open::Flow(_) | Open::Quote(..)
                if indent < min
                    && !body.is_empty()
                    && !body.starts_with('\t')
                    && !(indent == 0 && (body.starts_with("---") || body.starts_with("..."))) =>
            {
                out.extend(std::iter::repeat_n(' ', min - indent));
                changed = true;
            }
            Open::Block(_) => open = Open::Nothing,
            _ => {}
        }
        out.push_str(line);
        if open == Open::Nothing {
            if body.starts_with("---") || body.starts_with("...") {
                continue;
            }
            min = indent + 1;
        }
        open = scan_line(body.as_bytes(), open, indent);
    }
    changed.then_some(out)
}

/// The state at the end of one line's text, given the state at its start.
fn scan_line(b: &[u8], mut open: Open, indent: usize) -> Open {
    let mut i = 0;
    // The last character that was not a space, for "does a value start here".
    let mut prev: Option<u8> = None;
    let value_start = |prev: Option<u8>, at: usize| {
        let spaced = at == 0 || b[at - 1] == b' ' || b[at - 1] == b'\t';
        match prev {
            None => true,
            Some(b'[' | b'{' | b',') => true,
            Some(b':' | b'-' | b'?') => spaced,
            _ => false,
        }
    };
    while i < b.len() {
        let c = b[i];
        match open {
            Open::Quote(q, depth) => {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    open = if depth > 0 {
                        Open::Flow(depth)
                    } else {
                        Open::Nothing
                    };
                    prev = Some(c);
                }
                i += 1;
                continue;
            }
            Open::Block(_) => return open,
            Open::Nothing | Open::Flow(_) => {}
        }
        let depth = match open {
            Open::Flow(d) => d,
            _ => 0,
        };
        match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'#' if i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t' => return open,
            b'"' | b'\'' if value_start(prev, i) => open = Open::Quote(c, depth),
            b'[' | b'{' if depth > 0 || value_start(prev, i) => open = Open::Flow(depth + 1),
            b']' | b'}' if depth > 0 => {
                open = if depth > 1 {
                    Open::Flow(depth - 1)
                } else {
                    Open::Nothing
                };
            }
            b'|' | b'>' if depth == 0 && value_start(prev, i) => {
                let rest = &b[i + 1..];
                let header = rest
                    .iter()
                    .take_while(|x| matches!(x, b'+' | b'-' | b'0'..=b'9'))
                    .count();
                let tail = &rest[header..];
                let t = tail.iter().position(|x| *x != b' ' && *x != b'\t');
                if t.is_none_or(|t| tail[t] == b'#') {
                    return Open::Block(indent);
                }
            }
            _ => {}
        }
        prev = Some(c);
        i += 1;
    }
    open
}

/// Parses every document of `src` as the YAML spec says.
fn parse_strict(src: &str) -> Documents {
    let mut parser = Parser::new_from_str(src);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = MAX_NODES;
    let fail = |line: usize, message: String, docs: Vec<Node>| Documents {
        docs,
        error: Some(YamlError {
            line: line as u32,
            message,
        }),
    };
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => return fail(e.marker().line(), e.info().to_owned(), docs),
        };
        let line = mark.line() as u32;
        let (node, anchor) = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return fail(
                        mark.line(),
                        format!("nested deeper than {MAX_DEPTH} levels"),
                        docs,
                    );
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new(), line, anchor)
                } else {
                    Frame::Map(Vec::new(), None, line, anchor)
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, line, anchor)) => (
                    Node {
                        value: Value::Seq(items),
                        line,
                    },
                    anchor,
                ),
                _ => return fail(mark.line(), "unbalanced sequence".into(), docs),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, line, anchor)) => (
                    Node {
                        value: Value::Map(entries),
                        line,
                    },
                    anchor,
                ),
                _ => return fail(mark.line(), "unbalanced mapping".into(), docs),
            },
            Event::Scalar(text, style, anchor, _) => (
                Node {
                    value: Value::Scalar {
                        text,
                        quoted: style != TScalarStyle::Plain,
                    },
                    line,
                },
                anchor,
            ),
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return fail(mark.line(), "alias to an unknown anchor".into(), docs);
                };
                let cost = count(target);
                if cost > budget {
                    return fail(
                        mark.line(),
                        format!("aliases expand past {MAX_NODES} nodes"),
                        docs,
                    );
                }
                budget -= cost;
                (target.clone(), 0)
            }
        };
        budget = match budget.checked_sub(1) {
            Some(b) => b,
            None => return fail(mark.line(), format!("more than {MAX_NODES} nodes"), docs),
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => docs.push(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    Documents { docs, error: None }
}

fn count(node: &Node) -> usize {
    let mut n = 0;
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        n += 1;
        match &x.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => stack.extend(items),
            Value::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keys_and_lines() {
        let src = "a: 1\nb:\n  c: [x, y]\n  d: 'yes'\n  e: yes\n---\n- k: v\n";
        let d = parse(src);
        assert!(d.error.is_none());
        assert_eq!(d.docs.len(), 2);
        let doc = &d.docs[0];
        assert_eq!(doc.entry("b").map(|(l, _)| l), Some(2));
        assert_eq!(doc.at(&["b", "c"]).unwrap().items().len(), 2);
        assert_eq!(
            doc.at(&["b", "d"]).unwrap().bool(),
            None,
            "quoted yes is a string"
        );
        assert_eq!(doc.at(&["b", "e"]).unwrap().bool(), Some(true));
        assert_eq!(doc.at(&["b", "e"]).unwrap().line, 5);
        assert_eq!(d.docs[1].items()[0].entry("k").unwrap().0, 7);
    }

    #[test]
    fn anchors_expand_within_budget_and_bombs_stop() {
        let d = parse("base: &b {x: 1}\nother: *b\n");
        assert_eq!(d.docs[0].at(&["other", "x"]).unwrap().int(), Some(1));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                std::iter::repeat_n(prev.as_str(), 10)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let d = parse(&bomb);
        let e = d.error.expect("the bomb is refused");
        assert!(e.message.contains("nodes"), "{e:?}");
    }

    #[test]
    fn errors_keep_earlier_documents() {
        let d = parse("kind: Pod\n---\nkey: [unclosed\n");
        assert_eq!(d.docs.len(), 1);
        assert!(d.error.is_some());
        // Block nesting is ours to limit (yaml-rust2 stops flow nesting at 255 itself).
        let deep = format!("{}x\n", "- ".repeat(MAX_DEPTH + 10));
        let e = parse(&deep).error.unwrap();
        assert!(e.message.contains("deeper"), "{e:?}");
    }
}

/// The official YAML test suite (fixtures/yaml-test-suite, packed by scripts/yaml_test_suite.py):
/// how many valid streams this parser reads to the suite's JSON, and how many invalid ones it
/// refuses. The counts are floors: a change that lowers one fails, one that raises it updates it.
#[cfg(test)]
mod suite {
    use super::*;

    /// Valid cases whose documents match the suite's JSON (or, without JSON, that parse).
    const VALID_FLOOR: usize = 308;
    /// Invalid cases refused.
    const INVALID_FLOOR: usize = 91;

    fn same(node: &Node, want: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (&node.value, want) {
            (Value::Scalar { text, quoted }, J::Null) => !quoted && is_null(text),
            (
                Value::Scalar {
                    text,
                    quoted: false,
                },
                J::Bool(b),
            ) => node.bool() == Some(*b) && matches!(text.as_str(), "true" | "false"),
            (
                Value::Scalar {
                    text,
                    quoted: false,
                },
                J::Number(n),
            ) => {
                let t = text.replace('_', "");
                t.parse::<f64>().ok() == n.as_f64()
                    || i64::from_str_radix(t.trim_start_matches("0x"), 16).ok() == n.as_i64()
                    || i64::from_str_radix(t.trim_start_matches("0o"), 8).ok() == n.as_i64()
            }
            (Value::Scalar { text, .. }, J::String(s)) => text == s,
            (Value::Seq(items), J::Array(want)) => {
                items.len() == want.len() && items.iter().zip(want).all(|(a, b)| same(a, b))
            }
            (Value::Map(entries), J::Object(want)) => {
                entries.len() == want.len()
                    && entries.iter().all(|(k, v)| {
                        let key = match &k.value {
                            Value::Scalar { text, .. } => text.as_str(),
                            _ => return false,
                        };
                        want.get(key).is_some_and(|w| same(v, w))
                    })
            }
            (Value::Seq(items), J::Null) => items.is_empty() && node.line == 0,
            _ => false,
        }
    }

    #[test]
    fn yaml_test_suite_pass_counts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/yaml-test-suite/cases.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("fixtures/yaml-test-suite/cases.jsonl");
        let (mut valid, mut valid_ok, mut invalid, mut invalid_ok) = (0, 0, 0, 0);
        let (mut failed, mut accepted) = (Vec::new(), Vec::new());
        for line in text.lines() {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON case");
            let yaml = case["yaml"].as_str().expect("yaml");
            let id = case["id"].as_str().unwrap_or("?");
            let parsed = parse(yaml);
            if case["error"].as_bool() == Some(true) {
                invalid += 1;
                if parsed.error.is_some() {
                    invalid_ok += 1;
                } else {
                    accepted.push(id.to_owned());
                }
                continue;
            }
            valid += 1;
            let ok = parsed.error.is_none()
                && match case["json"].as_array() {
                    Some(docs) => {
                        docs.len() == parsed.docs.len()
                            && parsed.docs.iter().zip(docs).all(|(a, b)| same(a, b))
                    }
                    None => true,
                };
            if ok {
                valid_ok += 1;
            } else {
                failed.push(id.to_owned());
            }
        }
        println!(
            "yaml-test-suite: {valid_ok}/{valid} valid cases read as the suite's JSON, {invalid_ok}/{invalid} invalid cases refused"
        );
        println!("valid cases failed: {failed:?}");
        println!("invalid cases accepted: {accepted:?}");
        assert!(valid_ok >= VALID_FLOOR, "{valid_ok} < {VALID_FLOOR}");
        assert!(
            invalid_ok >= INVALID_FLOOR,
            "{invalid_ok} < {INVALID_FLOOR}"
        );
    }
}

#[cfg(test)]
mod lenient {
    use super::*;

    /// Streams kubectl and PyYAML read that the spec refuses for indentation alone: read, with the
    /// values and lines PyYAML gives them.
    #[test]
    fn continuation_lines_left_of_their_key_are_read() {
        let seldon = "spec:\n  containers:\n  - name: x\n    args: [\n      \"--a\",\n      \"--b\"\n    ]\n    image: m:1\n";
        let d = parse(seldon);
        assert!(d.error.is_none(), "{:?}", d.error);
        let c = &d.docs[0].at(&["spec", "containers"]).unwrap().items()[0];
        let args: Vec<_> = c
            .get("args")
            .unwrap()
            .items()
            .iter()
            .map(|n| n.str().unwrap())
            .collect();
        assert_eq!(args, ["--a", "--b"]);
        assert_eq!(
            c.entry("image").map(|(l, n)| (l, n.str())),
            Some((8, Some("m:1")))
        );

        let crd = "a:\n  b:\n    description: \"A long\n  text that\n continues\"\n    type: string\n  c: 'it''s\n x'\n";
        let d = parse(crd);
        assert!(d.error.is_none(), "{:?}", d.error);
        let b = d.docs[0].at(&["a", "b"]).unwrap();
        assert_eq!(
            b.get("description").unwrap().str(),
            Some("A long text that continues")
        );
        assert_eq!(b.entry("type").map(|(l, _)| l), Some(6));
        assert_eq!(d.docs[0].at(&["a", "c"]).unwrap().str(), Some("it's x"));
    }

    /// What the spec refuses for other reasons stays refused, and block scalars, comments and
    /// apostrophes in plain text are not taken for brackets or quotes.
    #[test]
    fn other_errors_and_look_alikes_are_left_alone() {
        assert!(parse("a: [1, 2\nb: 3\n").error.is_some());
        assert!(parse("a:\n  b: 1\n c: 2\n").error.is_some());
        let src = "a: |\n  x: [\n  'y\nb: it's [fine] # and { this\nc: [1,\n 2]\n";
        assert_eq!(reindent_continuations(src), None);
        let d = parse(src);
        assert!(d.error.is_none(), "{:?}", d.error);
        assert_eq!(d.docs[0].get("a").unwrap().str(), Some("x: [\n'y\n"));
    }
}
