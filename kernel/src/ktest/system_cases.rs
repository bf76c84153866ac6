//! In-kernel tests of the system services: the system and console handles' calls and their
//! refusals, and the user runtime's allocator reusing freed memory.
use crate::ensure;
use crate::ipc::Object;
use crate::process::{self, Death, SpawnOptions};
use abi::Rights;
use alloc::format;
use alloc::string::String;

const PROBE: &str = "bin/probe";

pub fn system_handle_calls_and_refusals() -> Result<(), String> {
    let gifts = alloc::vec![
        (
            Object::System(Rights::NONE),
            Rights::INSPECT.union(Rights::TRANSFER)
        ),
        (Object::Console(Rights::NONE), Rights::SEND),
        (Object::System(Rights::NONE), Rights::KILL),
    ];
    let (pid, _end) = process::spawn_watched(PROBE, 35, SpawnOptions::default(), gifts)
        .map_err(|(e, _)| format!("spawn: {e}"))?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "system probe ended with {d:?} (Exit(n): check n failed; see user/probe)"
    );
    Ok(())
}

pub fn allocator_reuses_freed_memory() -> Result<(), String> {
    // A 4 MiB arena: 100,000 allocations of up to 64 KiB fit only if freed blocks are reused.
    let opts = SpawnOptions {
        arena_ceiling: 4 << 20,
        ..SpawnOptions::default()
    };
    let pid = process::spawn(PROBE, 34, opts).map_err(|e| format!("spawn: {e}"))?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "allocation churn under a 4 MiB arena ended with {d:?} (Exit(1): a block was \
         corrupted; Exit(2): the heap grew past 3 MiB; Exit(3): blocks still counted live)"
    );
    Ok(())
}
