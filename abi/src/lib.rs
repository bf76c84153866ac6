//! The moxie ABI: constants and types shared by the boot stub, the kernel core and user code.
//!
//! Everything here is plain data. Values are fixed by design (see `docs/decisions.md`): a process
//! image resumes at the same virtual addresses on any core or node, so the layout cannot vary.
#![no_std]
#![forbid(unsafe_code)]

pub mod device;
pub mod error;
pub mod handle;
pub mod layout;
pub mod limits;
pub mod portal;
pub mod qemu;
pub mod suspend;
pub mod syscall;
pub mod system;
pub mod thread;

pub use error::Error;
pub use handle::{Handle, Rights};
