//! Applying a module's dynamic relocations ([`relocate`]).
//!
//! The tables (`DT_RELA`, `DT_JMPREL`, `DT_SYMTAB`, `DT_STRTAB`) are found through the
//! `PT_DYNAMIC` segment and read from the *file*, at the file offsets their link-time addresses
//! map to through the plan's segments; only the 8-byte slots they patch are written, in the
//! image.

use elf::abi as ea;
use elf::dynamic::DynamicTable;
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::relocation::{Rela, RelaIterator};
use elf::string_table::StringTable;
use elf::symbol::SymbolTable;

use crate::{LoadError, Plan, SymbolName, file_slice};

/// Size of an `Elf64_Dyn`.
const DYN_SIZE: u64 = 16;
/// Size of an `Elf64_Rela`.
const RELA_SIZE: u64 = 24;
/// Size of an `Elf64_Sym`.
const SYM_SIZE: u64 = 24;
/// `DT_RELR` (packed relative relocations), which `elf` 0.8 does not name.
const DT_RELR: i64 = 36;

/// What the dynamic section says, one field per tag the loader reads.
#[derive(Default)]
struct Dynamic {
    rela: Option<u64>,
    relasz: Option<u64>,
    relaent: Option<u64>,
    jmprel: Option<u64>,
    pltrelsz: Option<u64>,
    pltrel: Option<u64>,
    symtab: Option<u64>,
    syment: Option<u64>,
    strtab: Option<u64>,
    strsz: Option<u64>,
}

impl Dynamic {
    fn parse(table: &[u8]) -> Result<Dynamic, LoadError> {
        if !(table.len() as u64).is_multiple_of(DYN_SIZE) {
            return Err(LoadError::BadDynamic("size is not a multiple of 16"));
        }
        let mut d = Dynamic::default();
        for entry in DynamicTable::new(LittleEndian, Class::ELF64, table).iter() {
            let v = Some(entry.d_val());
            match entry.d_tag {
                ea::DT_NULL => break,
                ea::DT_RELA => d.rela = v,
                ea::DT_RELASZ => d.relasz = v,
                ea::DT_RELAENT => d.relaent = v,
                ea::DT_JMPREL => d.jmprel = v,
                ea::DT_PLTRELSZ => d.pltrelsz = v,
                ea::DT_PLTREL => d.pltrel = v,
                ea::DT_SYMTAB => d.symtab = v,
                ea::DT_SYMENT => d.syment = v,
                ea::DT_STRTAB => d.strtab = v,
                ea::DT_STRSZ => d.strsz = v,
                ea::DT_REL | ea::DT_RELSZ => {
                    return Err(LoadError::BadDynamic(
                        "REL relocations (DT_REL) are not used on x86_64",
                    ));
                }
                DT_RELR => {
                    return Err(LoadError::BadDynamic(
                        "packed relative relocations (DT_RELR) are not supported",
                    ));
                }
                _ => {}
            }
        }
        if d.relaent.is_some_and(|e| e != RELA_SIZE) {
            return Err(LoadError::BadDynamic("DT_RELAENT is not 24"));
        }
        if d.syment.is_some_and(|e| e != SYM_SIZE) {
            return Err(LoadError::BadDynamic("DT_SYMENT is not 24"));
        }
        if d.jmprel.is_some() && d.pltrel != Some(ea::DT_RELA as u64) {
            return Err(LoadError::BadDynamic("DT_PLTREL is not DT_RELA"));
        }
        Ok(d)
    }
}

/// File bytes at link-time address `addr`: `len` bytes, or with `len` `None` everything up to
/// the end of the file bytes of the segment holding `addr`. `None` when `addr` is not inside a
/// segment's file bytes or the range runs past them.
fn at_link_addr<'a>(file: &'a [u8], plan: &Plan, addr: u64, len: Option<u64>) -> Option<&'a [u8]> {
    let abs = plan.base.checked_add(addr)?;
    let seg = plan
        .segments()
        .iter()
        .find(|s| abs >= s.vaddr && abs - s.vaddr < s.file_size)?;
    let rel = abs - seg.vaddr;
    let avail = seg.file_size - rel;
    let len = match len {
        Some(n) if n <= avail => n,
        Some(_) => return None,
        None => avail,
    };
    file_slice(file, seg.file_offset.checked_add(rel)?, len)
}

/// A relocation table (`DT_RELA`/`DT_RELASZ` or `DT_JMPREL`/`DT_PLTRELSZ`), or `None` when the
/// module has none.
fn rela_table<'a>(
    file: &'a [u8],
    plan: &Plan,
    addr: Option<u64>,
    size: Option<u64>,
    what: &'static str,
) -> Result<Option<RelaIterator<'a, LittleEndian>>, LoadError> {
    let (addr, size) = match (addr, size) {
        (_, Some(0)) | (None, None) => return Ok(None),
        (Some(a), Some(s)) => (a, s),
        _ => return Err(LoadError::BadDynamic(what)),
    };
    if !size.is_multiple_of(RELA_SIZE) {
        return Err(LoadError::BadDynamic(
            "relocation table size is not a multiple of 24",
        ));
    }
    let bytes = at_link_addr(file, plan, addr, Some(size)).ok_or(LoadError::BadDynamic(
        "relocation table outside the segments' file bytes",
    ))?;
    Ok(Some(RelaIterator::new(LittleEndian, Class::ELF64, bytes)))
}

/// The dynamic symbol table and its strings.
struct Symbols<'a> {
    table: SymbolTable<'a, LittleEndian>,
    strings: StringTable<'a>,
}

impl<'a> Symbols<'a> {
    fn find(file: &'a [u8], plan: &Plan, d: &Dynamic) -> Result<Option<Symbols<'a>>, LoadError> {
        let Some(symtab) = d.symtab else {
            return Ok(None);
        };
        let (Some(strtab), Some(strsz)) = (d.strtab, d.strsz) else {
            return Err(LoadError::BadDynamic(
                "DT_SYMTAB without DT_STRTAB and DT_STRSZ",
            ));
        };
        // The table's length is not in the dynamic section: it may run to the end of its
        // segment's file bytes, and an index past those is refused when it is used.
        let table = at_link_addr(file, plan, symtab, None).ok_or(LoadError::BadDynamic(
            "symbol table outside the segments' file bytes",
        ))?;
        let strings = at_link_addr(file, plan, strtab, Some(strsz)).ok_or(
            LoadError::BadDynamic("string table outside the segments' file bytes"),
        )?;
        Ok(Some(Symbols {
            table: SymbolTable::new(LittleEndian, Class::ELF64, table),
            strings: StringTable::new(strings),
        }))
    }
}

/// The value `S` of symbol `index`: 0 for index 0 (`STN_UNDEF`), `base + st_value` for a symbol
/// the module defines, `st_value` for an absolute one (`SHN_ABS`), `exports(name)` for an
/// undefined one, and 0 for an undefined *weak* symbol that `exports` does not know.
fn symbol_value(
    symbols: Option<&Symbols<'_>>,
    index: u32,
    base: u64,
    exports: &dyn Fn(&str) -> Option<u64>,
) -> Result<u64, LoadError> {
    if index == 0 {
        return Ok(0);
    }
    let symbols = symbols.ok_or(LoadError::BadDynamic(
        "a relocation names a symbol but there is no DT_SYMTAB",
    ))?;
    let sym = symbols
        .table
        .get(index as usize)
        .map_err(|_| LoadError::BadDynamic("symbol index outside the symbol table"))?;
    match sym.st_shndx {
        ea::SHN_UNDEF => {
            let name = symbols
                .strings
                .get(sym.st_name as usize)
                .map_err(|_| LoadError::BadDynamic("bad symbol name"))?;
            match exports(name) {
                Some(value) => Ok(value),
                None if sym.st_bind() == ea::STB_WEAK => Ok(0),
                None => Err(LoadError::UnknownSymbol(SymbolName::new(name))),
            }
        }
        ea::SHN_ABS => Ok(sym.st_value),
        _ => Ok(base.wrapping_add(sym.st_value)),
    }
}

/// Applies one relocation.
fn apply(
    rela: &Rela,
    plan: &Plan,
    symbols: Option<&Symbols<'_>>,
    image: &mut [u8],
    exports: &dyn Fn(&str) -> Option<u64>,
) -> Result<(), LoadError> {
    let base = plan.base;
    let value = match rela.r_type {
        ea::R_X86_64_NONE => return Ok(()),
        ea::R_X86_64_RELATIVE => base.wrapping_add_signed(rela.r_addend),
        ea::R_X86_64_64 => {
            symbol_value(symbols, rela.r_sym, base, exports)?.wrapping_add_signed(rela.r_addend)
        }
        ea::R_X86_64_GLOB_DAT | ea::R_X86_64_JUMP_SLOT => {
            symbol_value(symbols, rela.r_sym, base, exports)?
        }
        other => return Err(LoadError::UnsupportedRelocation(other)),
    };
    let target = base.wrapping_add(rela.r_offset);
    if base.checked_add(rela.r_offset).is_none() || !plan.writable_contains(target, 8) {
        return Err(LoadError::RelocationNotWritable(target));
    }
    // Inside a writable segment, so `target - base` is below MODULE_MAX_SIZE.
    let at = (target - base) as usize;
    let slot = image
        .get_mut(at..at + 8)
        .ok_or(LoadError::RelocationOutsideImage(target))?;
    slot.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Applies the module's dynamic relocations to `image`, resolving undefined symbols with
/// `exports`.
///
/// `image` holds the loaded span: `image[0]` is at `plan.base()`, and the segments' file bytes
/// are in place with the rest zeroed (what [`load`](crate::load) does). `file` must be the file
/// `plan` was made from; the relocation tables, symbols and names are read from it, so a
/// relocation cannot change what later relocations read.
///
/// Relocations come from `DT_RELA`/`DT_RELASZ`, then `DT_JMPREL`/`DT_PLTRELSZ` (which must be
/// RELA), through `PT_DYNAMIC`; a module without `PT_DYNAMIC` has nothing to relocate. Applied
/// types, with `B` the base, `A` the addend and `S` the symbol's value:
/// `R_X86_64_NONE` (nothing), `R_X86_64_RELATIVE` (`B + A`), `R_X86_64_64` (`S + A`),
/// `R_X86_64_GLOB_DAT` and `R_X86_64_JUMP_SLOT` (`S`; binding is always eager). Any other type
/// is [`LoadError::UnsupportedRelocation`]. Sums wrap, as the processor's would.
///
/// Symbols come from `DT_SYMTAB`/`DT_STRTAB`/`DT_STRSZ`. A symbol the module defines resolves to
/// `B + st_value` (`st_value` for `SHN_ABS`); an undefined one to `exports(name)`, and when that
/// is `None` to [`LoadError::UnknownSymbol`] — or to 0 if the symbol is weak, as ELF specifies.
///
/// Every 8-byte write must lie inside the *memory of a writable segment* (not merely inside the
/// image: code and read-only data are never patched, so text relocations are refused), else
/// [`LoadError::RelocationNotWritable`]; and inside `image`, else
/// [`LoadError::RelocationOutsideImage`] (only possible when `image` is shorter than
/// [`Plan::span`](crate::Plan::span)).
///
/// On error, `image` may be partly relocated: discard it.
pub fn relocate(
    file: &[u8],
    plan: &Plan,
    image: &mut [u8],
    exports: &dyn Fn(&str) -> Option<u64>,
) -> Result<(), LoadError> {
    let Some((offset, size)) = plan.dynamic else {
        return Ok(());
    };
    let table = file_slice(file, offset, size).ok_or(LoadError::Truncated("dynamic section"))?;
    let d = Dynamic::parse(table)?;
    let rela = rela_table(
        file,
        plan,
        d.rela,
        d.relasz,
        "DT_RELA and DT_RELASZ must come together",
    )?;
    let plt = rela_table(
        file,
        plan,
        d.jmprel,
        d.pltrelsz,
        "DT_JMPREL and DT_PLTRELSZ must come together",
    )?;
    let symbols = Symbols::find(file, plan, &d)?;
    for r in rela.into_iter().flatten().chain(plt.into_iter().flatten()) {
        apply(&r, plan, symbols.as_ref(), image, exports)?;
    }
    Ok(())
}
