//! A protobuf wire-format walker over [`ReadAt`], and the two views built on it: ONNX
//! ([`onnx`]) and TensorFlow SavedModel ([`saved_model`]).
//!
//! Length-delimited fields are reported as ranges and only read when the caller asks, so the
//! gigabytes of `raw_data` in an ONNX initializer or a constant tensor are skipped.

use crate::source::{Cursor, ReadAt};

/// Deepest message nesting followed (subgraphs inside attributes inside nodes ...).
pub const MAX_DEPTH: usize = 32;
/// Largest single message read into memory (a node, a tensor's metadata).
pub const MAX_MESSAGE: u64 = 64 * 1024 * 1024;
/// Most fields walked in one file.
pub const MAX_FIELDS: u64 = 50_000_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("truncated protobuf at offset {0}")]
    Truncated(u64),
    #[error("invalid protobuf at offset {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    #[error("limit {limit} exceeded: {what}")]
    Limit { limit: &'static str, what: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A field value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Varint(u64),
    I64(u64),
    I32(u32),
    /// A length-delimited field: where its bytes are.
    Len {
        offset: u64,
        len: u64,
    },
}

/// Iterates the fields of one message occupying `[start, end)` of a source.
pub struct Fields<'a> {
    cur: Cursor<'a>,
    end: u64,
}

impl<'a> Fields<'a> {
    pub fn new(src: &'a dyn ReadAt, start: u64, end: u64) -> Fields<'a> {
        Fields {
            cur: Cursor::new(src, start),
            end: end.min(src.len()),
        }
    }

    pub fn whole(src: &'a dyn ReadAt) -> Fields<'a> {
        Fields::new(src, 0, src.len())
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let start = self.cur.pos();
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            if self.cur.pos() >= self.end {
                return Err(Error::Truncated(start));
            }
            let b = self.cur.byte()?.ok_or(Error::Truncated(start))?;
            if shift == 63 && b > 1 {
                return Err(Error::Invalid {
                    offset: start,
                    reason: "varint overflows 64 bits".into(),
                });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Invalid {
            offset: start,
            reason: "varint longer than 10 bytes".into(),
        })
    }

    fn fixed(&mut self, n: usize) -> Result<u64, Error> {
        let start = self.cur.pos();
        if start + n as u64 > self.end {
            return Err(Error::Truncated(start));
        }
        let b = self.cur.take(n).map_err(|_| Error::Truncated(start))?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Wire)>, Error> {
        if self.cur.pos() >= self.end {
            return Ok(None);
        }
        let at = self.cur.pos();
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| Error::Invalid {
            offset: at,
            reason: "field number too large".into(),
        })?;
        if field == 0 {
            return Err(Error::Invalid {
                offset: at,
                reason: "field number 0".into(),
            });
        }
        let w = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::I64(self.fixed(8)?),
            5 => Wire::I32(self.fixed(4)? as u32),
            2 => {
                let len = self.varint()?;
                let offset = self.cur.pos();
                if offset.checked_add(len).is_none_or(|e| e > self.end) {
                    return Err(Error::Truncated(at));
                }
                self.cur.skip(len).map_err(|_| Error::Truncated(at))?;
                Wire::Len { offset, len }
            }
            t => {
                return Err(Error::Invalid {
                    offset: at,
                    reason: format!("unsupported wire type {t}"),
                });
            }
        };
        Ok(Some((field, w)))
    }
}

/// Reads a length-delimited field as UTF-8 text (lossy), bounded by [`MAX_MESSAGE`].
pub fn read_string(src: &dyn ReadAt, w: Wire) -> Result<String, Error> {
    let Wire::Len { offset, len } = w else {
        return Err(Error::Invalid {
            offset: 0,
            reason: "expected a string".into(),
        });
    };
    if len > MAX_MESSAGE {
        return Err(Error::Limit {
            limit: "MAX_MESSAGE",
            what: format!("{len}-byte string"),
        });
    }
    Ok(String::from_utf8_lossy(&src.read_vec(offset, len as usize)?).into_owned())
}

/// Walk state shared by the views: depth and a field budget.
struct Budget {
    fields: u64,
}

impl Budget {
    fn tick(&mut self) -> Result<(), Error> {
        self.fields += 1;
        if self.fields > MAX_FIELDS {
            return Err(Error::Limit {
                limit: "MAX_FIELDS",
                what: format!("more than {MAX_FIELDS} protobuf fields"),
            });
        }
        Ok(())
    }
}

pub mod onnx {
    //! What the scanner needs from an ONNX `ModelProto`: operator domains and external data.
    use super::{Budget, Error, Fields, MAX_DEPTH, Wire, read_string};
    use crate::source::{ReadAt, Slice};

    #[derive(Debug, Clone, Default)]
    pub struct Model {
        pub ir_version: Option<u64>,
        pub producer: Option<String>,
        /// `(domain, version)` from `opset_import`.
        pub opsets: Vec<(String, i64)>,
        /// `(domain, op_type, node name)` of every node, in graph order, subgraphs included.
        pub nodes: Vec<(String, String, String)>,
        /// `(tensor name, location)` of every tensor stored as external data.
        pub external: Vec<(String, String)>,
        /// `(domain, name)` of model-local functions.
        pub functions: Vec<(String, String)>,
        /// Whether a graph was found at all.
        pub has_graph: bool,
    }

    /// A quick check: field 1 (ir_version) as a small varint, then a known next field.
    pub fn sniff(head: &[u8]) -> bool {
        matches!(head, [0x08, v, next, ..] if (1..=20).contains(v) && matches!(next, 0x12 | 0x1a | 0x22 | 0x2a | 0x32 | 0x3a | 0x42))
    }

    pub fn parse(src: &dyn ReadAt) -> Result<Model, Error> {
        let mut m = Model::default();
        let mut b = Budget { fields: 0 };
        let mut f = Fields::whole(src);
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (1, Wire::Varint(v)) => m.ir_version = Some(v),
                (2, w @ Wire::Len { .. }) => m.producer = Some(read_string(src, w)?),
                (7, Wire::Len { offset, len }) => {
                    m.has_graph = true;
                    graph(src, offset, offset + len, &mut m, &mut b, 0)?;
                }
                (8, Wire::Len { offset, len }) => {
                    let mut domain = String::new();
                    let mut version = 0i64;
                    let mut g = Fields::new(src, offset, offset + len);
                    while let Some((no, w)) = g.next_field()? {
                        match (no, w) {
                            (1, w @ Wire::Len { .. }) => domain = read_string(src, w)?,
                            (2, Wire::Varint(v)) => version = v as i64,
                            _ => {}
                        }
                    }
                    m.opsets.push((domain, version));
                }
                (25, Wire::Len { offset, len }) => {
                    let mut domain = String::new();
                    let mut name = String::new();
                    let mut g = Fields::new(src, offset, offset + len);
                    while let Some((no, w)) = g.next_field()? {
                        b.tick()?;
                        match (no, w) {
                            (1, w @ Wire::Len { .. }) => name = read_string(src, w)?,
                            (10, w @ Wire::Len { .. }) => domain = read_string(src, w)?,
                            (7, Wire::Len { offset, len }) => {
                                node(src, offset, offset + len, &mut m, &mut b, 1)?;
                            }
                            _ => {}
                        }
                    }
                    m.functions.push((domain, name));
                }
                _ => {}
            }
        }
        Ok(m)
    }

    fn graph(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        m: &mut Model,
        b: &mut Budget,
        depth: usize,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Limit {
                limit: "MAX_DEPTH",
                what: "graphs nested too deeply".into(),
            });
        }
        let mut f = Fields::new(src, start, end);
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (1, Wire::Len { offset, len }) => node(src, offset, offset + len, m, b, depth)?,
                (5, Wire::Len { offset, len }) => tensor(src, offset, offset + len, m, b)?,
                (15, Wire::Len { offset, len }) => {
                    // SparseTensorProto: values (1) and indices (2) are TensorProtos.
                    let mut g = Fields::new(src, offset, offset + len);
                    while let Some((no, w)) = g.next_field()? {
                        if let (1 | 2, Wire::Len { offset, len }) = (no, w) {
                            tensor(src, offset, offset + len, m, b)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn node(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        m: &mut Model,
        b: &mut Budget,
        depth: usize,
    ) -> Result<(), Error> {
        let mut f = Fields::new(src, start, end);
        let (mut name, mut op, mut domain) = (String::new(), String::new(), String::new());
        let mut attrs = Vec::new();
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (3, w @ Wire::Len { .. }) => name = read_string(src, w)?,
                (4, w @ Wire::Len { .. }) => op = read_string(src, w)?,
                (7, w @ Wire::Len { .. }) => domain = read_string(src, w)?,
                (5, Wire::Len { offset, len }) => attrs.push((offset, len)),
                _ => {}
            }
        }
        m.nodes.push((domain, op, name));
        for (offset, len) in attrs {
            // AttributeProto: t (5) tensor, g (6) graph, tensors (10), graphs (11).
            let mut a = Fields::new(src, offset, offset + len);
            while let Some((no, w)) = a.next_field()? {
                b.tick()?;
                match (no, w) {
                    (5 | 10, Wire::Len { offset, len }) => tensor(src, offset, offset + len, m, b)?,
                    (6 | 11, Wire::Len { offset, len }) => {
                        graph(src, offset, offset + len, m, b, depth + 1)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn tensor(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        m: &mut Model,
        b: &mut Budget,
    ) -> Result<(), Error> {
        let mut f = Fields::new(src, start, end);
        let mut name = String::new();
        let mut external = false;
        let mut location = None;
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (8, w @ Wire::Len { .. }) => name = read_string(src, w)?,
                (14, Wire::Varint(v)) => external = v == 1,
                (13, Wire::Len { offset, len }) => {
                    let (mut key, mut value) = (String::new(), String::new());
                    let sub = Slice::new(src, offset, len);
                    let mut e = Fields::whole(&sub);
                    while let Some((no, w)) = e.next_field()? {
                        match (no, w) {
                            (1, w @ Wire::Len { .. }) => key = read_string(&sub, w)?,
                            (2, w @ Wire::Len { .. }) => value = read_string(&sub, w)?,
                            _ => {}
                        }
                    }
                    if key == "location" {
                        location = Some(value);
                    }
                }
                _ => {}
            }
        }
        if let Some(loc) = location {
            m.external.push((name, loc));
        } else if external {
            m.external.push((name, String::new()));
        }
        Ok(())
    }
}

pub mod saved_model {
    //! What the scanner needs from a TensorFlow `saved_model.pb`: the op of every node, in the
    //! graphs and in the function library.
    use super::{Budget, Error, Fields, Wire, read_string};
    use crate::source::ReadAt;

    #[derive(Debug, Clone, Default)]
    pub struct SavedModel {
        /// `(op, node name, function name or empty)`.
        pub nodes: Vec<(String, String, String)>,
        pub meta_graphs: usize,
    }

    pub fn parse(src: &dyn ReadAt) -> Result<SavedModel, Error> {
        let mut out = SavedModel::default();
        let mut b = Budget { fields: 0 };
        let mut f = Fields::whole(src);
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            if let (2, Wire::Len { offset, len }) = (no, w) {
                out.meta_graphs += 1;
                let mut mg = Fields::new(src, offset, offset + len);
                while let Some((no, w)) = mg.next_field()? {
                    b.tick()?;
                    if let (2, Wire::Len { offset, len }) = (no, w) {
                        graph_def(src, offset, offset + len, &mut out, &mut b)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// A bare `GraphDef` (a TensorFlow 1 frozen graph `.pb`).
    pub fn parse_graph_def(src: &dyn ReadAt) -> Result<SavedModel, Error> {
        let mut out = SavedModel::default();
        let mut b = Budget { fields: 0 };
        graph_def(src, 0, src.len(), &mut out, &mut b)?;
        Ok(out)
    }

    fn graph_def(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        out: &mut SavedModel,
        b: &mut Budget,
    ) -> Result<(), Error> {
        let mut g = Fields::new(src, start, end);
        while let Some((no, w)) = g.next_field()? {
            b.tick()?;
            match (no, w) {
                (1, Wire::Len { offset, len }) => node_def(src, offset, offset + len, "", out, b)?,
                (2, Wire::Len { offset, len }) => {
                    let mut lib = Fields::new(src, offset, offset + len);
                    while let Some((no, w)) = lib.next_field()? {
                        b.tick()?;
                        if let (1, Wire::Len { offset, len }) = (no, w) {
                            function_def(src, offset, offset + len, out, b)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn function_def(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        out: &mut SavedModel,
        b: &mut Budget,
    ) -> Result<(), Error> {
        let mut name = String::new();
        let mut nodes = Vec::new();
        let mut f = Fields::new(src, start, end);
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (1, Wire::Len { offset, len }) => {
                    // OpDef signature: name (1).
                    let mut s = Fields::new(src, offset, offset + len);
                    while let Some((no, w)) = s.next_field()? {
                        if no == 1 {
                            name = read_string(src, w)?;
                        }
                    }
                }
                (3, Wire::Len { offset, len }) => nodes.push((offset, len)),
                _ => {}
            }
        }
        for (offset, len) in nodes {
            node_def(src, offset, offset + len, &name, out, b)?;
        }
        Ok(())
    }

    fn node_def(
        src: &dyn ReadAt,
        start: u64,
        end: u64,
        func: &str,
        out: &mut SavedModel,
        b: &mut Budget,
    ) -> Result<(), Error> {
        let (mut name, mut op) = (String::new(), String::new());
        let mut f = Fields::new(src, start, end);
        while let Some((no, w)) = f.next_field()? {
            b.tick()?;
            match (no, w) {
                (1, w @ Wire::Len { .. }) => name = read_string(src, w)?,
                (2, w @ Wire::Len { .. }) => op = read_string(src, w)?,
                _ => {}
            }
        }
        out.nodes.push((op, name, func.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = onnx::parse(&data);
            let _ = saved_model::parse(&data);
        }
    }

    #[test]
    fn length_past_end_is_truncation() {
        let data = [0x3a, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(onnx::parse(&&data[..]), Err(Error::Truncated(_))));
    }
}
