//! The page-table API: map, unmap, protect and translate 4 KiB pages in an address space.
//!
//! Permissions are a closed set ([`Perms`]) with no writable-and-executable member, so W^X holds
//! by construction for every mapping made through this module. Page walks use the `x86_64`
//! crate's `OffsetPageTable` over the direct map. Intermediate tables come from a
//! [`TableFrames`] source so that the caller decides which ledger pays for them.
use super::phys;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

/// What a page allows. There is deliberately no "read, write and execute".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perms {
    /// Read only, not executable.
    Read,
    /// Read and write, not executable.
    ReadWrite,
    /// Read and execute, not writable.
    ReadExec,
}

impl Perms {
    fn flags(self, user: bool) -> F {
        let mut f = F::PRESENT;
        match self {
            Perms::Read => f |= F::NO_EXECUTE,
            Perms::ReadWrite => f |= F::WRITABLE | F::NO_EXECUTE,
            Perms::ReadExec => {}
        }
        if user {
            f |= F::USER_ACCESSIBLE;
        } else {
            f |= F::GLOBAL;
        }
        f
    }

    fn from_flags(f: F) -> Perms {
        if f.contains(F::WRITABLE) {
            Perms::ReadWrite
        } else if f.contains(F::NO_EXECUTE) {
            Perms::Read
        } else {
            Perms::ReadExec
        }
    }
}

/// Why a page-table operation was refused; the tables are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The page is already mapped.
    AlreadyMapped,
    /// The page is not mapped.
    NotMapped,
    /// No frame was available for an intermediate table.
    NoMemory,
    /// The address lies inside a 2 MiB or 1 GiB mapping (the direct map), which this API does
    /// not split.
    HugePage,
    /// The address is not page-aligned or not canonical.
    BadAddress,
}

/// A source of zeroed frames for intermediate page tables.
pub trait TableFrames {
    /// A zeroed frame's physical address, or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<u64>;
}

struct Adapter<'a>(&'a mut dyn TableFrames);

// SAFETY: frames come from the kernel's frame allocator, which hands each out once, zeroed.
unsafe impl FrameAllocator<Size4KiB> for Adapter<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0
            .alloc_table()
            .map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

/// An address space: a top-level table and the lock that serialises changes to it.
pub struct AddressSpace {
    pml4: Mutex<u64>,
    /// The top-level table's address as well, readable without the lock (for `activate`): it
    /// changes only when the space is adopted (the kernel's) or retired, never while a thread
    /// that runs in it can be switched to.
    root: AtomicU64,
    /// Bumped, under the lock, by every change to the tables: a [`Translation`] taken at an
    /// earlier epoch may be stale.
    epoch: AtomicU64,
}

/// The top-level table of an address space, without a reference to the space: what a portal
/// call records for the space it leaves and the space it enters (`arch::portal_path`). Made
/// only from a space ([`AddressSpace::root_of`]); activating one is sound as long as that space
/// has not been torn down, which the portal death protocol guarantees for every root a thread
/// can be switched to (see `sched::portal_evict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root(u64);

impl Root {
    /// The physical address (for the portal fast path's assembly).
    pub(super) const fn raw(self) -> u64 {
        self.0
    }

    /// A root the portal path stored from [`Root::raw`].
    pub(super) const fn from_raw(raw: u64) -> Root {
        Root(raw)
    }

    /// Makes this the active address space on this CPU (nothing when it already is).
    #[inline(always)]
    pub fn activate(self) {
        let cr3: u64;
        // SAFETY: reading CR3 has no side effect.
        unsafe {
            core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
        };
        if cr3 & 0x000f_ffff_ffff_f000 != self.0 {
            // SAFETY: as in `AddressSpace::activate`: the root of a space that still exists
            // (see the type's documentation), sharing the kernel half.
            unsafe {
                core::arch::asm!("mov cr3, {}", in(reg) self.0, options(nostack, preserves_flags))
            };
        }
    }
}

/// One user page's frame in one address space, remembered by [`AddressSpace::write_user`] so
/// that the next write to the same page skips the walk while the space's tables have not
/// changed (the epoch). The default remembers nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Translation {
    page: u64,
    frame: u64,
    epoch: u64,
}

fn page(virt: u64) -> Result<Page<Size4KiB>, MapError> {
    let v = VirtAddr::try_new(virt).map_err(|_| MapError::BadAddress)?;
    Page::from_start_address(v).map_err(|_| MapError::BadAddress)
}

impl AddressSpace {
    /// The address space whose top-level table is at physical `pml4`.
    pub const fn from_root(pml4: u64) -> AddressSpace {
        AddressSpace {
            pml4: Mutex::new(pml4),
            root: AtomicU64::new(pml4),
            epoch: AtomicU64::new(1),
        }
    }

    fn with_mapper<R>(&self, f: impl FnOnce(&mut OffsetPageTable<'_>) -> R) -> R {
        let root = self.pml4.lock();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the root table lies in the direct map, and holding `root` serialises every
        // access to this address space's tables, so the `&mut PageTable` is unique.
        let table = unsafe { &mut *(phys::to_virt(*root) as *mut PageTable) };
        // SAFETY: the direct map covers all physical memory at `phys::to_virt(0)`.
        let mut mapper = unsafe { OffsetPageTable::new(table, VirtAddr::new(phys::to_virt(0))) };
        f(&mut mapper)
    }

    /// Maps the page at `virt` to the frame at `phys` with `perms` (`user` for ring 3).
    pub fn map(
        &self,
        virt: u64,
        phys: u64,
        perms: Perms,
        user: bool,
        tables: &mut dyn TableFrames,
    ) -> Result<(), MapError> {
        let page = page(virt)?;
        let frame =
            PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::BadAddress)?;
        let parent = if user {
            F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE
        } else {
            F::PRESENT | F::WRITABLE
        };
        self.with_mapper(|m| {
            // SAFETY: mapping a frame the caller owns at a page that is checked to be free by
            // the mapper; aliasing of kernel data is excluded because callers pass frames from
            // the frame allocator.
            let r = unsafe {
                m.map_to_with_table_flags(
                    page,
                    frame,
                    perms.flags(user),
                    parent,
                    &mut Adapter(tables),
                )
            };
            match r {
                Ok(flush) => {
                    flush.flush();
                    Ok(())
                }
                Err(MapToError::PageAlreadyMapped(_)) => Err(MapError::AlreadyMapped),
                Err(MapToError::FrameAllocationFailed) => Err(MapError::NoMemory),
                Err(MapToError::ParentEntryHugePage) => Err(MapError::HugePage),
            }
        })
    }

    /// Unmaps the page at `virt` and returns the frame it mapped (the caller owns it again).
    pub fn unmap(&self, virt: u64) -> Result<u64, MapError> {
        let page = page(virt)?;
        self.with_mapper(|m| match m.unmap(page) {
            Ok((frame, flush)) => {
                flush.flush();
                Ok(frame.start_address().as_u64())
            }
            Err(UnmapError::PageNotMapped) => Err(MapError::NotMapped),
            Err(UnmapError::ParentEntryHugePage) => Err(MapError::HugePage),
            Err(UnmapError::InvalidFrameAddress(_)) => Err(MapError::BadAddress),
        })
    }

    /// Changes the permissions of the mapped page at `virt`.
    pub fn protect(&self, virt: u64, perms: Perms, user: bool) -> Result<(), MapError> {
        let page = page(virt)?;
        self.with_mapper(|m| {
            // SAFETY: only the permission bits of an existing mapping change.
            match unsafe { m.update_flags(page, perms.flags(user)) } {
                Ok(flush) => {
                    flush.flush();
                    Ok(())
                }
                Err(x86_64::structures::paging::mapper::FlagUpdateError::PageNotMapped) => {
                    Err(MapError::NotMapped)
                }
                Err(_) => Err(MapError::HugePage),
            }
        })
    }

    /// The frame and permissions behind `virt`, if it is mapped with a 4 KiB page.
    pub fn translate(&self, virt: u64) -> Option<(u64, Perms)> {
        let v = VirtAddr::try_new(virt).ok()?;
        self.with_mapper(|m| match m.translate(v) {
            TranslateResult::Mapped {
                frame,
                offset,
                flags,
            } => Some((
                frame.start_address().as_u64() + offset,
                Perms::from_flags(flags),
            )),
            _ => None,
        })
    }
}

/// The kernel's address space, as the stub built it.
pub fn kernel_space() -> &'static AddressSpace {
    &KERNEL_SPACE
}

static KERNEL_SPACE: AddressSpace = AddressSpace::from_root(0);

/// Adopts the stub's tables as the kernel address space and drops the stub's identity mapping
/// of itself (every lower-half entry), so no ring-0 code remains in the user half. Every
/// kernel-half top-level entry is then filled (with an empty table where none exists), so a user
/// address space's copy of the kernel half never goes stale.
pub fn init(pml4_phys: u64, tables: &mut dyn TableFrames) -> Result<(), MapError> {
    *KERNEL_SPACE.pml4.lock() = pml4_phys;
    KERNEL_SPACE.root.store(pml4_phys, Ordering::Relaxed);
    KERNEL_SPACE.with_mapper(|m| {
        let l4 = m.level_4_table_mut();
        for e in l4.iter_mut().take(256) {
            e.set_unused();
        }
        for e in l4.iter_mut().skip(256) {
            if e.is_unused() {
                let t = tables.alloc_table().ok_or(MapError::NoMemory)?;
                e.set_addr(PhysAddr::new(t), F::PRESENT | F::WRITABLE);
            }
        }
        Ok(())
    })?;
    x86_64::instructions::tlb::flush_all();
    Ok(())
}

/// A PTE bit (one of the OS-available ones) marking a user mapping of a frame the address space
/// does not own (the export page): tearing the space down leaves such frames alone.
const SHARED: F = F::BIT_9;

impl AddressSpace {
    /// A fresh user address space: an empty lower half and the kernel's upper half.
    pub fn new_user(tables: &mut dyn TableFrames) -> Result<AddressSpace, MapError> {
        let root = tables.alloc_table().ok_or(MapError::NoMemory)?;
        let kernel = *KERNEL_SPACE.pml4.lock();
        // SAFETY: `root` is a fresh zeroed frame; the kernel root is only read, and its upper
        // half never changes after `init`.
        unsafe {
            let dst = &mut *(phys::to_virt(root) as *mut PageTable);
            let src = &*(phys::to_virt(kernel) as *const PageTable);
            for i in 256..512 {
                dst[i] = src[i].clone();
            }
        }
        Ok(AddressSpace::from_root(root))
    }

    /// Maps a frame this space does not own (it is never freed by [`Self::free_user_half`]).
    pub fn map_shared(
        &self,
        virt: u64,
        phys: u64,
        perms: Perms,
        tables: &mut dyn TableFrames,
    ) -> Result<(), MapError> {
        self.map(virt, phys, perms, true, tables)?;
        let page = page(virt)?;
        self.with_mapper(|m| {
            // SAFETY: only adds an OS-available bit to the entry just created.
            unsafe { m.update_flags(page, perms.flags(true) | SHARED) }
                .map(|f| f.flush())
                .map_err(|_| MapError::NotMapped)
        })
    }

    /// Maps the device-memory page at physical `phys` at `virt`: writable, uncached (PCD and
    /// PWT), never executable. A user mapping is marked as not owned, so tearing the space down
    /// never hands device memory to the frame allocator. The caller checks that `phys` is not
    /// RAM (see `arch::mmio`).
    pub fn map_device(
        &self,
        virt: u64,
        phys: u64,
        user: bool,
        tables: &mut dyn TableFrames,
    ) -> Result<(), MapError> {
        let page = page(virt)?;
        let frame =
            PhysFrame::from_start_address(PhysAddr::new(phys)).map_err(|_| MapError::BadAddress)?;
        let mut flags = Perms::ReadWrite.flags(user) | F::NO_CACHE | F::WRITE_THROUGH;
        let mut parent = F::PRESENT | F::WRITABLE;
        if user {
            flags |= SHARED;
            parent |= F::USER_ACCESSIBLE;
        }
        self.with_mapper(|m| {
            // SAFETY: maps device registers, not RAM (the caller's check), at a page the mapper
            // checks is free; no Rust reference ever points into device memory.
            let r = unsafe {
                m.map_to_with_table_flags(page, frame, flags, parent, &mut Adapter(tables))
            };
            match r {
                Ok(flush) => {
                    flush.flush();
                    Ok(())
                }
                Err(MapToError::PageAlreadyMapped(_)) => Err(MapError::AlreadyMapped),
                Err(MapToError::FrameAllocationFailed) => Err(MapError::NoMemory),
                Err(MapToError::ParentEntryHugePage) => Err(MapError::HugePage),
            }
        })
    }

    /// Makes this the active address space on this CPU (nothing when it already is).
    #[inline(always)]
    pub fn activate(&self) {
        let root = self.root.load(Ordering::Relaxed);
        let cr3: u64;
        // SAFETY: reading CR3 has no side effect.
        unsafe {
            core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
        };
        if cr3 & 0x000f_ffff_ffff_f000 != root {
            // SAFETY: every address space shares the kernel half, so the code, stack and data
            // in use stay mapped across the switch; `root` is this space's top-level table (no
            // PCID, no flags).
            unsafe {
                core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags))
            };
        }
    }

    /// The space's top-level table as a thread records it while it runs there (see [`Root`]).
    #[inline]
    pub fn root_of(&self) -> Root {
        Root(self.root.load(Ordering::Relaxed))
    }

    /// Physical address of the top-level table.
    pub fn root(&self) -> u64 {
        *self.pml4.lock()
    }

    /// Writes `src` at the user address `virt` of this space (not necessarily the active one)
    /// through the direct map: the kernel's half of single-copy message delivery. `seen`
    /// remembers the page's frame for the next write (see [`Translation`]). Only into
    /// pages that are present, user-accessible and writable at every level, 4 KiB, owned by
    /// the space (not the export page or device memory) and cached normally; anything else, a
    /// range outside the user half, or a space already torn down writes nothing and is `false`
    /// (the caller queues the message instead, and the receiver's own copy reports the fault).
    /// Holds the space's lock, so the pages cannot be freed meanwhile.
    #[inline(always)]
    pub fn write_user(&self, virt: u64, src: &[u8], seen: &mut Translation) -> bool {
        let Some(end) = virt.checked_add(src.len() as u64) else {
            return false;
        };
        if virt < abi::layout::USER_NULL_GUARD_END || end > abi::layout::USER_END {
            return false;
        }
        let root = self.pml4.lock();
        if *root == 0 {
            return false;
        }
        let offset = virt & 0xfff;
        if offset + src.len() as u64 <= 4096 {
            // The common case: one page, one walk, or none when the page is the one written
            // last time and nothing changed since.
            let page = virt & !0xfff;
            let epoch = self.epoch.load(Ordering::Relaxed);
            let frame = if seen.page == page && seen.epoch == epoch {
                seen.frame
            } else {
                let Some(frame) = user_writable_frame(*root, page) else {
                    return false;
                };
                *seen = Translation { page, frame, epoch };
                frame
            };
            // SAFETY: see `copy_into_frame`; the range stays inside the page.
            unsafe { copy_into_frame(frame, offset, src) };
            return true;
        }
        write_pages(*root, virt, src)
    }

    /// Marks the space torn down and returns its top-level table for freeing: later
    /// [`Self::write_user`] calls find nothing (the table's frame may be reused at once).
    pub fn retire(&self) -> u64 {
        let mut root = self.pml4.lock();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.root.store(0, Ordering::Relaxed);
        core::mem::take(&mut *root)
    }

    /// Frees every frame the lower half maps (except shared ones) and every lower-half table;
    /// returns how many frames went back. The space must not be active on any CPU.
    pub fn free_user_half(&self, free: &mut dyn FnMut(u64)) -> u64 {
        let root = self.pml4.lock();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        let mut n = 0;
        // SAFETY: the space is inactive and locked, so its tables are ours to walk and free.
        let l4 = unsafe { &mut *(phys::to_virt(*root) as *mut PageTable) };
        for e in l4.iter_mut().take(256) {
            if e.flags().contains(F::PRESENT) {
                n += free_table(e.addr().as_u64(), 3, free);
                e.set_unused();
            }
        }
        n
    }

    /// Calls `f` for every private 4 KiB user page mapped in `start..end` (not shared, not
    /// device memory), in ascending order, with its permissions and its frame (see
    /// [`frame_bytes`]): what a suspend puts into an image. Walks only the tables that exist, so a large, sparse range
    /// costs what is mapped. The space must not run anywhere (its threads are frozen).
    pub fn for_each_private_page(&self, start: u64, end: u64, f: &mut dyn FnMut(u64, Perms, u64)) {
        let root = self.pml4.lock();
        walk_private(*root, 3, 0, start, end.min(abi::layout::USER_END), f);
    }

    /// Frees the top-level table itself (after [`Self::free_user_half`]).
    pub fn into_root(self) -> u64 {
        self.pml4.into_inner()
    }
}

/// [`AddressSpace::write_user`] across pages, with the space's lock held (`root` is its live
/// top-level table): every page checked first, so that a refusal writes nothing.
#[inline(never)]
fn write_pages(root: u64, virt: u64, src: &[u8]) -> bool {
    let end = virt + src.len() as u64;
    let mut page = virt & !0xfff;
    while page < end {
        if user_writable_frame(root, page).is_none() {
            return false;
        }
        page += 4096;
    }
    let mut done = 0usize;
    while done < src.len() {
        let at = virt + done as u64;
        let n = ((4096 - (at & 0xfff)) as usize).min(src.len() - done);
        let Some(frame) = user_writable_frame(root, at & !0xfff) else {
            return false;
        };
        // SAFETY: see `copy_into_frame`; `n` bytes from the offset stay inside the page, whose
        // frame the caller's lock keeps allocated.
        unsafe { copy_into_frame(frame, at & 0xfff, &src[done..done + n]) };
        done += n;
    }
    true
}

/// Copies `src` to `offset` in the RAM frame `frame` through the direct map: eight bytes at a
/// time, then the rest (a `rep movsb` alone costs an instruction per byte under `-icount`).
///
/// # Safety
///
/// `frame` must be a RAM frame (inside the direct map) that no Rust reference points into and
/// that stays allocated during the copy (the caller holds the lock of the space that owns it),
/// and `offset + src.len()` must not pass its end.
unsafe fn copy_into_frame(frame: u64, offset: u64, src: &[u8]) {
    let dst = phys::to_virt(frame + offset);
    // SAFETY: the caller's contract: `src.len()` bytes at `dst` are the frame's, writable, and
    // disjoint from `src` (a kernel slice never points into a user page's frame).
    unsafe {
        core::arch::asm!(
            "mov rcx, rdx",
            "shr rcx, 3",
            "rep movsq",
            "mov rcx, rdx",
            "and rcx, 7",
            "rep movsb",
            inout("rdi") dst => _,
            inout("rsi") src.as_ptr() => _,
            in("rdx") src.len(),
            out("rcx") _,
            options(nostack)
        );
    }
}

/// The frame behind the user page `page` of the space rooted at `root`, if the page is present,
/// user-accessible and writable at every level, a 4 KiB page, not shared and not uncached.
fn user_writable_frame(root: u64, page: u64) -> Option<u64> {
    const NEED: u64 = F::PRESENT.bits() | F::WRITABLE.bits() | F::USER_ACCESSIBLE.bits();
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let mut table = root;
    for level in (0..4).rev() {
        let i = (page >> (12 + 9 * level)) & 0x1ff;
        // SAFETY: `table` is a page table of a live space whose lock the caller holds (the root,
        // or a table a present entry names); one aligned 8-byte entry is read.
        let e = unsafe {
            (phys::to_virt(table) as *const u64)
                .add(i as usize)
                .read_volatile()
        };
        if e & NEED != NEED || e & F::HUGE_PAGE.bits() != 0 {
            return None;
        }
        table = e & ADDR;
        if level == 0 && e & (SHARED.bits() | F::NO_CACHE.bits() | F::WRITE_THROUGH.bits()) != 0 {
            return None;
        }
    }
    Some(table)
}

/// [`AddressSpace::for_each_private_page`] below the table `table` of `level` (3: the top)
/// that maps the region starting at `base`.
fn walk_private(
    table: u64,
    level: u8,
    base: u64,
    start: u64,
    end: u64,
    f: &mut dyn FnMut(u64, Perms, u64),
) {
    let span = 1u64 << (12 + 9 * u32::from(level));
    // SAFETY: `table` is a lower-half table of a space whose lock the caller holds and whose
    // threads do not run; entries are read, nothing is written.
    let t = unsafe { &*(phys::to_virt(table) as *const PageTable) };
    let entries = if level == 3 { 256 } else { 512 };
    for (i, e) in t.iter().enumerate().take(entries) {
        let va = base + i as u64 * span;
        if va + span <= start || va >= end {
            continue;
        }
        let flags = e.flags();
        if !flags.contains(F::PRESENT) || flags.contains(F::HUGE_PAGE) {
            continue;
        }
        if level > 0 {
            walk_private(e.addr().as_u64(), level - 1, va, start, end, f);
        } else if flags.contains(F::USER_ACCESSIBLE)
            && !flags.intersects(SHARED | F::NO_CACHE | F::WRITE_THROUGH)
        {
            f(va, Perms::from_flags(flags), e.addr().as_u64());
        }
    }
}

/// The contents of a private user page's RAM frame, as [`AddressSpace::for_each_private_page`]
/// reported it, read in place through the direct map (no copy). The caller keeps the frame
/// where it is and unwritten while it holds the reference: the suspend that uses it holds the
/// process frozen, and frees its space only after the image is written.
pub fn frame_bytes<'a>(frame: u64) -> &'a [u8; 4096] {
    // SAFETY: `frame` is a 4 KiB RAM frame of a frozen process (the contract above): it lies in
    // the direct map, stays allocated and is not written while the reference lives.
    unsafe { &*(phys::to_virt(frame) as *const [u8; 4096]) }
}

fn free_table(table: u64, level: u8, free: &mut dyn FnMut(u64)) -> u64 {
    // SAFETY: `table` is a lower-half page table of an inactive space (see the caller).
    let t = unsafe { &*(phys::to_virt(table) as *const PageTable) };
    let mut n = 0;
    for e in t.iter() {
        let f = e.flags();
        if !f.contains(F::PRESENT) {
            continue;
        }
        if level > 1 && !f.contains(F::HUGE_PAGE) {
            n += free_table(e.addr().as_u64(), level - 1, free);
        } else if !f.contains(SHARED) {
            free(e.addr().as_u64());
            n += 1;
        }
    }
    free(table);
    n + 1
}
