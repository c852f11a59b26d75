//! A tiny pickle writer for building hostile streams opcode by opcode.

#[derive(Default)]
pub struct P(pub Vec<u8>);

impl P {
    pub fn proto(v: u8) -> P {
        P(vec![0x80, v])
    }
    pub fn raw(mut self, b: &[u8]) -> P {
        self.0.extend_from_slice(b);
        self
    }
    /// GLOBAL (protocol 0 text form).
    pub fn global(self, m: &str, n: &str) -> P {
        self.raw(format!("c{m}\n{n}\n").as_bytes())
    }
    /// SHORT_BINUNICODE.
    pub fn s(mut self, s: &str) -> P {
        self.0.push(0x8c);
        self.0.push(u8::try_from(s.len()).unwrap());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn stack_global(self) -> P {
        self.raw(&[0x93])
    }
    pub fn mark(self) -> P {
        self.raw(b"(")
    }
    pub fn tuple1(self) -> P {
        self.raw(&[0x85])
    }
    pub fn tuple2(self) -> P {
        self.raw(&[0x86])
    }
    pub fn reduce(self) -> P {
        self.raw(b"R")
    }
    pub fn build(self) -> P {
        self.raw(b"b")
    }
    pub fn put(self, i: u8) -> P {
        self.raw(&[b'q', i])
    }
    pub fn get(self, i: u8) -> P {
        self.raw(&[b'h', i])
    }
    pub fn memoize(self) -> P {
        self.raw(&[0x94])
    }
    pub fn pop(self) -> P {
        self.raw(b"0")
    }
    pub fn empty_dict(self) -> P {
        self.raw(b"}")
    }
    pub fn setitem(self) -> P {
        self.raw(b"s")
    }
    pub fn stop(self) -> Vec<u8> {
        let mut v = self.0;
        v.push(b'.');
        v
    }
    /// `callable(arg)` where `callable` is already on the stack.
    pub fn call1(self, arg: &str) -> P {
        self.s(arg).tuple1().reduce()
    }
}
