//! What a Python global means for safety: the allowlist of globals ML libraries put in their
//! pickles, the denylist of code-execution, file and network primitives, and a severity for the
//! rest.
//!
//! Names are classified as a whole dotted path (`module.name`, where `name` may itself be dotted in
//! protocol 4). Attribute traversal through a module (`posixpath.os.system`) is re-rooted at every
//! component, so a dangerous module reached through a harmless one is still found.

use mlsec_diagnostics::Severity;

/// The verdict on one global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On the allowlist.
    Safe,
    /// A known primitive; `what` says what it gives an attacker.
    Dangerous {
        severity: Severity,
        what: &'static str,
    },
    /// Neither; severity by where it lives and what its name suggests.
    Unknown {
        severity: Severity,
        why: &'static str,
    },
}

const EXEC: &str = "code execution";
const SHELL: &str = "command execution";
const FILE: &str = "file system access";
const NET: &str = "network access";
const LOADER: &str = "nested deserialization";
const TRAMPOLINE: &str = "string-to-callable trampoline";
const INTROSPECT: &str = "interpreter internals";

/// Denied dotted prefixes: a full name matches when it equals the prefix or continues it with `.`.
static DENY: &[(&str, &str)] = &[
    // Operating system and processes.
    ("os", SHELL),
    ("posix", SHELL),
    ("nt", SHELL),
    ("subprocess", SHELL),
    ("_posixsubprocess", SHELL),
    ("pty", SHELL),
    ("commands", SHELL),
    ("popen2", SHELL),
    ("platform", SHELL),
    ("multiprocessing", SHELL),
    ("concurrent", EXEC),
    ("asyncio", SHELL),
    ("threading", EXEC),
    ("_thread", EXEC),
    ("thread", EXEC),
    ("signal", EXEC),
    ("ctypes", EXEC),
    ("_ctypes", EXEC),
    ("cffi", EXEC),
    ("fcntl", FILE),
    ("resource", EXEC),
    ("mmap", FILE),
    ("sys", INTROSPECT),
    ("gc", INTROSPECT),
    // Builtins that execute, import or reach interpreter internals.
    ("builtins.eval", EXEC),
    ("builtins.exec", EXEC),
    ("builtins.execfile", EXEC),
    ("builtins.compile", EXEC),
    ("builtins.open", FILE),
    ("builtins.file", FILE),
    ("builtins.__import__", EXEC),
    ("builtins.getattr", TRAMPOLINE),
    ("builtins.setattr", EXEC),
    ("builtins.delattr", EXEC),
    ("builtins.globals", INTROSPECT),
    ("builtins.locals", INTROSPECT),
    ("builtins.vars", INTROSPECT),
    ("builtins.breakpoint", EXEC),
    ("builtins.input", EXEC),
    ("builtins.help", EXEC),
    ("builtins.reload", EXEC),
    ("builtins.apply", EXEC),
    ("builtins.exit", EXEC),
    ("builtins.quit", EXEC),
    ("builtins.print", EXEC),
    ("builtins.memoryview", INTROSPECT),
    // Running code from strings, files or modules.
    ("runpy", EXEC),
    ("importlib", EXEC),
    ("imp", EXEC),
    ("pkgutil", TRAMPOLINE),
    ("pydoc", TRAMPOLINE),
    ("zipimport", EXEC),
    ("code", EXEC),
    ("codeop", EXEC),
    ("pdb", EXEC),
    ("bdb", EXEC),
    ("timeit", EXEC),
    ("trace", EXEC),
    ("cProfile", EXEC),
    ("profile", EXEC),
    ("doctest", EXEC),
    ("idlelib", EXEC),
    ("lib2to3", EXEC),
    ("types", EXEC),
    ("marshal", EXEC),
    ("inspect", INTROSPECT),
    ("site", EXEC),
    ("sysconfig", EXEC),
    ("ensurepip", EXEC),
    ("pip", EXEC),
    ("setuptools", EXEC),
    ("distutils", EXEC),
    ("venv", EXEC),
    ("zipapp", EXEC),
    ("logging.config", EXEC),
    ("tkinter", EXEC),
    // CPython's platform helpers: they run compilers and shell commands, and nothing in a model
    // refers to them.
    ("_osx_support", SHELL),
    ("_aix_support", SHELL),
    ("_ios_support", SHELL),
    ("_android_support", SHELL),
    ("_apple_support", SHELL),
    ("_bootsubprocess", SHELL),
    ("_pyrepl", SHELL),
    ("pipes", SHELL),
    ("pexpect", SHELL),
    ("_interpreters", EXEC),
    ("_xxsubinterpreters", EXEC),
    ("_frozen_importlib", EXEC),
    ("_frozen_importlib_external", EXEC),
    ("_imp", EXEC),
    ("atexit", EXEC),
    ("_signal", EXEC),
    ("unittest", EXEC),
    ("compileall", FILE),
    ("py_compile", FILE),
    ("_sqlite3", FILE),
    ("linecache", FILE),
    ("filecmp", FILE),
    ("select", NET),
    ("selectors", NET),
    ("syslog", NET),
    ("operator.itemgetter", TRAMPOLINE),
    ("_operator.itemgetter", TRAMPOLINE),
    ("operator.attrgetter", TRAMPOLINE),
    ("operator.methodcaller", TRAMPOLINE),
    ("operator.call", TRAMPOLINE),
    ("_operator.attrgetter", TRAMPOLINE),
    ("_operator.methodcaller", TRAMPOLINE),
    ("_operator.call", TRAMPOLINE),
    ("functools.partial", TRAMPOLINE),
    ("functools.partialmethod", TRAMPOLINE),
    ("functools.reduce", TRAMPOLINE),
    ("_functools", TRAMPOLINE),
    ("copyreg.add_extension", EXEC),
    ("collections.namedtuple", EXEC),
    // Files.
    ("shutil", FILE),
    ("tempfile", FILE),
    ("glob", FILE),
    ("io", FILE),
    ("_io", FILE),
    ("codecs.open", FILE),
    ("fileinput", FILE),
    ("tarfile", FILE),
    ("zipfile", FILE),
    ("shelve", LOADER),
    ("dbm", FILE),
    ("sqlite3", FILE),
    // Network.
    ("socket", NET),
    ("_socket", NET),
    ("ssl", NET),
    ("http", NET),
    ("httplib", NET),
    ("urllib", NET),
    ("urllib2", NET),
    ("urllib3", NET),
    ("requests", NET),
    ("httpx", NET),
    ("aiohttp", NET),
    ("ftplib", NET),
    ("smtplib", NET),
    ("telnetlib", NET),
    ("poplib", NET),
    ("imaplib", NET),
    ("nntplib", NET),
    ("xmlrpc", NET),
    ("xmlrpclib", NET),
    ("socketserver", NET),
    ("webbrowser", SHELL),
    // Nested deserializers.
    ("pickle", LOADER),
    ("_pickle", LOADER),
    ("cPickle", LOADER),
    ("dill", LOADER),
    ("cloudpickle", LOADER),
    ("joblib.load", LOADER),
    ("joblib.numpy_pickle.load", LOADER),
    ("jsonpickle", LOADER),
    ("yaml", LOADER),
    // ML libraries' own loaders and runners.
    ("torch.load", LOADER),
    ("torch.serialization.load", LOADER),
    ("torch.hub", NET),
    ("torch.utils.collect_env", SHELL),
    ("torch.utils.cpp_extension", EXEC),
    ("torch._inductor", EXEC),
    ("torch._dynamo", EXEC),
    ("torch.jit", EXEC),
    ("torch.package", EXEC),
    ("torch.distributed", NET),
    ("torch.ops", EXEC),
    // `basichandlers(ext, data)` runs `pickle.loads(data)` for "pickle"/"pyd" extensions.
    ("torch.utils.data.datapipes.utils.decoder", LOADER),
    ("torch._ops", EXEC),
    ("torch.fx.graph_module", EXEC),
    ("torch._C", INTROSPECT),
    ("numpy.load", LOADER),
    ("numpy.lib.npyio", FILE),
    ("numpy.lib._npyio_impl", FILE),
    ("numpy.fromfile", FILE),
    ("numpy.loadtxt", FILE),
    ("numpy.genfromtxt", FILE),
    ("numpy.memmap", FILE),
    ("numpy.testing", EXEC),
    ("numpy.f2py", EXEC),
    ("numpy.distutils", EXEC),
    ("numpy.ctypeslib", EXEC),
    ("pandas.io", FILE),
    ("pandas.read_pickle", LOADER),
    ("pandas.eval", EXEC),
    ("pandas.read_csv", NET),
    ("pandas.read_table", NET),
    ("pandas.read_json", NET),
    ("pandas.read_html", NET),
    ("pandas.read_xml", NET),
    ("pandas.read_excel", NET),
    ("pandas.read_parquet", NET),
    ("pandas.read_feather", NET),
    ("pandas.read_orc", NET),
    ("pandas.read_fwf", NET),
    ("pandas.read_sql", NET),
    ("pandas.read_hdf", FILE),
    ("pandas.read_stata", NET),
    ("pandas.read_sas", NET),
    ("pandas.read_spss", FILE),
    ("pandas.read_clipboard", EXEC),
    ("pandas.core.computation", EXEC),
    ("mlflow", EXEC),
    ("keras.models.load_model", LOADER),
    ("tensorflow.io", FILE),
    ("tensorflow.keras.models.load_model", LOADER),
    ("transformers.pipeline", NET),
    ("transformers.pipelines", NET),
    ("transformers.dynamic_module_utils", EXEC),
    ("transformers.agents", EXEC),
    ("transformers.tools", EXEC),
    ("transformers.commands", EXEC),
    ("transformers.utils.hub", NET),
    ("transformers.hf_argparser", EXEC),
    ("accelerate.commands", EXEC),
    ("accelerate.launchers", EXEC),
    ("accelerate.utils.launch", EXEC),
    ("huggingface_hub", NET),
];

/// What a standard-library definition reaches, as found by `scripts/pickle_tables.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Starts a process (`subprocess`, `os.system`, `os.exec*`, `os.spawn*`).
    Shell,
    /// Runs code from a string or imports a module by name.
    Exec,
    /// Deserialises nested data (`pickle`, `marshal`, `shelve`).
    Loader,
    /// Opens a connection.
    Net,
    /// Writes, moves or deletes files.
    File,
}

impl Reach {
    fn what(self) -> &'static str {
        match self {
            Reach::Shell => SHELL,
            Reach::Exec => EXEC,
            Reach::Loader => LOADER,
            Reach::Net => NET,
            Reach::File => FILE,
        }
    }
}

/// The standard-library definition `full` reaches a primitive: what it reaches and how.
pub fn stdlib_reach(full: &str) -> Option<(Reach, &'static str)> {
    let t = crate::generated::STDLIB_REACH;
    t.binary_search_by(|(name, _, _)| (*name).cmp(full))
        .ok()
        .map(|i| (t[i].1, t[i].2))
}

/// Applies CPython's `_compat_pickle` renames (what `pickle.Unpickler` does for protocol 0-2
/// streams): `__builtin__.xrange` is `builtins.range`, `commands.getoutput` is
/// `subprocess.getoutput`. A Python 2 name that does not exist in Python 3 cannot be imported
/// under its own name, so the renamed one is what a load reaches.
pub fn compat_name<'a>(module: &'a str, name: &'a str) -> (&'a str, &'a str) {
    use crate::generated::{COMPAT_MODULES, COMPAT_NAMES};
    if let Ok(i) = COMPAT_NAMES.binary_search_by(|((m, n), _)| (*m, *n).cmp(&(module, name))) {
        return COMPAT_NAMES[i].1;
    }
    match COMPAT_MODULES.binary_search_by(|(m, _)| (*m).cmp(module)) {
        Ok(i) => (COMPAT_MODULES[i].1, name),
        Err(_) => (module, name),
    }
}

/// CPython's own test suite (`test.support.script_helper.assert_python_ok` runs a process):
/// never part of a model, and full of helpers that run code.
fn cpython_test_suite(comps: &[&str]) -> bool {
    comps.first() == Some(&"test")
        && comps.get(1).is_some_and(|c| {
            matches!(*c, "support" | "libregrtest" | "regrtest" | "test_support")
                || c.starts_with("test_")
        })
}

/// Trampolines and loaders are high rather than critical when they stand alone: the callable they
/// reach is reported separately when it can be resolved.
fn deny_severity(what: &'static str) -> Severity {
    if what == TRAMPOLINE {
        Severity::High
    } else {
        Severity::Critical
    }
}

/// Exact allowlisted full names.
static SAFE: &[&str] = &[
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "copyreg._reconstructor",
    "copyreg.__newobj__",
    "copyreg.__newobj_ex__",
    "_codecs.encode",
    "codecs.encode",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.range",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.object",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "uuid.UUID",
    "argparse.Namespace",
    // How a `logging.Logger` pickles itself: a lookup by name, no handler is created.
    "logging.getLogger",
    "re._compile",
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.PurePosixPath",
    "pathlib.WindowsPath",
    "pathlib.PureWindowsPath",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy.core._internal._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.ma.core._mareconstruct",
    "numpy.ma.core.MaskedArray",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random._generator.Generator",
    "torch.Tensor",
    "torch.Size",
    "torch.device",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.storage._load_from_bytes",
    "torch.torch_version.TorchVersion",
    "torch.nn.parameter.Parameter",
    "torch.nn.parameter.Buffer",
    "torch.nn.parameter.UninitializedParameter",
    "torch.nn.parameter.UninitializedBuffer",
    "torch.serialization._get_layout",
    "torch.jit._pickle.build_intlist",
    "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_tensor_from_id",
    "torch.jit._pickle.restore_type_tag",
    "joblib.numpy_pickle.NumpyArrayWrapper",
    // joblib before 0.10: arrays in side files (`.pkl_01.npy`) or zlib-compressed inline.
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle.ZNDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    "numpy.matrix",
    "numpy.matrixlib.defmatrix.matrix",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    // dill's reconstructors: `_create_array(f, args, state)` calls `f(*args)`, and the analyser
    // follows that call; `_load_type` maps a name to a builtin type from a fixed table.
    "dill._dill._create_array",
    "dill._dill._load_type",
    "torch.utils.hooks.RemovableHandle",
    // Functions scikit-learn stores as hyperparameters (score_func, algorithm helpers).
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.f_oneway",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "sklearn.metrics._scorer._passthrough_scorer",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
];

/// NumPy functions models store as callables (aggregations, transforms).
static NUMPY_FUNCTIONS: &[&str] = &[
    "mean",
    "median",
    "sum",
    "prod",
    "max",
    "min",
    "amax",
    "amin",
    "std",
    "var",
    "log",
    "log1p",
    "log2",
    "log10",
    "exp",
    "expm1",
    "sqrt",
    "abs",
    "absolute",
    "square",
    "tanh",
    "sign",
    "round",
    "clip",
    "percentile",
    "quantile",
    "nanmean",
    "nanmedian",
    "nansum",
    "nanmax",
    "nanmin",
    "nanstd",
    "argmax",
    "argmin",
    "asarray",
    "array",
    "cumsum",
    "maximum",
    "minimum",
    "add",
    "subtract",
    "multiply",
    "divide",
    "true_divide",
    "power",
    "reciprocal",
    "negative",
    "floor",
    "ceil",
    "rint",
    "sin",
    "cos",
    "arctan",
    "sinh",
    "cosh",
    "identity",
    "average",
    "isnan",
    "isfinite",
];

static TORCH_DTYPES: &[&str] = &[
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "long",
    "int",
    "short",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "sparse_csc",
    "sparse_bsr",
    "sparse_bsc",
    "_mkldnn",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
];

static NUMPY_SCALARS: &[&str] = &[
    "float16",
    "float32",
    "float64",
    "longdouble",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool_",
    "bool",
    "complex64",
    "complex128",
    "clongdouble",
    "str_",
    "bytes_",
    "void",
    "object_",
    "datetime64",
    "timedelta64",
    "intc",
    "uintc",
    "intp",
    "uintp",
    "longlong",
    "ulonglong",
    "half",
    "single",
    "double",
];

/// Packages whose pickled reconstructors and estimator classes are safe by pattern.
static ML_CLASS_NAMESPACES: &[&str] = &[
    "sklearn",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch.nn.modules",
    "torch.nn.parallel",
    "transformers",
    "accelerate",
    "peft",
    "torch.optim",
    "pandas",
    "numpy.random",
    "scipy.sparse",
    "scipy.stats",
    "scipy.interpolate",
    "scipy.spatial",
    "imblearn",
    "category_encoders",
    "statsmodels",
    "networkx",
];

/// Libraries whose unknown globals are probably benign.
static ML_ROOTS: &[&str] = &[
    "torch",
    "numpy",
    "sklearn",
    "scipy",
    "pandas",
    "xgboost",
    "lightgbm",
    "catboost",
    "transformers",
    "tokenizers",
    "collections",
    "datetime",
    "torchvision",
    "torchaudio",
    "timm",
    "lightning",
    "pytorch_lightning",
    "__torch__",
    "statsmodels",
    "joblib",
    "enum",
    "typing",
    "dataclasses",
    "networkx",
];

static SUSPICIOUS_WORDS: &[&str] = &[
    "exec",
    "eval",
    "system",
    "popen",
    "spawn",
    "shell",
    "run",
    "call",
    "load",
    "open",
    "import",
    "compile",
    "command",
    "cmd",
    "write",
    "remove",
    "unlink",
    "rmtree",
    "download",
    "url",
    "request",
    "socket",
    "connect",
    "subprocess",
    "pickle",
    "marshal",
    "getattr",
    "setattr",
    "globals",
    "builtins",
    "code",
    "invoke",
    "execute",
    "upload",
    "fetch",
];

/// Module aliases: Python 2 names and OS-specific implementations.
fn canonical_root(root: &str) -> &str {
    match root {
        "__builtin__" | "__builtins__" => "builtins",
        "copy_reg" => "copyreg",
        "posix" | "nt" => "os",
        other => other,
    }
}

fn denied(full: &str) -> Option<&'static str> {
    DENY.iter()
        .filter(|(p, _)| {
            full == *p || (full.starts_with(p) && full.as_bytes().get(p.len()) == Some(&b'.'))
        })
        .max_by_key(|(p, _)| p.len())
        .map(|(_, what)| *what)
}

fn is_dunder(s: &str) -> bool {
    s.len() > 4 && s.starts_with("__") && s.ends_with("__")
}

/// `CamelCase`, or a private `_CamelCase` class.
fn is_class_name(s: &str) -> bool {
    let t = s.strip_prefix('_').unwrap_or(s);
    t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Modules of pure tensor functions that full checkpoints reference as activation callables.
fn is_functional_module(module: &str) -> bool {
    matches!(
        module,
        "torch.nn.functional"
            | "torch._C._nn"
            | "torch._C._special"
            | "torch._C._linalg"
            | "torch._C._fft"
    )
}

fn in_namespace(module: &str, ns: &str) -> bool {
    module == ns || (module.starts_with(ns) && module.as_bytes().get(ns.len()) == Some(&b'.'))
}

fn safe(module: &str, name: &str) -> bool {
    let full = format!("{module}.{name}");
    if SAFE.contains(&full.as_str()) {
        return true;
    }
    if name.contains('.') {
        return false;
    }
    if module.starts_with("__torch__") {
        return true;
    }
    if (module == "torch._utils" || module == "torch._tensor") && name.starts_with("_rebuild_") {
        return true;
    }
    if module == "torch"
        && (TORCH_DTYPES.contains(&name) || (name.ends_with("Storage") && is_class_name(name)))
    {
        return true;
    }
    if is_functional_module(module) && !name.starts_with('_') {
        return true;
    }
    if module == "numpy" && (NUMPY_SCALARS.contains(&name) || NUMPY_FUNCTIONS.contains(&name)) {
        return true;
    }
    if module == "numpy.dtypes" && name.ends_with("DType") {
        return true;
    }
    if module == "scipy.sparse" || module.starts_with("scipy.sparse.") {
        return name.ends_with("_matrix") || name.ends_with("_array");
    }
    if ML_CLASS_NAMESPACES
        .iter()
        .any(|ns| in_namespace(module, ns))
    {
        // Cython's pickle helpers: `__pyx_unpickle_Class` and scikit-learn's `newObj(cls)`.
        if is_class_name(name)
            || name.starts_with("__pyx_unpickle_")
            || (module.starts_with("sklearn.") && name == "newObj")
        {
            return true;
        }
        if in_namespace(module, "pandas")
            && (name.starts_with("_new_")
                || name.starts_with("_unpickle")
                || name == "new_block"
                || name == "_restore_state")
        {
            return true;
        }
    }
    false
}

/// Classifies `module.name`. `name` may be dotted (protocol 4 qualnames, getattr chains).
pub fn classify(module: &str, name: &str) -> Verdict {
    let (module, name) = compat_name(module.trim(), name.trim());
    let mut comps: Vec<&str> = module.split('.').chain(name.split('.')).collect();
    if let Some(first) = comps.first_mut() {
        *first = canonical_root(first);
    }
    if comps.iter().any(|c| c.is_empty()) {
        return Verdict::Unknown {
            severity: Severity::High,
            why: "malformed dotted name",
        };
    }
    let exact_module = comps[..module.split('.').count()].join(".");
    let exact = format!("{exact_module}.{name}");
    // Exact allowlist entries and compiled functional ops win over a denied parent module
    // (`torch._C._nn.gelu` under `torch._C`).
    if SAFE.contains(&exact.as_str())
        || (is_functional_module(&exact_module) && !name.contains('.') && !name.starts_with('_'))
    {
        return Verdict::Safe;
    }
    // Dunder attributes reach interpreter internals (`__globals__`, `__builtins__`, `__subclasses__`).
    let module_len = module.split('.').count();
    if comps
        .iter()
        .skip(module_len)
        .any(|c| is_dunder(c) && !matches!(*c, "__newobj__" | "__newobj_ex__"))
    {
        return Verdict::Dangerous {
            severity: Severity::Critical,
            what: INTROSPECT,
        };
    }
    // Re-root at every component: `posixpath.os.system`, `torch.serialization.pickle.loads`.
    for start in 0..comps.len() {
        let mut sub = comps[start..].to_vec();
        sub[0] = canonical_root(sub[0]);
        let full = sub.join(".");
        if let Some(what) = denied(&full) {
            // `os.path.join` and friends: path string helpers, not file access.
            if full.starts_with("os.path.") && start == 0 && !name.contains('.') {
                break;
            }
            return Verdict::Dangerous {
                severity: deny_severity(what),
                what,
            };
        }
    }
    if cpython_test_suite(&comps) {
        return Verdict::Dangerous {
            severity: Severity::High,
            what: "CPython's test suite (helpers that run processes and code)",
        };
    }
    let canon_module: String = {
        let mut m: Vec<&str> = module.split('.').collect();
        if let Some(first) = m.first_mut() {
            *first = canonical_root(first);
        }
        m.join(".")
    };
    if safe(&canon_module, name) {
        return Verdict::Safe;
    }
    // Standard-library code that reaches a primitive (derived, see `generated.rs`). Found
    // statically and transitively, so high rather than critical unless it starts a process.
    if let Some((reach, _)) = stdlib_reach(&format!("{canon_module}.{name}")) {
        return Verdict::Dangerous {
            severity: if reach == Reach::Shell {
                Severity::Critical
            } else {
                Severity::High
            },
            what: reach.what(),
        };
    }
    if name.contains('.') {
        return Verdict::Unknown {
            severity: Severity::High,
            why: "attribute traversal through an imported object",
        };
    }
    let lower = format!("{canon_module}.{name}").to_ascii_lowercase();
    if SUSPICIOUS_WORDS.iter().any(|w| {
        lower
            .rsplit('.')
            .next()
            .is_some_and(|last| last.contains(w))
    }) {
        return Verdict::Unknown {
            severity: Severity::High,
            why: "its name suggests execution, loading or I/O",
        };
    }
    let root = canon_module.split('.').next().unwrap_or("");
    if ML_ROOTS.contains(&root) {
        return Verdict::Unknown {
            severity: Severity::Low,
            why: "it is from a common ML library but not on the allowlist",
        };
    }
    if root == "__main__" {
        return Verdict::Unknown {
            severity: Severity::Medium,
            why: "it is custom code from the training script",
        };
    }
    Verdict::Unknown {
        severity: Severity::Medium,
        why: "it is not on the allowlist of safe ML globals",
    }
}

/// Is this a module path that, once imported, gives code execution (for `__import__('os')`)?
pub fn dangerous_module(module: &str) -> Option<&'static str> {
    let mut comps: Vec<&str> = module.split('.').collect();
    if let Some(first) = comps.first_mut() {
        *first = canonical_root(first);
    }
    denied(&comps.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dangerous(m: &str, n: &str) -> bool {
        matches!(classify(m, n), Verdict::Dangerous { .. })
    }

    #[test]
    fn denylist() {
        for (m, n) in [
            ("posix", "system"),
            ("nt", "system"),
            ("os", "system"),
            ("subprocess", "Popen"),
            ("builtins", "eval"),
            ("__builtin__", "eval"),
            ("builtins", "getattr"),
            ("runpy", "_run_code"),
            ("pip", "main"),
            ("ensurepip", "_run_pip"),
            ("cProfile", "run"),
            ("profile", "Profile.run"),
            ("trace", "Trace"),
            ("doctest", "debug_script"),
            ("code", "InteractiveInterpreter"),
            ("idlelib.pyshell", "ModifiedInterpreter"),
            ("lib2to3.main", "main"),
            ("torch.utils.collect_env", "run"),
            ("torch._inductor.codecache", "compile_file"),
            ("torch.jit.unsupported_tensor_ops", "execWrapper"),
            ("torch._dynamo.guards", "GuardBuilder"),
            ("numpy.testing._private.utils", "runstring"),
            ("numpy.f2py.diagnose", "run_command"),
            ("multiprocessing.util", "spawnv_passfds"),
            ("asyncio.unix_events", "_UnixSubprocessTransport"),
            ("mlflow.pyfunc", "load_model"),
            ("pandas.io.parsers.readers", "read_csv"),
            ("pandas", "read_pickle"),
            ("urllib.request", "urlopen"),
            ("pkgutil", "resolve_name"),
            ("importlib", "import_module"),
            ("operator", "attrgetter"),
            ("functools", "partial"),
            ("marshal", "loads"),
            ("types", "FunctionType"),
            ("webbrowser", "open"),
            ("socket", "create_connection"),
            ("shutil", "rmtree"),
            // The peers' lists (picklescan, modelscan, fickling), checked by module.
            ("pipes", "Template"),
            ("pexpect", "spawn"),
            ("_interpreters", "run_string"),
            ("_xxsubinterpreters", "run_string"),
            ("_frozen_importlib", "_load"),
            ("_imp", "create_dynamic"),
            ("atexit", "register"),
            ("unittest.mock", "patch"),
            ("operator", "itemgetter"),
            ("_aix_support", "_read_cmd_output"),
            ("_pyrepl.pager", "anything"),
            ("linecache", "getline"),
            ("py_compile", "compile"),
        ] {
            assert!(dangerous(m, n), "{m}.{n} should be dangerous");
        }
    }

    #[test]
    fn python2_names_are_renamed_as_the_unpickler_does() {
        // Benign values written by protocols 0-2 under their Python 2 names.
        for (m, n) in [
            ("__builtin__", "xrange"),
            ("__builtin__", "set"),
            ("__builtin__", "frozenset"),
            ("__builtin__", "complex"),
            ("__builtin__", "slice"),
            ("__builtin__", "bytearray"),
            ("__builtin__", "unicode"),
            ("__builtin__", "long"),
            ("copy_reg", "_reconstructor"),
        ] {
            assert_eq!(classify(m, n), Verdict::Safe, "{m}.{n}");
        }
        // Dangerous ones under Python 2 names.
        for (m, n) in [
            ("commands", "getoutput"),
            ("cPickle", "loads"),
            ("SocketServer", "TCPServer"),
            ("BaseHTTPServer", "HTTPServer"),
            ("urllib", "urlretrieve"),
            ("__builtin__", "reduce"),
            ("__builtin__", "execfile"),
            ("Tkinter", "Tk"),
        ] {
            assert!(dangerous(m, n), "{m}.{n} should be dangerous");
        }
        assert_eq!(compat_name("itertools", "izip"), ("builtins", "zip"));
        assert_eq!(compat_name("mypkg", "Model"), ("mypkg", "Model"));
    }

    #[test]
    fn stdlib_code_that_reaches_a_primitive_is_dangerous() {
        for (m, n, sev) in [
            ("_osx_support", "_read_output", Severity::Critical),
            ("_osx_support", "_find_build_tool", Severity::Critical),
            ("_pyrepl.pager", "pipe_pager", Severity::Critical),
            ("uuid", "_get_command_stdout", Severity::Critical),
            ("logging", "FileHandler", Severity::High),
            ("logging.handlers", "SysLogHandler", Severity::High),
            ("logging.handlers", "RotatingFileHandler", Severity::High),
            (
                "test.support.script_helper",
                "assert_python_ok",
                Severity::High,
            ),
            ("test.test_os", "anything", Severity::High),
            (
                "torch.utils.data.datapipes.utils.decoder",
                "basichandlers",
                Severity::Critical,
            ),
        ] {
            match classify(m, n) {
                Verdict::Dangerous { severity, .. } => assert_eq!(severity, sev, "{m}.{n}"),
                other => panic!("{m}.{n}: {other:?}"),
            }
        }
        // The derived table does not touch what ML pickles carry.
        for (m, n) in [
            ("logging", "getLogger"),
            ("collections", "OrderedDict"),
            ("pathlib", "PosixPath"),
            ("uuid", "UUID"),
            ("datetime", "timezone"),
            ("re", "_compile"),
            ("copyreg", "_reconstructor"),
        ] {
            assert_eq!(classify(m, n), Verdict::Safe, "{m}.{n}");
        }
        // A user module called `test` is not CPython's test suite.
        assert!(!dangerous("test", "Model"));
    }

    #[test]
    fn the_generated_tables_are_sorted_for_binary_search() {
        use crate::generated::{COMPAT_MODULES, COMPAT_NAMES, STDLIB_REACH};
        assert!(STDLIB_REACH.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(COMPAT_MODULES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(COMPAT_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(STDLIB_REACH.len() > 500);
    }

    #[test]
    fn rerooted_traversal() {
        assert!(dangerous("posixpath", "os.system"));
        assert!(dangerous("torch.serialization", "pickle.loads"));
        assert!(dangerous("numpy", "__builtins__.eval"));
        assert!(dangerous("collections", "OrderedDict.__init__.__globals__"));
    }

    #[test]
    fn allowlist() {
        for (m, n) in [
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "float32"),
            ("collections", "OrderedDict"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "dtype"),
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("sklearn.tree._tree", "Tree"),
            ("xgboost.core", "Booster"),
            ("lightgbm.basic", "Booster"),
            ("torch.nn.modules.linear", "Linear"),
            ("__builtin__", "set"),
            ("copy_reg", "_reconstructor"),
            ("_codecs", "encode"),
        ] {
            assert_eq!(classify(m, n), Verdict::Safe, "{m}.{n} should be safe");
        }
    }

    #[test]
    fn unknown_severity() {
        assert!(matches!(
            classify("torch.nn.modules.linear", "helper"),
            Verdict::Unknown {
                severity: Severity::Low,
                ..
            }
        ));
        assert!(matches!(
            classify("mypkg", "run_hook"),
            Verdict::Unknown {
                severity: Severity::High,
                ..
            }
        ));
        assert!(matches!(
            classify("__main__", "Net"),
            Verdict::Unknown {
                severity: Severity::Medium,
                ..
            }
        ));
        assert!(matches!(
            classify("sklearn.base", "clone.x"),
            Verdict::Unknown {
                severity: Severity::High,
                ..
            }
        ));
        // A safe module reached by a dotted path is not safe.
        assert!(!matches!(
            classify("torch._utils", "_rebuild_tensor_v2.x"),
            Verdict::Safe
        ));
        assert_eq!(
            classify("os.path", "join"),
            Verdict::Unknown {
                severity: Severity::Medium,
                why: "it is not on the allowlist of safe ML globals"
            }
        );
    }
}
