//! Channels, processes and waiting: safe wrappers over the system calls that take handles.
use crate::Handle;
use abi::Error;
use abi::syscall::{SpawnRequest, Sys, WaitItem};

#[inline]
fn call(n: Sys, a: [u64; 6]) -> Result<u64, Error> {
    crate::syscall6(n as u64, a)
}

/// Creates a channel; both endpoints carry send, receive and transfer rights.
pub fn channel_create() -> Result<(Handle, Handle), Error> {
    let v = call(Sys::ChannelCreate, [0; 6])?;
    Ok((Handle(v as u32), Handle((v >> 32) as u32)))
}

/// Releases a handle.
pub fn close(h: Handle) -> Result<(), Error> {
    call(Sys::Close, [h.0 as u64, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Sends `bytes` and moves `handles` to the peer; never blocks (`Full` when there is no room).
#[inline]
pub fn send(h: Handle, bytes: &[u8], handles: &[Handle]) -> Result<(), Error> {
    call(
        Sys::Send,
        [
            h.0 as u64,
            bytes.as_ptr() as u64,
            bytes.len() as u64,
            handles.as_ptr() as u64,
            handles.len() as u64,
            0,
        ],
    )
    .map(|_| ())
}

/// Sends with raw pointers (for tests of the kernel's checks).
pub fn send_raw(h: u64, ptr: u64, len: u64, hptr: u64, hcount: u64) -> Result<(), Error> {
    call(Sys::Send, [h, ptr, len, hptr, hcount, 0]).map(|_| ())
}

/// Receives the oldest message into `buf` and `handles`; returns (bytes, handle count).
/// `deadline` is `DEADLINE_NOW` (do not block) or `DEADLINE_NEVER`.
#[inline]
pub fn recv(
    h: Handle,
    buf: &mut [u8],
    handles: &mut [Handle],
    deadline: u64,
) -> Result<(usize, usize), Error> {
    let v = call(
        Sys::Recv,
        [
            h.0 as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            handles.as_mut_ptr() as u64,
            handles.len() as u64,
            deadline,
        ],
    )?;
    Ok(((v & 0xffff_ffff) as usize, (v >> 32) as usize))
}

/// Sends `bytes` on `h`, then receives the next message on `h` into `buf`, in one system call;
/// returns the received length. The client's call and the server's reply-and-wait: when the
/// peer is waiting on the same core, the core passes straight to it. A send error returns at
/// once (nothing is received); a message carrying handles stays queued (`TooBig`: use
/// [`recv`]).
#[inline]
pub fn send_recv(h: Handle, bytes: &[u8], buf: &mut [u8], deadline: u64) -> Result<usize, Error> {
    call(
        Sys::SendRecv,
        [
            h.0 as u64,
            bytes.as_ptr() as u64,
            bytes.len() as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            deadline,
        ],
    )
    .map(|n| n as usize)
}

/// Waits until one item's handle shows one of its wanted signals; returns its index and fills
/// in every item's observed signals.
pub fn wait(items: &mut [WaitItem], deadline: u64) -> Result<usize, Error> {
    call(
        Sys::Wait,
        [
            items.as_mut_ptr() as u64,
            items.len() as u64,
            deadline,
            0,
            0,
            0,
        ],
    )
    .map(|i| i as usize)
}

/// Spawns `path` with `arg`, moving `handles` to the child; returns the parent's end of the
/// child's parent channel and a process handle with the kill right.
pub fn spawn(path: &str, arg: u64, handles: &[Handle]) -> Result<(Handle, Handle), Error> {
    spawn_with_ceiling(path, arg, handles, 16 << 20)
}

/// Spawns like [`spawn`] with an arena ceiling of `ceiling` bytes.
pub fn spawn_with_ceiling(
    path: &str,
    arg: u64,
    handles: &[Handle],
    ceiling: u64,
) -> Result<(Handle, Handle), Error> {
    spawn_with_limits(path, arg, handles, ceiling, 0, 0)
}

/// Spawns like [`spawn_with_ceiling`], also limiting the child's thread records and its
/// kernel-stack budget in pages (0: the defaults, which are also the maxima; see
/// `abi::thread`).
pub fn spawn_with_limits(
    path: &str,
    arg: u64,
    handles: &[Handle],
    ceiling: u64,
    thread_limit: u64,
    kernel_stack_pages: u64,
) -> Result<(Handle, Handle), Error> {
    let req = SpawnRequest {
        path: path.as_ptr() as u64,
        path_len: path.len() as u64,
        arg,
        handles: handles.as_ptr() as u64,
        handle_count: handles.len() as u64,
        arena_ceiling: ceiling,
        stack_size: 64 << 10,
        priority: 0,
        thread_limit,
        kernel_stack_pages,
    };
    let v = call(
        Sys::Spawn,
        [&req as *const SpawnRequest as u64, 0, 0, 0, 0, 0],
    )?;
    Ok((Handle(v as u32), Handle((v >> 32) as u32)))
}

/// Ends the process a handle with the kill right names.
pub fn kill(process: Handle) -> Result<(), Error> {
    call(Sys::Kill, [process.0 as u64, 0, 0, 0, 0, 0]).map(|_| ())
}
