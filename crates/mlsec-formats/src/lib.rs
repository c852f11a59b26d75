//! Bounded, non-executing parsers for the file formats models are shipped in.
//!
//! Every parser here reads untrusted bytes. None of them executes, imports or unpickles anything;
//! each names its limits as constants and returns a typed error when input exceeds one, so the
//! scanner above can turn that into a finding. They know nothing about findings or policy.
//!
//! # Brief overview
//! * [`source`]: [`ReadAt`](source::ReadAt), positioned reads over files and byte slices, so a
//!   parser reads the header of a 10 GB file without touching its tensors.
//! * [`pickle`]: an opcode reader for pickle protocols 0-5 ([`pickle::OpReader`]).
//! * [`zip`]: a central-directory zip reader that reports what Python's `zipfile` and PyTorch's
//!   miniz disagree about (name mismatches, CRC, encryption flags, overlaps, zip64).
//! * [`safetensors`], [`gguf`], [`npy`]: strict header parsers.
//! * [`tflite`]: the TensorFlow Lite FlatBuffer, as far as its operator codes.
//! * [`protobuf`]: a wire-format walker, and the ONNX and TensorFlow SavedModel views built on it.
//!
//! # Example
//! ```
//! use mlsec_formats::pickle::{OpReader, Limits};
//! use mlsec_formats::source::ReadAt;
//!
//! let data: &[u8] = b"\x80\x04K\x2a.";
//! let mut ops = OpReader::new(&data, 0, Limits::default());
//! let mut names = Vec::new();
//! while let Some(op) = ops.next_op().unwrap() {
//!     names.push(op.code.name());
//! }
//! assert_eq!(names, ["PROTO", "BININT1", "STOP"]);
//! ```
#![forbid(unsafe_code)]

pub mod gguf;
pub mod hdf5;
pub mod npy;
pub mod pickle;
pub mod protobuf;
pub mod safetensors;
pub mod source;
pub mod tflite;
pub mod zip;
