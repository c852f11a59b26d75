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

/// Parses every document of `src`.
pub fn parse(src: &str) -> Documents {
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
