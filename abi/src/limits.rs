//! Sizes and limits shared by the kernel and user code.

/// Largest message payload, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most handles one message can move.
pub const MAX_MESSAGE_HANDLES: usize = 8;
/// Messages one endpoint's receive buffer holds at most.
pub const CHANNEL_MAX_MESSAGES: usize = 128;
/// Bytes one endpoint's receive buffer holds at most (payloads only).
pub const CHANNEL_MAX_BYTES: usize = 256 * 1024;
/// Most handles one process holds.
pub const MAX_HANDLES: usize = 1024;
/// Channel buffer bytes one process may have queued at once (its sends not yet received),
/// charged to its resource ledger; past it a send is `Overloaded`.
pub const LEDGER_CHANNEL_BYTES: usize = 1024 * 1024;
/// Most pages one `dma_alloc` call hands out (physically contiguous).
pub const MAX_DMA_PAGES: u64 = 64;
/// DMA memory one process may hold at once, charged to its resource ledger; past it
/// `dma_alloc` is `Overloaded`.
pub const LEDGER_DMA_BYTES: u64 = 4 << 20;
