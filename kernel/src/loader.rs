//! The ELF loader: turns a module file into the pages of a process image, using the host-tested
//! `elfload` crate for every check and relocation.
//!
//! The module is planned at `abi::layout::MODULE_BASE`, laid out in a scratch buffer,
//! relocated there (undefined `moxie_sys_*` symbols bound to the export page), then cut into
//! pages with their segment's permissions; pages wholly inside the module's RELRO range become
//! read-only after relocation.
use crate::arch::export;
use crate::arch::paging::Perms;
use abi::layout::{MODULE_BASE, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;

pub use elfload::LoadError;

/// One page of a loaded image.
pub struct Page {
    /// Its user address.
    pub vaddr: u64,
    /// Its permissions (W^X by construction).
    pub perms: Perms,
    /// Its contents.
    pub bytes: Box<[u8]>,
}

/// A relocated module, ready to map.
pub struct Image {
    /// The entry point.
    pub entry: u64,
    /// Its pages, in address order.
    pub pages: Vec<Page>,
}

/// Plans, lays out and relocates `file`.
pub fn load(file: &[u8]) -> Result<Image, LoadError> {
    let plan = elfload::plan(file, MODULE_BASE)?;
    let mut image = alloc::vec![0u8; plan.span() as usize];
    elfload::load(file, &plan, &mut image)?;
    elfload::relocate(file, &plan, &mut image, &export::resolve)?;
    let relro = plan.relro();
    let mut pages = Vec::new();
    for seg in plan.segments() {
        for va in seg.pages().step_by(PAGE_SIZE as usize) {
            let off = (va - MODULE_BASE) as usize;
            let in_relro = relro
                .as_ref()
                .is_some_and(|r| r.start <= va && va + PAGE_SIZE <= r.end);
            let perms = match seg.perms() {
                elfload::Perms::R => Perms::Read,
                elfload::Perms::RX => Perms::ReadExec,
                elfload::Perms::RW if in_relro => Perms::Read,
                elfload::Perms::RW => Perms::ReadWrite,
            };
            pages.push(Page {
                vaddr: va,
                perms,
                bytes: image[off..off + PAGE_SIZE as usize].into(),
            });
        }
    }
    Ok(Image {
        entry: plan.entry(),
        pages,
    })
}
