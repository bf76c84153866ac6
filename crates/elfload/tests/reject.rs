//! Refusals: each [`LoadError`] variant, produced by patching the bytes of a real fixture, with
//! its message and its system-call error.

mod common;

use abi::layout::{MODULE_BASE, MODULE_MAX_SIZE, PAGE_SIZE, USER_END};
use common::*;
use elfload::{LoadError, SymbolName, plan};

/// `plan` at the module base.
fn plan_err(f: &[u8]) -> LoadError {
    plan(f, MODULE_BASE).expect_err("plan should refuse")
}

/// `plan` + `load` + `relocate` with the fake exports; the error.
fn load_err(f: &[u8]) -> LoadError {
    load_all(f, MODULE_BASE, &exports).expect_err("loading should fail")
}

/// The `n`th `PT_LOAD` header of a fixture.
fn load_ph(f: &[u8], n: usize) -> Ph {
    loads(f)[n]
}

/// The first relocation of type `kind`.
fn reloc(f: &[u8], kind: u32) -> Reloc {
    relocs(f).into_iter().find(|r| r.kind == kind).unwrap()
}

#[test]
fn fixtures_load_unpatched() {
    for f in FIXTURES {
        load_all(f, MODULE_BASE, &exports).unwrap();
    }
}

#[test]
fn bad_magic() {
    let mut f = HELLO.to_vec();
    f[0] = 0;
    assert_eq!(plan_err(&f), LoadError::BadMagic);
    assert_eq!(plan_err(b"MZ\x90\x00"), LoadError::BadMagic);
    assert_eq!(plan_err(b"#!/bin/sh\n"), LoadError::BadMagic);
    assert_eq!(plan_err(b"\x7fELX"), LoadError::BadMagic);
}

#[test]
fn wrong_class() {
    for class in [0, 1, 3] {
        let mut f = HELLO.to_vec();
        f[4] = class;
        assert_eq!(plan_err(&f), LoadError::WrongClass(class));
    }
}

#[test]
fn wrong_endianness() {
    for data in [0, 2] {
        let mut f = HELLO.to_vec();
        f[5] = data;
        assert_eq!(plan_err(&f), LoadError::WrongEndian(data));
    }
}

#[test]
fn wrong_machine() {
    let mut f = HELLO.to_vec();
    wr16(&mut f, E_MACHINE, 183); // EM_AARCH64
    let e = plan_err(&f);
    assert_eq!(e, LoadError::WrongMachine(183));
    assert!(e.to_string().contains("183"));
    wr16(&mut f, E_MACHINE, 3); // EM_386
    assert_eq!(plan_err(&f), LoadError::WrongMachine(3));
}

#[test]
fn not_position_independent() {
    for (ty, what) in [
        (2, "ET_EXEC"),
        (1, "ET_REL"),
        (4, "ET_CORE"),
        (0, "ET_NONE"),
    ] {
        let mut f = PLT.to_vec();
        wr16(&mut f, E_TYPE, ty);
        assert_eq!(
            plan_err(&f),
            LoadError::NotPositionIndependent(ty),
            "{what}"
        );
    }
}

#[test]
fn bad_header_fields() {
    let mut f = HELLO.to_vec();
    f[6] = 0; // EI_VERSION
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));

    let mut f = HELLO.to_vec();
    wr32(&mut f, 0x14, 2); // e_version
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));

    let mut f = HELLO.to_vec();
    wr16(&mut f, E_PHENTSIZE, 32);
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));

    let mut f = HELLO.to_vec();
    wr16(&mut f, E_PHNUM, 0xffff); // PN_XNUM
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));

    // A segment with more file bytes than memory.
    let mut f = PLT.to_vec();
    let ph = load_ph(PLT, 3);
    wr64(&mut f, ph.at + P_MEMSZ, ph.filesz - 1);
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));
}

#[test]
fn truncated_at_several_points() {
    let f = PLT;
    assert_eq!(
        plan_err(&f[..0]),
        LoadError::Truncated("ELF identification")
    );
    assert_eq!(
        plan_err(&f[..3]),
        LoadError::Truncated("ELF identification")
    );
    assert_eq!(
        plan_err(&f[..10]),
        LoadError::Truncated("ELF identification")
    );
    assert_eq!(plan_err(&f[..16]), LoadError::Truncated("file header"));
    assert_eq!(plan_err(&f[..63]), LoadError::Truncated("file header"));
    assert_eq!(plan_err(&f[..64]), LoadError::Truncated("program headers"));
    assert_eq!(
        plan_err(&f[..64 + 56 * 3 + 10]),
        LoadError::Truncated("program headers")
    );
    let rw = load_ph(f, 2);
    let cut = (rw.offset + rw.filesz - 1) as usize;
    assert_eq!(plan_err(&f[..cut]), LoadError::Truncated("segment data"));

    // A dynamic segment pointing past the end of the file.
    let mut g = f.to_vec();
    let dynamic = phdrs(f)
        .into_iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .unwrap();
    wr64(&mut g, dynamic.at + P_OFFSET, f.len() as u64 - 8);
    assert_eq!(plan_err(&g), LoadError::Truncated("dynamic section"));
    // ... or whose size overflows.
    wr64(&mut g, dynamic.at + P_FILESZ, u64::MAX);
    assert_eq!(plan_err(&g), LoadError::Truncated("dynamic section"));

    // A segment whose file range overflows.
    let mut g = f.to_vec();
    wr64(&mut g, rw.at + P_OFFSET, u64::MAX - 4);
    assert_eq!(plan_err(&g), LoadError::Truncated("segment data"));
}

#[test]
fn every_truncation_before_the_end_of_the_segments_is_refused() {
    for f in FIXTURES {
        let end = loads(f)
            .iter()
            .map(|p| (p.offset + p.filesz) as usize)
            .max()
            .unwrap();
        for len in 0..end {
            let e = plan_err(&f[..len]);
            assert!(matches!(e, LoadError::Truncated(_)), "length {len}: {e:?}");
        }
        // Section headers are not needed: the rest may be cut.
        for len in end..f.len() {
            plan(&f[..len], MODULE_BASE).unwrap();
        }
    }
}

#[test]
fn segment_outside_the_module_range() {
    let rw = load_ph(PLT, 3);
    // Past base + MODULE_MAX_SIZE.
    let mut f = PLT.to_vec();
    wr64(&mut f, rw.at + P_VADDR, MODULE_MAX_SIZE);
    assert_eq!(plan_err(&f), LoadError::SegmentOutOfRange(MODULE_MAX_SIZE));
    // Its end just past it.
    wr64(&mut f, rw.at + P_VADDR, MODULE_MAX_SIZE - rw.memsz + 1);
    assert_eq!(
        plan_err(&f),
        LoadError::SegmentOutOfRange(MODULE_MAX_SIZE - rw.memsz + 1)
    );
    // Huge sizes and addresses: no overflow.
    let mut f = PLT.to_vec();
    wr64(&mut f, rw.at + P_MEMSZ, u64::MAX - 0x10);
    assert_eq!(plan_err(&f), LoadError::SegmentOutOfRange(rw.vaddr));
    let mut f = PLT.to_vec();
    wr64(&mut f, rw.at + P_VADDR, u64::MAX - 0x10);
    assert_eq!(plan_err(&f), LoadError::SegmentOutOfRange(u64::MAX - 0x10));
    let mut f = PLT.to_vec();
    wr64(&mut f, rw.at + P_VADDR, 0u64.wrapping_sub(MODULE_BASE));
    assert!(matches!(plan_err(&f), LoadError::SegmentOutOfRange(_)));

    // The module fits at the top of its range, but not across USER_END.
    let span = plan(PLT, MODULE_BASE).unwrap().span();
    plan(PLT, USER_END - span).unwrap();
    let top = USER_END - span + PAGE_SIZE;
    assert!(matches!(
        plan(PLT, top).unwrap_err(),
        LoadError::SegmentOutOfRange(_)
    ));
    assert!(matches!(
        plan(PLT, !(PAGE_SIZE - 1)).unwrap_err(),
        LoadError::SegmentOutOfRange(_)
    ));
}

#[test]
fn misaligned_base() {
    assert_eq!(
        plan(HELLO, MODULE_BASE + 8).unwrap_err(),
        LoadError::BadBase(MODULE_BASE + 8)
    );
}

#[test]
fn overlapping_segments() {
    // The code segment moved into the page of the read-only one.
    let mut f = HELLO.to_vec();
    let code = load_ph(HELLO, 1);
    wr64(&mut f, code.at + P_VADDR, code.vaddr - PAGE_SIZE);
    assert_eq!(plan_err(&f), LoadError::SegmentsOverlap(MODULE_BASE));

    // The .data segment sharing the last page of the RELRO one.
    let mut f = PLT.to_vec();
    let (relro, data) = (load_ph(PLT, 2), load_ph(PLT, 3));
    let page = (relro.vaddr + relro.memsz - 1) & !(PAGE_SIZE - 1);
    wr64(&mut f, data.at + P_VADDR, page + 0x10);
    assert_eq!(plan_err(&f), LoadError::SegmentsOverlap(MODULE_BASE + page));

    // Two identical segments.
    let mut f = PLT.to_vec();
    let (a, b) = (load_ph(PLT, 0), load_ph(PLT, 1));
    f.copy_within(a.at..a.at + 56, b.at);
    assert_eq!(plan_err(&f), LoadError::SegmentsOverlap(MODULE_BASE));
}

#[test]
fn writable_and_executable() {
    for (n, flags) in [
        (1, PF_R | PF_W | PF_X),
        (2, PF_R | PF_W | PF_X),
        (0, PF_W | PF_X),
    ] {
        let mut f = PLT.to_vec();
        let ph = load_ph(PLT, n);
        wr32(&mut f, ph.at + P_FLAGS, flags);
        let e = plan_err(&f);
        assert_eq!(e, LoadError::WritableExecutable(ph.vaddr));
        assert!(e.to_string().contains("writable and executable"));
    }
}

#[test]
fn too_many_segments() {
    // Turn every non-load header of `plt` (5 of them) into a small load segment on its own
    // page: 9 in all.
    let mut f = PLT.to_vec();
    let mut vaddr = 0x10_0000;
    let mut loads = 4;
    for ph in phdrs(PLT).iter().filter(|p| p.p_type != PT_LOAD) {
        wr32(&mut f, ph.at + P_TYPE, PT_LOAD);
        wr32(&mut f, ph.at + P_FLAGS, PF_R);
        wr64(&mut f, ph.at + P_VADDR, vaddr);
        wr64(&mut f, ph.at + P_OFFSET, 0);
        wr64(&mut f, ph.at + P_FILESZ, 0);
        wr64(&mut f, ph.at + P_MEMSZ, 8);
        vaddr += PAGE_SIZE;
        loads += 1;
    }
    assert_eq!(loads, 9);
    assert_eq!(plan_err(&f), LoadError::TooManySegments);

    // With one of them empty, eight remain, which is allowed.
    let last = phdrs(&f).last().copied().unwrap();
    wr64(&mut f, last.at + P_MEMSZ, 0);
    let p = plan(&f, MODULE_BASE).unwrap();
    assert_eq!(p.segments().len(), elfload::MAX_SEGMENTS);
}

#[test]
fn no_segments() {
    let mut f = HELLO.to_vec();
    for ph in loads(HELLO) {
        wr32(&mut f, ph.at + P_TYPE, PT_NULL);
    }
    assert_eq!(plan_err(&f), LoadError::NoSegments);

    let mut f = HELLO.to_vec();
    wr16(&mut f, E_PHNUM, 0);
    assert_eq!(plan_err(&f), LoadError::NoSegments);
}

#[test]
fn unsupported_segment_types() {
    for ty in [7, 3] {
        // PT_TLS, PT_INTERP in place of PT_GNU_STACK.
        let mut f = HELLO.to_vec();
        let stack = phdrs(HELLO).last().copied().unwrap();
        assert_eq!(stack.p_type, 0x6474_e551);
        wr32(&mut f, stack.at + P_TYPE, ty);
        assert_eq!(plan_err(&f), LoadError::UnsupportedSegment(ty));
    }
}

#[test]
fn entry_outside_executable_code() {
    let data = load_ph(PLT, 3).vaddr;
    let code = load_ph(PLT, 1);
    for entry in [0, 0x10, data, code.vaddr + code.filesz, u64::MAX] {
        let mut f = PLT.to_vec();
        wr64(&mut f, E_ENTRY, entry);
        assert_eq!(
            plan_err(&f),
            LoadError::EntryOutsideCode(entry),
            "{entry:#x}"
        );
    }
    // The last byte of the code is still inside.
    let mut f = PLT.to_vec();
    wr64(&mut f, E_ENTRY, code.vaddr + code.filesz - 1);
    plan(&f, MODULE_BASE).unwrap();
}

#[test]
fn relro_outside_a_writable_segment() {
    let mut f = PLT.to_vec();
    let relro = phdrs(PLT)
        .into_iter()
        .find(|p| p.p_type == 0x6474_e552)
        .unwrap();
    wr64(&mut f, relro.at + P_VADDR, load_ph(PLT, 1).vaddr);
    assert!(matches!(plan_err(&f), LoadError::BadHeader(_)));
}

#[test]
fn image_too_small() {
    let p = plan(PLT, MODULE_BASE).unwrap();
    let mut image = vec![0; p.span() as usize - 1];
    assert_eq!(
        elfload::load(PLT, &p, &mut image),
        Err(LoadError::ImageTooSmall {
            needed: p.span(),
            got: p.span() - 1
        })
    );
}

#[test]
fn unknown_symbol_reported_by_name() {
    let only_log = |name: &str| (name == "moxie_sys_log").then_some(LOG_ADDR);
    let e = load_all(PLT, MODULE_BASE, &only_log).unwrap_err();
    assert_eq!(
        e,
        LoadError::UnknownSymbol(SymbolName::new("moxie_sys_yield"))
    );
    assert_eq!(e.to_string(), "unknown symbol `moxie_sys_yield`");
    assert_eq!(abi::Error::from(e), abi::Error::NotFound);

    // A renamed import: patch its name in the string table.
    let mut f = HELLO.to_vec();
    let at = f.windows(13).position(|w| w == b"moxie_sys_log").unwrap();
    f[at + 10..at + 13].copy_from_slice(b"gol");
    let e = load_err(&f);
    assert_eq!(e.to_string(), "unknown symbol `moxie_sys_gol`");
    let LoadError::UnknownSymbol(name) = e else {
        panic!("{e:?}")
    };
    assert_eq!(name.as_str(), "moxie_sys_gol");
    assert!(!name.is_truncated());
}

#[test]
fn long_unknown_symbol_is_cut_in_the_message() {
    let long = "x".repeat(100);
    let name = SymbolName::new(&long);
    let e = LoadError::UnknownSymbol(name);
    assert_eq!(
        e.to_string(),
        format!("unknown symbol `{}...`", &long[..64])
    );
}

#[test]
fn unsupported_relocation_type() {
    for ty in [37, 16, 2, 10, 0xff] {
        // IRELATIVE, DTPMOD64, PC32, 32, anything.
        let mut f = HELLO.to_vec();
        let r = reloc(HELLO, R_RELATIVE);
        wr32(&mut f, r.at + 8, ty);
        let e = load_err(&f);
        assert_eq!(e, LoadError::UnsupportedRelocation(ty));
        assert_eq!(e.to_string(), format!("unsupported relocation type {ty}"));
    }
}

#[test]
fn relocation_target_not_writable() {
    // Into the code.
    let mut f = HELLO.to_vec();
    let r = reloc(HELLO, R_RELATIVE);
    let entry = rd64(HELLO, E_ENTRY);
    wr64(&mut f, r.at, entry);
    assert_eq!(
        load_err(&f),
        LoadError::RelocationNotWritable(MODULE_BASE + entry)
    );
    // Into read-only data, past the image, straddling the end of a segment, wrapping around.
    let rw = load_ph(HELLO, 2);
    for offset in [0x10, MODULE_MAX_SIZE, rw.vaddr + rw.memsz - 4, u64::MAX - 2] {
        let mut f = HELLO.to_vec();
        wr64(&mut f, r.at, offset);
        assert_eq!(
            load_err(&f),
            LoadError::RelocationNotWritable(MODULE_BASE.wrapping_add(offset)),
            "{offset:#x}"
        );
    }
    // The last 8 bytes of a writable segment are fine (bss included).
    let mut f = HELLO.to_vec();
    wr64(&mut f, r.at, rw.vaddr + rw.memsz - 8);
    load_all(&f, MODULE_BASE, &exports).unwrap();
}

#[test]
fn relocation_target_outside_the_image() {
    let p = plan(PLT, MODULE_BASE).unwrap();
    let mut image = vec![0; p.span() as usize];
    elfload::load(PLT, &p, &mut image).unwrap();
    // An image that stops where the `.data` segment starts: its relocations land past it.
    let data = p.segments()[3];
    let cut = (data.pages().start - MODULE_BASE) as usize;
    let e = elfload::relocate(PLT, &p, &mut image[..cut], &exports).unwrap_err();
    assert_eq!(
        e,
        LoadError::RelocationOutsideImage(data.vaddr()),
        "the first .data relocation"
    );
    assert!(e.to_string().contains("outside the image"));
}

/// Patches the value of dynamic tag `tag` and returns the loading error.
fn with_dyn(f: &[u8], tag: i64, val: u64) -> LoadError {
    let mut g = f.to_vec();
    wr64(&mut g, dyn_entry(f, tag).at + 8, val);
    load_err(&g)
}

/// Patches the tag of dynamic entry `tag` to `new` and returns the loading error.
fn retag(f: &[u8], tag: i64, new: i64) -> LoadError {
    let mut g = f.to_vec();
    wr64(&mut g, dyn_entry(f, tag).at, new as u64);
    load_err(&g)
}

#[test]
fn bad_dynamic_section() {
    const DT_RELA: i64 = 7;
    const DT_RELASZ: i64 = 8;
    const DT_RELAENT: i64 = 9;
    const DT_SYMENT: i64 = 11;
    const DT_SYMTAB: i64 = 6;
    const DT_STRSZ: i64 = 10;
    const DT_PLTREL: i64 = 20;
    const DT_JMPREL: i64 = 23;
    const DT_FLAGS: i64 = 30;

    assert_eq!(
        with_dyn(HELLO, DT_RELAENT, 16),
        LoadError::BadDynamic("DT_RELAENT is not 24")
    );
    assert_eq!(
        with_dyn(HELLO, DT_SYMENT, 16),
        LoadError::BadDynamic("DT_SYMENT is not 24")
    );
    assert_eq!(
        with_dyn(HELLO, DT_RELASZ, 25),
        LoadError::BadDynamic("relocation table size is not a multiple of 24")
    );
    // Tables outside the segments' file bytes.
    assert_eq!(
        with_dyn(HELLO, DT_RELASZ, 0x10_0000 * 24),
        LoadError::BadDynamic("relocation table outside the segments' file bytes")
    );
    assert_eq!(
        with_dyn(HELLO, DT_RELA, 0x10_0000),
        LoadError::BadDynamic("relocation table outside the segments' file bytes")
    );
    assert_eq!(
        with_dyn(HELLO, DT_RELA, u64::MAX - 8),
        LoadError::BadDynamic("relocation table outside the segments' file bytes")
    );
    assert_eq!(
        with_dyn(HELLO, DT_SYMTAB, 0x10_0000),
        LoadError::BadDynamic("symbol table outside the segments' file bytes")
    );
    assert_eq!(
        with_dyn(HELLO, DT_STRSZ, 0x10_0000),
        LoadError::BadDynamic("string table outside the segments' file bytes")
    );
    assert_eq!(
        with_dyn(PLT, DT_JMPREL, 0x7_0000),
        LoadError::BadDynamic("relocation table outside the segments' file bytes")
    );
    // The PLT relocations must be RELA.
    assert_eq!(
        with_dyn(PLT, DT_PLTREL, 17),
        LoadError::BadDynamic("DT_PLTREL is not DT_RELA")
    );
    // Half a table.
    assert_eq!(
        retag(HELLO, DT_RELASZ, DT_FLAGS),
        LoadError::BadDynamic("DT_RELA and DT_RELASZ must come together")
    );
    assert_eq!(
        retag(HELLO, DT_RELA, DT_FLAGS),
        LoadError::BadDynamic("DT_RELA and DT_RELASZ must come together")
    );
    assert_eq!(
        retag(PLT, DT_JMPREL, DT_FLAGS),
        LoadError::BadDynamic("DT_JMPREL and DT_PLTRELSZ must come together")
    );
    // REL and RELR tables are refused.
    assert_eq!(
        retag(HELLO, DT_FLAGS, 17),
        LoadError::BadDynamic("REL relocations (DT_REL) are not used on x86_64")
    );
    assert_eq!(
        retag(HELLO, DT_FLAGS, 36),
        LoadError::BadDynamic("packed relative relocations (DT_RELR) are not supported")
    );
    // Symbols without a symbol table, and no strings for a symbol table.
    assert_eq!(
        retag(HELLO, DT_SYMTAB, DT_FLAGS),
        LoadError::BadDynamic("a relocation names a symbol but there is no DT_SYMTAB")
    );
    assert_eq!(
        retag(HELLO, DT_STRSZ, DT_FLAGS),
        LoadError::BadDynamic("DT_SYMTAB without DT_STRTAB and DT_STRSZ")
    );

    // A symbol index past the table.
    let mut f = HELLO.to_vec();
    let r = reloc(HELLO, R_GLOB_DAT);
    wr32(&mut f, r.at + 12, 100_000);
    assert_eq!(
        load_err(&f),
        LoadError::BadDynamic("symbol index outside the symbol table")
    );

    // A name offset past the strings.
    let mut f = HELLO.to_vec();
    let sym = symbol(HELLO, r.sym);
    wr32(&mut f, sym.at, 0x10_0000);
    assert_eq!(load_err(&f), LoadError::BadDynamic("bad symbol name"));

    // A dynamic segment whose size is not a whole number of entries.
    let mut f = HELLO.to_vec();
    let dynamic = phdrs(HELLO)
        .into_iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .unwrap();
    wr64(&mut f, dynamic.at + P_FILESZ, dynamic.filesz - 3);
    assert_eq!(
        load_err(&f),
        LoadError::BadDynamic("size is not a multiple of 16")
    );

    // Two dynamic segments.
    let mut f = HELLO.to_vec();
    let stack = phdrs(HELLO).last().copied().unwrap();
    f.copy_within(dynamic.at..dynamic.at + 56, stack.at);
    assert_eq!(
        plan_err(&f),
        LoadError::BadDynamic("more than one PT_DYNAMIC")
    );
}

#[test]
fn relocation_none_is_skipped() {
    let mut f = HELLO.to_vec();
    let r = reloc(HELLO, R_GLOB_DAT);
    wr64(&mut f, r.at + 8, 0); // R_X86_64_NONE, symbol 0
    wr64(&mut f, r.at, u64::MAX); // whose offset does not matter
    let (_, image) = load_all(&f, MODULE_BASE, &exports).unwrap();
    assert_eq!(rd64(&image, r.offset as usize), 0);
}

#[test]
fn every_variant_prints_and_maps() {
    let all = [
        LoadError::BadMagic,
        LoadError::WrongClass(1),
        LoadError::WrongEndian(2),
        LoadError::WrongMachine(183),
        LoadError::NotPositionIndependent(2),
        LoadError::Truncated("segment data"),
        LoadError::BadHeader("program header entry size is not 56"),
        LoadError::BadBase(1),
        LoadError::SegmentOutOfRange(0x1000_0000),
        LoadError::SegmentsOverlap(0x40_0000),
        LoadError::WritableExecutable(0x1000),
        LoadError::TooManySegments,
        LoadError::NoSegments,
        LoadError::UnsupportedSegment(7),
        LoadError::EntryOutsideCode(0),
        LoadError::ImageTooSmall { needed: 2, got: 1 },
        LoadError::UnknownSymbol(SymbolName::new("moxie_sys_log")),
        LoadError::UnsupportedRelocation(37),
        LoadError::RelocationOutsideImage(0x40_3000),
        LoadError::RelocationNotWritable(0x40_1000),
        LoadError::BadDynamic("DT_RELAENT is not 24"),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in all {
        let text = e.to_string();
        assert!(!text.is_empty());
        assert!(seen.insert(text.clone()), "duplicate message {text}");
        let expected = if matches!(e, LoadError::UnknownSymbol(_)) {
            abi::Error::NotFound
        } else {
            abi::Error::Failed
        };
        assert_eq!(e.to_abi(), expected, "{text}");
        assert_eq!(abi::Error::from(e), expected);
    }
    assert_eq!(
        LoadError::Truncated("segment data").to_string(),
        "truncated file: segment data past its end"
    );
    assert_eq!(
        LoadError::WrongMachine(183).to_string(),
        "wrong machine 183 (expected x86_64, 62)"
    );
    assert_eq!(
        LoadError::NotPositionIndependent(2).to_string(),
        "not position-independent: ELF type 2 (a module must be a shared object, type 3)"
    );
}
