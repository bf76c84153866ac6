//! Memory management policy: the kernel heap's setup. The mechanisms (page tables, the direct
//! map, the global frame allocator that mints `Frame` ownership) are in `arch`.
pub mod heap;
