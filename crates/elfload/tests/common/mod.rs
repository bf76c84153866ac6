//! Shared helpers of the integration tests: the fixtures, a fake export table, and a small ELF
//! reader and patcher written independently of the crate (so the tests do not check the loader
//! against itself).
#![allow(dead_code)]

use abi::layout::EXPORT_BASE;
use elfload::{LoadError, Plan};

/// `hello.so`: a GLOB_DAT, an R_X86_64_64 and RELATIVE relocations (see `fixtures/README.md`).
pub const HELLO: &[u8] = include_bytes!("../fixtures/hello.so");
/// `plt.so`: JUMP_SLOTs, GLOB_DAT, R_X86_64_64 against defined and undefined symbols, RELATIVE
/// relocations in writable `.data`, a `.bss` (see `fixtures/README.md`).
pub const PLT: &[u8] = include_bytes!("../fixtures/plt.so");
/// Both fixtures.
pub const FIXTURES: [&[u8]; 2] = [HELLO, PLT];

/// Where the fake export table puts `moxie_sys_log`.
pub const LOG_ADDR: u64 = EXPORT_BASE + 0x40;
/// Where the fake export table puts `moxie_sys_yield`.
pub const YIELD_ADDR: u64 = EXPORT_BASE + 0x80;

/// A fake kernel export table.
pub fn exports(name: &str) -> Option<u64> {
    match name {
        "moxie_sys_log" => Some(LOG_ADDR),
        "moxie_sys_yield" => Some(YIELD_ADDR),
        _ => None,
    }
}

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
pub const R_64: u32 = 1;
pub const R_GLOB_DAT: u32 = 6;
pub const R_JUMP_SLOT: u32 = 7;
pub const R_RELATIVE: u32 = 8;

pub fn rd16(f: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(f[at..at + 2].try_into().unwrap())
}
pub fn rd32(f: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(f[at..at + 4].try_into().unwrap())
}
pub fn rd64(f: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(f[at..at + 8].try_into().unwrap())
}
pub fn wr16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn wr32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn wr64(f: &mut [u8], at: usize, v: u64) {
    f[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// File-header field offsets.
pub const E_TYPE: usize = 0x10;
pub const E_MACHINE: usize = 0x12;
pub const E_ENTRY: usize = 0x18;
pub const E_PHOFF: usize = 0x20;
pub const E_PHENTSIZE: usize = 0x36;
pub const E_PHNUM: usize = 0x38;

/// Program-header field offsets (within one 56-byte header).
pub const P_TYPE: usize = 0;
pub const P_FLAGS: usize = 4;
pub const P_OFFSET: usize = 8;
pub const P_VADDR: usize = 16;
pub const P_FILESZ: usize = 32;
pub const P_MEMSZ: usize = 40;

/// A program header as the tests read it.
#[derive(Clone, Copy, Debug)]
pub struct Ph {
    /// File offset of the header itself.
    pub at: usize,
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

pub fn phdrs(f: &[u8]) -> Vec<Ph> {
    let off = rd64(f, E_PHOFF) as usize;
    (0..rd16(f, E_PHNUM) as usize)
        .map(|i| {
            let at = off + 56 * i;
            Ph {
                at,
                p_type: rd32(f, at + P_TYPE),
                flags: rd32(f, at + P_FLAGS),
                offset: rd64(f, at + P_OFFSET),
                vaddr: rd64(f, at + P_VADDR),
                filesz: rd64(f, at + P_FILESZ),
                memsz: rd64(f, at + P_MEMSZ),
            }
        })
        .collect()
}

/// The `PT_LOAD` headers, in file order.
pub fn loads(f: &[u8]) -> Vec<Ph> {
    phdrs(f)
        .into_iter()
        .filter(|p| p.p_type == PT_LOAD)
        .collect()
}

/// The file offset of link-time address `addr`.
pub fn file_off(f: &[u8], addr: u64) -> usize {
    let p = loads(f)
        .into_iter()
        .find(|p| addr >= p.vaddr && addr < p.vaddr + p.filesz)
        .expect("address in a segment's file bytes");
    (p.offset + (addr - p.vaddr)) as usize
}

/// A dynamic-section entry: the file offset of the entry, its tag and value.
#[derive(Clone, Copy, Debug)]
pub struct DynEntry {
    pub at: usize,
    pub tag: i64,
    pub val: u64,
}

pub fn dynamic(f: &[u8]) -> Vec<DynEntry> {
    let p = phdrs(f)
        .into_iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .unwrap();
    let mut out = Vec::new();
    for i in 0..(p.filesz / 16) as usize {
        let at = p.offset as usize + 16 * i;
        let tag = rd64(f, at) as i64;
        if tag == 0 {
            break;
        }
        out.push(DynEntry {
            at,
            tag,
            val: rd64(f, at + 8),
        });
    }
    out
}

pub fn dyn_val(f: &[u8], tag: i64) -> Option<u64> {
    dynamic(f).iter().find(|d| d.tag == tag).map(|d| d.val)
}

pub fn dyn_entry(f: &[u8], tag: i64) -> DynEntry {
    *dynamic(f).iter().find(|d| d.tag == tag).unwrap()
}

/// A relocation: the file offset of the entry, and its fields.
#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    pub at: usize,
    pub offset: u64,
    pub sym: u32,
    pub kind: u32,
    pub addend: i64,
}

/// Every relocation, `DT_RELA` then `DT_JMPREL`.
pub fn relocs(f: &[u8]) -> Vec<Reloc> {
    let mut out = Vec::new();
    for (t, sz) in [(7, 8), (23, 2)] {
        let (Some(addr), Some(size)) = (dyn_val(f, t), dyn_val(f, sz)) else {
            continue;
        };
        let start = file_off(f, addr);
        for i in 0..(size / 24) as usize {
            let at = start + 24 * i;
            let info = rd64(f, at + 8);
            out.push(Reloc {
                at,
                offset: rd64(f, at),
                sym: (info >> 32) as u32,
                kind: info as u32,
                addend: rd64(f, at + 16) as i64,
            });
        }
    }
    out
}

/// A dynamic symbol: file offset of the entry, name, binding, section index and value.
#[derive(Clone, Debug)]
pub struct Sym {
    pub at: usize,
    pub name: String,
    pub shndx: u16,
    pub value: u64,
}

pub fn symbol(f: &[u8], index: u32) -> Sym {
    let at = file_off(f, dyn_val(f, 6).unwrap()) + 24 * index as usize;
    let strtab = file_off(f, dyn_val(f, 5).unwrap());
    let name_at = strtab + rd32(f, at) as usize;
    let len = f[name_at..].iter().position(|&b| b == 0).unwrap();
    Sym {
        at,
        name: String::from_utf8(f[name_at..name_at + len].to_vec()).unwrap(),
        shndx: rd16(f, at + 6),
        value: rd64(f, at + 8),
    }
}

/// `plan` then `load` then `relocate` into a fresh image of the plan's span.
pub fn load_all(
    f: &[u8],
    base: u64,
    exports: &dyn Fn(&str) -> Option<u64>,
) -> Result<(Plan, Vec<u8>), LoadError> {
    let plan = elfload::plan(f, base)?;
    let mut image = vec![0xa5; plan.span() as usize];
    elfload::load(f, &plan, &mut image)?;
    elfload::relocate(f, &plan, &mut image, exports)?;
    Ok((plan, image))
}
