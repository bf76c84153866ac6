//! `virtio-drivers` on moxie: the glue between that crate and a driver's device handle.
//!
//! - [`hal`]: its `Hal` trait over `dma_alloc`/`dma_free` and the BARs `map_bar` mapped, with
//!   bounce buffers for memory outside the DMA window;
//! - [`pci`]: its PCI `ConfigurationAccess` over `config_read`/`config_write`, which emulates
//!   BAR sizing (the kernel never lets a driver write a BAR);
//! - [`block`]: a virtio-blk device that waits for completions on its interrupt channel.
//!
//! This crate is the one place in the user programs where `unsafe` is allowed for a driver:
//! `virtio-drivers` declares `Hal` an `unsafe trait` with `unsafe fn`s, its non-blocking block
//! requests are `unsafe fn`s (the buffers must outlive the request), and routing a queue's
//! interrupt is a write to device memory. Each use says why it is sound; programs on top of it,
//! like `user/blk`, are safe Rust.
#![no_std]

pub mod block;
pub mod hal;
pub mod pci;

pub use block::Block;
