//! One regression test per published bypass mechanism of the Python pickle scanners
//! (picklescan, ModelScan, fickling, ModelAudit advisories 2024-2025).

use mlsec_diagnostics::Severity;

use crate::writer::P;
use crate::{assert_caught, dump, scan};

const CMD: &str = "echo MLSEC_MARKER";

#[test]
fn memo_desync_put_vs_memoize() {
    // BINPUT 0 followed by MEMOIZE: MEMOIZE stores at len(memo) == 1, not at a running counter.
    let p = P::proto(4)
        .s("posix")
        .put(0)
        .s("system")
        .memoize()
        .pop()
        .pop()
        .get(0)
        .get(1)
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "posix.system",
    );
}

#[test]
fn memo_desync_put_overwrites_slot() {
    // The same memo slot is written twice; only the last value is live.
    let p = P::proto(4)
        .s("builtins")
        .put(1)
        .pop()
        .s("os")
        .put(1)
        .pop()
        .get(1)
        .s("system")
        .stack_global()
        .call1(CMD)
        .stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
}

#[test]
fn stack_global_operands_from_memo() {
    let p = P::proto(4)
        .s("subprocess")
        .memoize()
        .s("check_output")
        .memoize()
        .pop()
        .pop()
        .get(0)
        .get(1)
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "subprocess.check_output",
    );
}

#[test]
fn stack_global_operands_from_build_state() {
    // obj = argparse.Namespace(); obj.__setstate__({'m': 'os', 'n': 'system'});
    // STACK_GLOBAL(getattr(obj, 'm'), getattr(obj, 'n'))
    let p = P::proto(4)
        .global("argparse", "Namespace")
        .raw(b")R")
        .empty_dict()
        .s("m")
        .s("os")
        .setitem()
        .s("n")
        .s("system")
        .setitem()
        .build()
        .put(0)
        .pop()
        .global("builtins", "getattr")
        .get(0)
        .s("m")
        .tuple2()
        .reduce()
        .global("builtins", "getattr")
        .get(0)
        .s("n")
        .tuple2()
        .reduce()
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}

#[test]
fn stack_global_computed_operands_are_flagged() {
    // The module name is the result of a call the analyser cannot evaluate.
    let p = P::proto(4)
        .global("mypkg", "name_of")
        .raw(b")R")
        .s("system")
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(&scan(&p, "m.pkl"), "PKL003", Severity::High, "STACK_GLOBAL");
}

#[test]
fn dotted_qualname_through_module_attribute() {
    let p = P::proto(4)
        .s("posixpath")
        .s("os.system")
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "posixpath.os.system",
    );
    let p = P::proto(4)
        .s("torch.serialization")
        .s("pickle.loads")
        .stack_global()
        .call1("x")
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "pickle.loads",
    );
    let p = P::proto(4)
        .s("collections")
        .s("OrderedDict.__init__.__globals__")
        .stack_global()
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "__globals__",
    );
}

#[test]
fn copyreg_extension_codes() {
    for ext in [
        &[0x82, 0x01][..],
        &[0x83, 0x01, 0x00],
        &[0x84, 0x01, 0, 0, 0],
    ] {
        let p = P::proto(2).raw(ext).call1(CMD).stop();
        assert_caught(
            &scan(&p, "m.pkl"),
            "PKL004",
            Severity::High,
            "extension code 1",
        );
    }
}

#[test]
fn trampoline_pkgutil_resolve_name() {
    let p = P::proto(4)
        .global("pkgutil", "resolve_name")
        .call1("os:system")
        .call1(CMD)
        .stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    assert_caught(&f, "PKL001", Severity::Critical, CMD);
}

#[test]
fn trampoline_importlib_and_getattr() {
    let p = P::proto(4)
        .global("builtins", "getattr")
        .global("importlib", "import_module")
        .call1("os")
        .s("popen")
        .tuple2()
        .reduce()
        .call1(CMD)
        .stop();
    assert_caught(&scan(&p, "m.pkl"), "PKL001", Severity::Critical, "os.popen");
}

#[test]
fn trampoline_dunder_import() {
    let p = P::proto(2)
        .global("__builtin__", "getattr")
        .global("__builtin__", "__import__")
        .call1("subprocess")
        .s("call")
        .tuple2()
        .reduce()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "subprocess.call",
    );
}

#[test]
fn trampoline_operator_attrgetter() {
    // attrgetter('system')(importlib.import_module('os'))
    let p = P::proto(4)
        .global("operator", "attrgetter")
        .call1("system")
        .global("importlib", "import_module")
        .call1("os")
        .tuple1()
        .reduce()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}

#[test]
fn trampoline_operator_methodcaller() {
    let p = P::proto(4)
        .global("operator", "methodcaller")
        .s("system")
        .s(CMD)
        .tuple2()
        .reduce()
        .global("importlib", "import_module")
        .call1("os")
        .tuple1()
        .reduce()
        .stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    assert_caught(&f, "PKL001", Severity::High, "operator.methodcaller");
}

#[test]
fn trampoline_functools_partial() {
    let p = P::proto(4)
        .global("functools", "partial")
        .global("os", "system")
        .s(CMD)
        .tuple2()
        .reduce()
        .raw(b")R")
        .stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    assert_caught(&f, "PKL001", Severity::High, "functools.partial");
}

#[test]
fn trampoline_marshal_function_type() {
    let p = P::proto(4)
        .global("types", "FunctionType")
        .global("marshal", "loads")
        .raw(b"C\x04\xe3\x00\x00\x00")
        .tuple1()
        .reduce()
        .empty_dict()
        .tuple2()
        .reduce()
        .raw(b")R")
        .stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "marshal.loads");
    assert_caught(&f, "PKL001", Severity::Critical, "types.FunctionType");
}

#[test]
fn under_listed_primitives() {
    for (m, n) in [
        ("pip", "main"),
        ("pip._internal", "main"),
        ("ensurepip", "_run_pip"),
        ("cProfile", "run"),
        ("profile", "run"),
        ("trace", "Trace"),
        ("doctest", "debug_script"),
        ("code", "InteractiveInterpreter"),
        ("idlelib.pyshell", "ModifiedInterpreter"),
        ("idlelib.autocomplete", "AutoComplete"),
        ("lib2to3.pgen2.pgen", "generate_grammar"),
        ("torch.utils.collect_env", "run"),
        ("torch._inductor.codecache", "compile_file"),
        ("torch.jit.unsupported_tensor_ops", "execWrapper"),
        ("torch._dynamo.utils", "compile_times"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy.f2py.crackfortran", "crackfortran"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("asyncio.unix_events", "_UnixSubprocessTransport"),
        ("asyncio.subprocess", "create_subprocess_shell"),
        ("mlflow.pyfunc", "load_model"),
        ("mlflow.projects", "run"),
        ("pandas", "read_csv"),
        ("pandas.io.parsers", "read_csv"),
        ("urllib.request", "urlopen"),
        ("webbrowser", "open"),
        ("runpy", "run_path"),
        ("pty", "spawn"),
        ("timeit", "timeit"),
        ("pydoc", "pipepager"),
        ("ctypes", "CDLL"),
        ("shutil", "rmtree"),
        ("socket", "create_connection"),
    ] {
        let p = P::proto(2).global(m, n).call1(CMD).stop();
        let f = scan(&p, "m.pkl");
        assert!(
            f.iter()
                .any(|x| x.rule.id == "PKL001" && x.severity >= Severity::High),
            "{m}.{n} not caught:\n{}",
            dump(&f)
        );
    }
}

#[test]
fn build_gadget_on_allowlisted_function() {
    // numpy.core.multiarray._reconstruct is allowlisted; BUILD on the function itself is not.
    let p = P::proto(2)
        .global("numpy.core.multiarray", "_reconstruct")
        .empty_dict()
        .s("__code__")
        .global("os", "system")
        .setitem()
        .build()
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL005",
        Severity::Critical,
        "numpy.core.multiarray._reconstruct",
    );
}

#[test]
fn cyclic_memo_terminates() {
    // A list that contains itself through the memo, repeated, then a payload after it.
    let mut p = P::proto(2).raw(b"]").put(0);
    for _ in 0..10_000 {
        p = p.get(0).raw(b"a");
    }
    let p = p.pop().global("os", "system").call1(CMD).stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}

#[test]
fn raw_pickle_with_weights_extension() {
    let p = P::proto(2).global("os", "system").call1(CMD).stop();
    for name in [
        "pytorch_model.bin",
        "model.pt",
        "model.ckpt",
        "weights.pth",
        "noextension",
    ] {
        assert_caught(&scan(&p, name), "PKL001", Severity::Critical, "os.system");
    }
}

#[test]
fn protocol_0_pickle_without_header_named_like_weights() {
    let p = b"(dp0\nS'a'\np1\ncos\nsystem\np2\n(S'echo MLSEC_MARKER'\np3\ntp4\nRp5\ns.";
    assert_caught(
        &scan(p, "weights.bin"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}

#[test]
fn payload_in_second_concatenated_pickle() {
    let mut p = P::proto(4).raw(b"K\x01").stop();
    p.extend(P::proto(4).global("os", "system").call1(CMD).stop());
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}

#[test]
fn pickle_nested_in_bytes() {
    let inner = P::proto(2).global("os", "system").call1(CMD).stop();
    let mut p = P::proto(4).raw(&[b'C', u8::try_from(inner.len()).unwrap()]);
    p.0.extend_from_slice(&inner);
    let p = p.stop();
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    assert!(
        f.iter()
            .any(|x| x.location.members.iter().any(|m| m.starts_with("bytes@"))),
        "{}",
        dump(&f)
    );
}

#[test]
fn payload_before_parse_error_is_reported() {
    let mut p = P::proto(2).global("os", "system").call1(CMD).0;
    p.extend_from_slice(b"\xff\xff");
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    assert_caught(&f, "PKL006", Severity::Medium, "unknown opcode");
}

#[test]
fn inst_and_obj_opcodes() {
    let p = P::proto(0).mark().s(CMD).raw(b"ios\nsystem\n").stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
    let p = P::proto(1)
        .mark()
        .global("subprocess", "Popen")
        .s(CMD)
        .raw(b"o")
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "subprocess.Popen",
    );
}

#[test]
fn newobj_ex() {
    let p = P::proto(4)
        .global("subprocess", "Popen")
        .s(CMD)
        .tuple1()
        .empty_dict()
        .raw(&[0x92])
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "subprocess.Popen",
    );
}

#[test]
fn stack_global_operands_from_dict_item_access() {
    // STACK_GLOBAL(getitem({'m': 'os'}, 'm'), 'system')
    let p = P::proto(4)
        .global("operator", "getitem")
        .empty_dict()
        .s("m")
        .s("os")
        .setitem()
        .s("m")
        .tuple2()
        .reduce()
        .s("system")
        .stack_global()
        .call1(CMD)
        .stop();
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL001",
        Severity::Critical,
        "os.system",
    );
}
