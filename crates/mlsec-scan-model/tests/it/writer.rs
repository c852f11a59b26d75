//! Tiny writers for hostile input: pickles opcode by opcode, and zip archives.

use std::io::Write;

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

/// A minimal zip writer (stored or deflated members), enough to build hostile archives.
pub struct Zip {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl Zip {
    pub fn new() -> Zip {
        Zip {
            out: Vec::new(),
            central: Vec::new(),
            count: 0,
        }
    }

    pub fn add(
        &mut self,
        name: &str,
        data: &[u8],
        deflate: bool,
        local_name: Option<&str>,
    ) -> &mut Zip {
        let crc = {
            let mut c = flate2::Crc::new();
            c.update(data);
            c.sum()
        };
        let body = if deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.to_vec()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let offset = u32::try_from(self.out.len()).unwrap();
        let lname = local_name.unwrap_or(name);
        self.out.extend_from_slice(b"PK\x03\x04");
        self.out.extend_from_slice(&20u16.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(&method.to_le_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
            .extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        self.out
            .extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        self.out
            .extend_from_slice(&u16::try_from(lname.len()).unwrap().to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(lname.as_bytes());
        self.out.extend_from_slice(&body);
        self.central.extend_from_slice(b"PK\x01\x02");
        self.central.extend_from_slice(&20u16.to_le_bytes());
        self.central.extend_from_slice(&20u16.to_le_bytes());
        self.central.extend_from_slice(&0u16.to_le_bytes());
        self.central.extend_from_slice(&method.to_le_bytes());
        self.central.extend_from_slice(&[0; 4]);
        self.central.extend_from_slice(&crc.to_le_bytes());
        self.central
            .extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        self.central
            .extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        self.central
            .extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
        self.central.extend_from_slice(&[0; 12]);
        self.central.extend_from_slice(&offset.to_le_bytes());
        self.central.extend_from_slice(name.as_bytes());
        self.count += 1;
        self
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.out.clone();
        let cd_off = u32::try_from(v.len()).unwrap();
        v.extend_from_slice(&self.central);
        v.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&u32::try_from(self.central.len()).unwrap().to_le_bytes());
        v.extend_from_slice(&cd_off.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v
    }
}
