//! Loading the real fixtures: the plan matches their program headers, the image holds their
//! bytes, and every relocation slot holds what the x86_64 psABI says.

mod common;

use abi::layout::{MODULE_BASE, PAGE_SIZE};
use common::*;
use elfload::{Perms, plan};

/// The value the test expects in a relocation's slot, computed from the raw file.
fn expected(f: &[u8], base: u64, r: &Reloc) -> u64 {
    let s = |index: u32| {
        let sym = symbol(f, index);
        if sym.shndx == 0 {
            exports(&sym.name).unwrap()
        } else {
            base + sym.value
        }
    };
    match r.kind {
        R_RELATIVE => base.wrapping_add_signed(r.addend),
        R_64 => s(r.sym).wrapping_add_signed(r.addend),
        R_GLOB_DAT | R_JUMP_SLOT => s(r.sym),
        k => panic!("fixture has an unexpected relocation type {k}"),
    }
}

/// Plans, loads and relocates `f` at `base`, and checks everything against the raw file.
fn check_fixture(f: &[u8], base: u64) -> (elfload::Plan, Vec<u8>) {
    let (plan, image) = load_all(f, base, &exports).expect("fixture loads");
    assert_eq!(plan.base(), base);
    assert_eq!(plan.entry(), base + rd64(f, E_ENTRY));

    // Segments: the PT_LOADs, absolute, with their permissions.
    let loads = loads(f);
    assert_eq!(plan.segments().len(), loads.len());
    for (seg, ph) in plan.segments().iter().zip(&loads) {
        assert_eq!(seg.vaddr(), base + ph.vaddr);
        assert_eq!(seg.mem_size(), ph.memsz);
        assert_eq!(seg.file_offset(), ph.offset);
        assert_eq!(seg.file_size(), ph.filesz);
        let perms = match (ph.flags & PF_W != 0, ph.flags & PF_X != 0) {
            (false, false) => Perms::R,
            (true, false) => Perms::RW,
            (false, true) => Perms::RX,
            (true, true) => unreachable!(),
        };
        assert_eq!(seg.perms(), perms);
        let pages = seg.pages();
        assert_eq!(pages.start % PAGE_SIZE, 0);
        assert_eq!(pages.end % PAGE_SIZE, 0);
        assert!(pages.start <= seg.vaddr() && seg.vaddr() + seg.mem_size() <= pages.end);
    }
    let last = plan.segments().last().unwrap();
    assert_eq!(plan.span(), last.pages().end - base);
    let code = plan
        .segments()
        .iter()
        .find(|s| s.perms() == Perms::RX)
        .unwrap();
    assert!(code.vaddr() <= plan.entry() && plan.entry() < code.vaddr() + code.file_size());

    // The image: the file bytes, zeros elsewhere, except the relocated slots.
    let relocs = relocs(f);
    let slots: Vec<u64> = relocs.iter().map(|r| r.offset).collect();
    let mut loaded = vec![0u8; image.len()];
    for ph in &loads {
        let (o, v, n) = (ph.offset as usize, ph.vaddr as usize, ph.filesz as usize);
        loaded[v..v + n].copy_from_slice(&f[o..o + n]);
    }
    for (i, (&a, &b)) in image.iter().zip(&loaded).enumerate() {
        let in_slot = slots.iter().any(|&s| (s..s + 8).contains(&(i as u64)));
        if !in_slot {
            assert_eq!(a, b, "byte {i:#x} changed outside relocation slots");
        }
    }

    // The slots.
    for r in &relocs {
        let at = r.offset as usize;
        assert_eq!(rd64(&image, at), expected(f, base, r), "relocation {r:x?}");
    }
    (plan, image)
}

#[test]
fn hello_loads_and_relocates() {
    let (plan, image) = check_fixture(HELLO, MODULE_BASE);
    let perms: Vec<Perms> = plan.segments().iter().map(|s| s.perms()).collect();
    assert_eq!(perms, [Perms::R, Perms::RX, Perms::RW]);

    let relocs = relocs(HELLO);
    let count = |k| relocs.iter().filter(|r| r.kind == k).count();
    assert_eq!(count(R_GLOB_DAT), 1);
    assert_eq!(count(R_64), 1);
    assert_eq!(count(R_RELATIVE), 2);
    // The GOT slot and the static pointer both hold the export's address.
    for r in relocs
        .iter()
        .filter(|r| r.kind == R_GLOB_DAT || r.kind == R_64)
    {
        assert_eq!(rd64(&image, r.offset as usize), LOG_ADDR);
    }
    // The relative slots point at the messages, which are in the image.
    for r in relocs.iter().filter(|r| r.kind == R_RELATIVE) {
        let p = rd64(&image, r.offset as usize);
        assert_eq!(p, MODULE_BASE + r.addend as u64);
        let at = (p - MODULE_BASE) as usize;
        assert!(
            image[at..].starts_with(b"hello from a module\n")
                || image[at..].starts_with(b"second message\n")
        );
    }
    assert_eq!(plan.relro().unwrap().start % PAGE_SIZE, 0);
}

#[test]
fn plt_loads_and_relocates() {
    let (plan, image) = check_fixture(PLT, MODULE_BASE);
    let perms: Vec<Perms> = plan.segments().iter().map(|s| s.perms()).collect();
    assert_eq!(perms, [Perms::R, Perms::RX, Perms::RW, Perms::RW]);

    let relocs = relocs(PLT);
    let slots = |k| -> Vec<(String, u64)> {
        relocs
            .iter()
            .filter(|r| r.kind == k)
            .map(|r| (symbol(PLT, r.sym).name, rd64(&image, r.offset as usize)))
            .collect()
    };
    let main = MODULE_BASE
        + symbol(
            PLT,
            relocs.iter().find(|r| r.kind == R_JUMP_SLOT).unwrap().sym,
        )
        .value;
    let mut jump = slots(R_JUMP_SLOT);
    jump.sort();
    assert_eq!(
        jump,
        [
            ("moxie_sys_log".to_string(), LOG_ADDR),
            ("moxie_sys_yield".to_string(), YIELD_ADDR),
            ("plt_main".to_string(), main),
        ]
    );
    assert_eq!(
        slots(R_GLOB_DAT),
        [("moxie_sys_yield".to_string(), YIELD_ADDR)]
    );
    let mut abs = slots(R_64);
    abs.sort();
    assert_eq!(
        abs,
        [
            ("moxie_sys_yield".to_string(), YIELD_ADDR),
            ("plt_main".to_string(), main)
        ]
    );
    assert_eq!(relocs.iter().filter(|r| r.kind == R_RELATIVE).count(), 3);

    // `.bss`: the last writable segment's memory past its file bytes is zero.
    let bss = plan.segments().last().unwrap();
    let from = (bss.vaddr() + bss.file_size() - MODULE_BASE) as usize;
    let to = (bss.vaddr() + bss.mem_size() - MODULE_BASE) as usize;
    assert!(to > from + 4000);
    assert!(image[from..to].iter().all(|&b| b == 0));

    // RELRO: the first writable segment's whole pages.
    let rw = plan.segments()[2];
    assert_eq!(plan.relro(), Some(rw.pages()));
}

#[test]
fn another_base_moves_everything() {
    for f in FIXTURES {
        let base = MODULE_BASE + 0x10_0000;
        let (plan, _) = check_fixture(f, base);
        let (at_module_base, _) = check_fixture(f, MODULE_BASE);
        assert_eq!(plan.entry() - base, at_module_base.entry() - MODULE_BASE);
        assert_eq!(plan.span(), at_module_base.span());
    }
}

#[test]
fn stripping_section_headers_changes_nothing() {
    for f in FIXTURES {
        let mut stripped = f.to_vec();
        // e_shoff, e_shnum, e_shstrndx: no section headers at all.
        wr64(&mut stripped, 0x28, 0);
        wr16(&mut stripped, 0x3c, 0);
        wr16(&mut stripped, 0x3e, 0);
        let end = loads(f)
            .iter()
            .map(|p| (p.offset + p.filesz) as usize)
            .max()
            .unwrap();
        stripped.truncate(end);
        let (a, ia) = load_all(f, MODULE_BASE, &exports).unwrap();
        let (b, ib) = load_all(&stripped, MODULE_BASE, &exports).unwrap();
        assert_eq!(a, b);
        // The images differ only in the file header, which the first segment maps.
        assert!(ia[64..] == ib[64..]);
    }
}

#[test]
fn weak_undefined_symbol_resolves_to_zero() {
    let mut f = HELLO.to_vec();
    let r = relocs(HELLO)
        .into_iter()
        .find(|r| r.kind == R_GLOB_DAT)
        .unwrap();
    let sym = symbol(HELLO, r.sym);
    // st_info = STB_WEAK << 4 | STT_NOTYPE.
    f[sym.at + 4] = 2 << 4;
    let (_, image) = load_all(&f, MODULE_BASE, &|_| None).unwrap();
    assert_eq!(rd64(&image, r.offset as usize), 0);
}

#[test]
fn module_without_dynamic_segment_needs_no_relocation() {
    let mut f = HELLO.to_vec();
    let dynamic = phdrs(HELLO)
        .into_iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .unwrap();
    wr32(&mut f, dynamic.at + P_TYPE, PT_NULL);
    let plan = plan(&f, MODULE_BASE).unwrap();
    let mut image = vec![0; plan.span() as usize];
    elfload::load(&f, &plan, &mut image).unwrap();
    let loaded = image.clone();
    elfload::relocate(&f, &plan, &mut image, &|_| panic!("no lookup expected")).unwrap();
    assert!(image == loaded);
}

#[test]
fn load_zeroes_a_dirty_buffer_past_the_span() {
    let plan = plan(PLT, MODULE_BASE).unwrap();
    let mut image = vec![0xcc; plan.span() as usize + 100];
    elfload::load(PLT, &plan, &mut image).unwrap();
    assert!(image[plan.span() as usize..].iter().all(|&b| b == 0));
}
