//! The arena as the global allocator: `talc` (binned free lists; freed blocks are reused) over
//! the process's arena, which the kernel maps page by page on first touch up to the ceiling the
//! parent set. The heap starts empty; when talc runs out it asks [`ArenaSource`], which claims
//! the first span at `ARENA_BASE` and afterwards extends the heap upwards, in steps of at
//! least [`GROW_STEP`]. Only pages the allocator touches are ever mapped, and freed memory is
//! reused, so a long-running service's arena stays as large as its peak live data. The whole
//! arena still goes back to the kernel in one operation when the process dies (the earth law).
//! Growing past the ceiling faults, and the parent is told (`ArenaCeiling`).
use abi::layout::{ARENA_BASE, ARENA_MAX, PAGE_SIZE};
use core::alloc::Layout;
use core::ptr::NonNull;
use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

/// The smallest extension of the heap: 64 KiB (sixteen pages).
pub const GROW_STEP: usize = 64 << 10;

/// Where talc's memory comes from: the arena, one contiguous heap growing upwards.
#[derive(Debug)]
pub struct ArenaSource {
    /// The heap's end (an address) once the first span is claimed.
    end: Option<usize>,
}

// SAFETY: the arena is address space only this allocator uses (the layout reserves it for the
// process's heap; nothing else in the process maps or writes it), and `acquire` only claims
// or extends through the `talc` it is given, never through the global allocator.
unsafe impl Source for ArenaSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the block, its alignment and talc's tags, rounded to whole steps.
        let want = layout
            .size()
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(256))
            .ok_or(())?
            .next_multiple_of(GROW_STEP);
        let arena_end = (ARENA_BASE + ARENA_MAX) as usize;
        match talc.source.end {
            None => {
                let size = want.min(ARENA_MAX as usize);
                // SAFETY: `ARENA_BASE..+size` is arena space nobody else uses (see above); the
                // kernel maps each page when talc first writes it.
                let end = unsafe { talc.claim(ARENA_BASE as *mut u8, size) }.ok_or(())?;
                talc.source.end = Some(end.as_ptr() as usize);
            }
            Some(old) => {
                let end = NonNull::new(old as *mut u8).ok_or(())?;
                let new = old.checked_add(want).ok_or(())?.min(arena_end);
                if new <= old {
                    return Err(());
                }
                // SAFETY: `old..new` lies in the arena above the heap: unused, as above.
                let end = unsafe { talc.extend(end, new as *mut u8) };
                if end.as_ptr() as usize <= old {
                    return Err(());
                }
                talc.source.end = Some(end.as_ptr() as usize);
            }
        }
        Ok(())
    }
}

/// The allocator type: talc behind a spin lock, fed by the arena.
pub type Arena = talc::TalcLock<spin::mutex::SpinMutex<()>, ArenaSource>;

/// The process's allocator.
#[global_allocator]
pub static ARENA: Arena = Arena::new(ArenaSource { end: None });

/// What the allocator holds, for reports (`ps`, the probe's checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes of arena the heap spans (claimed from `ARENA_BASE` upwards, rounded to pages):
    /// the most the arena can have mapped on the allocator's behalf.
    pub arena: u64,
    /// Live allocations.
    pub allocations: u64,
}

/// The allocator's figures now.
pub fn usage() -> Usage {
    let talc = ARENA.lock();
    let c = talc.counters();
    let arena = talc.source.end.map_or(0, |e| e as u64 - ARENA_BASE);
    Usage {
        allocated: c.allocated_bytes as u64,
        arena: arena.next_multiple_of(PAGE_SIZE),
        allocations: c.allocation_count as u64,
    }
}

/// Bytes of arena the heap spans (see [`Usage::arena`]).
pub fn used() -> u64 {
    usage().arena
}
