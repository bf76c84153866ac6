//! Sample images for tools and tests that have no kernel at hand (`cargo xtask image
//! make-sample`, the tool's tests, this crate's tests): a tree of three processes with several
//! threads, every kind of handle link (a thread spawner, a live and an ended thread among
//! them), queued messages (one carrying an endpoint), sparse arena and stack pages and the
//! module's writable pages, and a single process. The contents are fixed, so the bytes are too.
// Fixed data with constant indexes and offsets: nothing here depends on input.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
use crate::records::{
    HandleRecord, Link, ModuleRef, ObjectKind, ObjectRef, Page, ProcessRecord, Receiver, Registers,
    ThreadRecord, ThreadState,
};
use crate::{ImageBuilder, Message, PAGE, ProcessParts, module_hash};
use abi::Rights;
use abi::layout::{ARENA_BASE, MODULE_BASE, STACK_SLOT, STACKS_BASE};
use alloc::vec;
use alloc::vec::Vec;

/// The bytes the sample's module reference hashes (a stand-in for an ELF file).
pub const MODULE_BYTES: &[u8] = b"\x7fELF a stand-in for /bin/probe";

/// A page filled with a pattern derived from `seed`.
fn page(seed: u8) -> [u8; PAGE] {
    let mut p = [0u8; PAGE];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    p
}

fn thread(tid: u64, state: ThreadState, seed: u64) -> ThreadRecord {
    let mut regs = [0u64; 18];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = seed.wrapping_mul(0x1000).wrapping_add(i as u64);
    }
    let mut regs = Registers::from_array(regs);
    regs.rip = 0x40_1000u64.wrapping_add(seed.wrapping_mul(0x10));
    regs.rsp = STACKS_BASE
        .wrapping_add(STACK_SLOT.wrapping_mul(seed))
        .wrapping_add(STACK_SLOT)
        .wrapping_sub(0x88);
    regs.rflags = 0x202;
    let mut fxsave = [0u8; 512];
    // FCW and MXCSR at their reset values, one recognisable XMM register.
    fxsave[0] = 0x7f;
    fxsave[1] = 0x03;
    fxsave[24] = 0x80;
    fxsave[25] = 0x1f;
    for (i, b) in fxsave[160..176].iter_mut().enumerate() {
        *b = (seed as u8).wrapping_add(i as u8);
    }
    ThreadRecord {
        tid,
        generation: (seed as u32).wrapping_add(1),
        state,
        core: (seed % 2) as u32,
        cpu_ns: seed.wrapping_mul(1_000_003),
        regs,
        fs_base: ARENA_BASE.wrapping_add(0x100 * seed),
        gs_base: 0,
        fxsave,
    }
}

fn endpoint(channel: u64, side: u8, link: Link) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::Endpoint,
        rights: Rights::CHANNEL_ALL.0,
        id: channel,
        side,
        link,
    }
}

/// A thread spawner or thread object (they carry no rights).
fn thread_object(kind: ObjectKind, id: u64, link: Link) -> ObjectRef {
    ObjectRef {
        kind,
        rights: 0,
        id,
        side: 0,
        link,
    }
}

fn slot(index: u16, object: ObjectRef) -> HandleRecord {
    HandleRecord {
        index,
        generation: index.wrapping_mul(3),
        object,
    }
}

fn record(
    pid: u64,
    parent_pid: u64,
    parent: Option<u16>,
    name: &str,
    cpu_ns: u64,
) -> ProcessRecord<'_> {
    ProcessRecord {
        pid,
        parent_pid,
        parent,
        name,
        thread_limit: abi::thread::THREAD_LIMIT as u32,
        arena_base: ARENA_BASE,
        arena_ceiling: 16 << 20,
        stack_low: STACKS_BASE,
        stack_high: STACKS_BASE + 4 * STACK_SLOT,
        priority: pid % 3,
        core: (pid % 2) as u32,
        kernel_stack_pages: abi::thread::KERNEL_STACK_BUDGET as u32,
        cpu_ns,
    }
}

/// A tree of three processes: a supervisor (index 0) and two workers. Among its handles are
/// the parent channels inside the tree, a channel between the workers, an endpoint whose
/// peer is outside, one whose peer is closed, a process handle naming a worker, a console
/// handle, an endpoint whose peer travels in a message queued for worker 1, and the
/// supervisor's thread spawner with a handle to its live thread 11 and one to a thread that
/// ended with exit code -2. The supervisor has two pages of module data.
pub fn tree() -> Vec<u8> {
    let hash = module_hash(MODULE_BYTES);
    let module = ModuleRef {
        path: "/bin/probe",
        hash,
        load_base: MODULE_BASE,
    };
    let pages: Vec<[u8; PAGE]> = (0..8).map(page).collect();
    let arena0 = [
        Page {
            va: ARENA_BASE,
            bytes: &pages[0],
        },
        Page {
            va: ARENA_BASE + 0x1000,
            bytes: &pages[1],
        },
        Page {
            va: ARENA_BASE + 0x5000,
            bytes: &pages[2],
        },
    ];
    let stacks0 = [
        Page {
            va: STACKS_BASE + STACK_SLOT - 0x1000,
            bytes: &pages[3],
        },
        Page {
            va: STACKS_BASE + 2 * STACK_SLOT - 0x1000,
            bytes: &pages[4],
        },
    ];
    let arena2 = [Page {
        va: ARENA_BASE + 0x2000,
        bytes: &pages[5],
    }];
    // The module's .data page and a .bss page after a gap.
    let data0 = [
        Page {
            va: MODULE_BASE + 0x3000,
            bytes: &pages[6],
        },
        Page {
            va: MODULE_BASE + 0x5000,
            bytes: &pages[7],
        },
    ];
    let threads0 = [
        thread(10, ThreadState::Runnable, 0),
        thread(11, ThreadState::Blocked, 1),
    ];
    let threads1 = [thread(20, ThreadState::Blocked, 2)];
    let threads2 = [
        thread(30, ThreadState::Runnable, 3),
        thread(31, ThreadState::Runnable, 4),
        thread(32, ThreadState::Blocked, 5),
    ];
    let handles0 = [
        slot(0, endpoint(100, 1, Link::None)),
        slot(
            1,
            endpoint(
                200,
                0,
                Link::Handle {
                    process: 1,
                    index: 0,
                },
            ),
        ),
        slot(
            2,
            endpoint(
                201,
                0,
                Link::Handle {
                    process: 2,
                    index: 0,
                },
            ),
        ),
        slot(
            3,
            ObjectRef {
                kind: ObjectKind::Process,
                rights: Rights::KILL.0 | Rights::SUSPEND.0,
                id: 8,
                side: 0,
                link: Link::Process { index: 1 },
            },
        ),
        slot(
            4,
            endpoint(
                300,
                0,
                Link::Carried {
                    process: 1,
                    message: 1,
                    slot: 0,
                },
            ),
        ),
        slot(5, thread_object(ObjectKind::ThreadSpawner, 0, Link::None)),
        slot(6, thread_object(ObjectKind::Thread, 11, Link::None)),
        slot(
            7,
            thread_object(ObjectKind::Thread, 12, Link::Ended { code: -2 }),
        ),
    ];
    let handles1 = [
        slot(
            0,
            endpoint(
                200,
                1,
                Link::Handle {
                    process: 0,
                    index: 1,
                },
            ),
        ),
        slot(
            1,
            endpoint(
                400,
                0,
                Link::Handle {
                    process: 2,
                    index: 1,
                },
            ),
        ),
        slot(
            2,
            ObjectRef {
                kind: ObjectKind::Console,
                rights: Rights::SEND.0,
                id: 0,
                side: 0,
                link: Link::None,
            },
        ),
    ];
    let handles2 = [
        slot(
            0,
            endpoint(
                201,
                1,
                Link::Handle {
                    process: 0,
                    index: 2,
                },
            ),
        ),
        slot(
            1,
            endpoint(
                400,
                1,
                Link::Handle {
                    process: 1,
                    index: 1,
                },
            ),
        ),
        slot(2, endpoint(500, 0, Link::PeerClosed)),
        slot(5, endpoint(600, 1, Link::None)),
    ];
    let carried = [endpoint(
        300,
        1,
        Link::Handle {
            process: 0,
            index: 4,
        },
    )];
    let on = |index| Receiver::Handle { index };
    let messages0 = [
        Message {
            channel: 100,
            side: 1,
            receiver: on(0),
            bytes: b"MXSVC?fs",
            handles: &[],
        },
        Message {
            channel: 200,
            side: 0,
            receiver: on(1),
            bytes: b"ready",
            handles: &[],
        },
        Message {
            channel: 200,
            side: 0,
            receiver: on(1),
            bytes: b"status 42",
            handles: &[],
        },
    ];
    let messages1 = [
        Message {
            channel: 200,
            side: 1,
            receiver: on(0),
            bytes: b"work item 1",
            handles: &[],
        },
        Message {
            channel: 200,
            side: 1,
            receiver: on(0),
            bytes: b"here is a channel",
            handles: &carried,
        },
    ];
    let big = vec![0xa5u8; 3000];
    let messages2 = [Message {
        channel: 400,
        side: 1,
        receiver: on(1),
        bytes: &big,
        handles: &[],
    }];
    let mut b = ImageBuilder::tree();
    let parts = [
        ProcessParts {
            record: record(7, 1, None, "supervisor", 1_234_567),
            module,
            threads: &threads0,
            handles: &handles0,
            messages: &messages0,
            arena: &arena0,
            stacks: &stacks0,
            data: &data0,
        },
        ProcessParts {
            record: record(8, 7, Some(0), "worker-a", 55_000),
            module,
            threads: &threads1,
            handles: &handles1,
            messages: &messages1,
            arena: &[],
            stacks: &[],
            data: &[],
        },
        ProcessParts {
            record: record(9, 7, Some(0), "worker-b", 987_654_321),
            module,
            threads: &threads2,
            handles: &handles2,
            messages: &messages2,
            arena: &arena2,
            stacks: &[],
            data: &[],
        },
    ];
    for p in parts {
        // Three processes always fit.
        let _ = b.add(p);
    }
    b.build().unwrap_or_default()
}

/// One process with one thread, its parent channel (peer outside), one arena page and one
/// page of module data.
pub fn single() -> Vec<u8> {
    let p = page(9);
    let arena = [Page {
        va: ARENA_BASE,
        bytes: &p,
    }];
    let d = page(10);
    let data = [Page {
        va: MODULE_BASE + 0x2000,
        bytes: &d,
    }];
    let threads = [thread(1, ThreadState::Runnable, 0)];
    let handles = [slot(0, endpoint(42, 1, Link::None))];
    let mut b = ImageBuilder::new();
    let _ = b.add(ProcessParts {
        record: record(3, 1, None, "probe", 1000),
        module: ModuleRef {
            path: "/bin/probe",
            hash: module_hash(MODULE_BYTES),
            load_base: MODULE_BASE,
        },
        threads: &threads,
        handles: &handles,
        messages: &[],
        arena: &arena,
        stacks: &[],
        data: &data,
    });
    b.build().unwrap_or_default()
}
