//! `# mlsec: ignore[ID, ...] reason` comments in YAML, and the lines each one covers.
//!
//! A comment on its own line covers the block that starts on the next line: the whole document
//! when that line is at column 0, otherwise the line and everything indented below it. A comment
//! at the end of a line covers that line's block.

/// The marker, shared with the Python and Dockerfile forms.
const MARK: &str = "mlsec: ignore[";

#[derive(Debug, Default)]
pub struct Suppressions {
    /// (rule id, first line, last line), 1-based, inclusive.
    ranges: Vec<(String, u32, u32)>,
    /// (line, rule id) of every id named, to check them against the rule list.
    pub named: Vec<(u32, String)>,
}

impl Suppressions {
    pub fn covers(&self, id: &str, line: u32) -> bool {
        self.ranges
            .iter()
            .any(|(r, a, b)| r == id && (*a..=*b).contains(&line))
    }

    /// Ids covering `line`.
    pub fn at(&self, line: u32) -> impl Iterator<Item = &str> {
        self.ranges
            .iter()
            .filter(move |(_, a, b)| (*a..=*b).contains(&line))
            .map(|(r, ..)| r.as_str())
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

fn is_code(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Finds the suppression comments of a YAML file.
pub fn parse(src: &str) -> Suppressions {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Suppressions::default();
    for (i, raw) in lines.iter().enumerate() {
        let Some(at) = raw.find(MARK) else { continue };
        let Some(hash) = raw[..at].rfind('#') else {
            continue;
        };
        let Some(end) = raw[at..].find(']') else {
            continue;
        };
        let ids: Vec<String> = raw[at + MARK.len()..at + end]
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let trailing = is_code(&raw[..hash]);
        let start = if trailing {
            Some(i)
        } else {
            (i + 1..lines.len()).find(|&j| is_code(lines[j]))
        };
        let Some(start) = start else { continue };
        let first = lines[start];
        let base = indent(first);
        let opens_block = first.trim_end().ends_with(':');
        let mut last = start;
        for (j, l) in lines.iter().enumerate().skip(start + 1) {
            if l.trim_start().starts_with("---") && indent(l) == 0 {
                break;
            }
            if !is_code(l) {
                continue;
            }
            let d = indent(l);
            let list_under_key = opens_block && d == base && l.trim_start().starts_with("- ");
            if base > 0 && d <= base && !list_under_key {
                break;
            }
            last = j;
        }
        for id in ids {
            out.named.push((i as u32 + 1, id.clone()));
            out.ranges.push((id, start as u32 + 1, last as u32 + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_documents_and_trailing_comments() {
        let src = "\
# mlsec: ignore[K8S005] whole document
apiVersion: v1
kind: Pod
spec:
  containers:
  # mlsec: ignore[K8S001] this item only
  - name: a
    securityContext:
      privileged: true
  - name: b
    image: x:latest # mlsec: ignore[K8S010] pinned by the operator
---
kind: Pod
";
        let s = parse(src);
        assert!(s.covers("K8S005", 2) && s.covers("K8S005", 11) && !s.covers("K8S005", 13));
        assert!(s.covers("K8S001", 7) && s.covers("K8S001", 9) && !s.covers("K8S001", 10));
        assert!(s.covers("K8S010", 11) && !s.covers("K8S010", 10));
        assert_eq!(s.named.len(), 3);
    }

    #[test]
    fn a_key_whose_list_is_not_indented_covers_the_list() {
        let src = "spec:\n  # mlsec: ignore[K8S006] read-only model cache\n  volumes:\n  - hostPath: {path: /models}\n  nodeName: x\n";
        let s = parse(src);
        assert!(s.covers("K8S006", 4) && !s.covers("K8S006", 5));
    }
}
