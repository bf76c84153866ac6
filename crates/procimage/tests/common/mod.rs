//! Shared by the image tests: a rich fixture (a tree of three processes whose inputs the tests
//! keep, so a parsed image can be compared with them field by field), and byte-level helpers
//! that read the section table and repair the CRCs after an edit, so an edit reaches the check
//! behind them.
#![allow(dead_code)]

use abi::Rights;
use abi::layout::{ARENA_BASE, MODULE_BASE, MODULE_MAX_SIZE, STACK_SLOT, STACKS_BASE};
use procimage::*;

/// A queued message, owned.
pub struct Msg {
    pub channel: u64,
    pub side: u8,
    pub receiver: Receiver,
    pub bytes: Vec<u8>,
    pub handles: Vec<ObjectRef>,
}

/// One process of a fixture, owned.
pub struct Proc {
    pub record: ProcessRecord<'static>,
    pub module: ModuleRef<'static>,
    pub threads: Vec<ThreadRecord>,
    pub handles: Vec<HandleRecord>,
    pub messages: Vec<Msg>,
    pub arena: Vec<(u64, Box<[u8; PAGE]>)>,
    pub stacks: Vec<(u64, Box<[u8; PAGE]>)>,
    pub data: Vec<(u64, Box<[u8; PAGE]>)>,
}

/// Builds an image of `procs` (a tree when `tree`), with optional sections `extra`.
pub fn build(
    tree: bool,
    procs: &[Proc],
    extra: &[(u16, u16, &[u8])],
) -> Result<Vec<u8>, BuildError> {
    build_then(tree, procs, extra, |b| b.build())
}

/// [`build`], finished by `finish` instead of [`ImageBuilder::build`].
pub fn build_then(
    tree: bool,
    procs: &[Proc],
    extra: &[(u16, u16, &[u8])],
    finish: impl FnOnce(&ImageBuilder) -> Result<Vec<u8>, BuildError>,
) -> Result<Vec<u8>, BuildError> {
    let messages: Vec<Vec<Message<'_>>> = procs
        .iter()
        .map(|p| {
            p.messages
                .iter()
                .map(|m| Message {
                    channel: m.channel,
                    side: m.side,
                    receiver: m.receiver,
                    bytes: &m.bytes,
                    handles: &m.handles,
                })
                .collect()
        })
        .collect();
    let arenas: Vec<Vec<Page<'_>>> = procs.iter().map(|p| pages(&p.arena)).collect();
    let stacks: Vec<Vec<Page<'_>>> = procs.iter().map(|p| pages(&p.stacks)).collect();
    let data: Vec<Vec<Page<'_>>> = procs.iter().map(|p| pages(&p.data)).collect();
    let mut b = if tree {
        ImageBuilder::tree()
    } else {
        ImageBuilder::new()
    };
    for (i, p) in procs.iter().enumerate() {
        b.add(ProcessParts {
            record: p.record,
            module: p.module,
            threads: &p.threads,
            handles: &p.handles,
            messages: &messages[i],
            arena: &arenas[i],
            stacks: &stacks[i],
            data: &data[i],
        })?;
    }
    for &(process, kind, bytes) in extra {
        b.add_optional(process, kind, bytes)?;
    }
    finish(&b)
}

fn pages(v: &[(u64, Box<[u8; PAGE]>)]) -> Vec<Page<'_>> {
    v.iter().map(|(va, b)| Page { va: *va, bytes: b }).collect()
}

pub fn page(seed: u64) -> Box<[u8; PAGE]> {
    let mut p = Box::new([0u8; PAGE]);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in p.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    p
}

pub fn thread(tid: u64, state: ThreadState, seed: u64) -> ThreadRecord {
    let mut r = [0u64; 18];
    for (i, v) in r.iter_mut().enumerate() {
        *v = seed
            .wrapping_mul(0x0101_0101_0101)
            .wrapping_add(i as u64 * 0x11);
    }
    let mut fxsave = [0u8; 512];
    for (i, b) in fxsave.iter_mut().enumerate() {
        *b = (i as u64 ^ seed) as u8;
    }
    ThreadRecord {
        tid,
        generation: seed as u32 ^ 0xabcd,
        state,
        core: (seed % 4) as u32,
        cpu_ns: seed.wrapping_mul(7_777),
        regs: Registers::from_array(r),
        fs_base: ARENA_BASE.wrapping_add(seed.wrapping_mul(0x40)),
        gs_base: seed,
        fxsave,
    }
}

pub fn ep(channel: u64, side: u8, link: Link) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::Endpoint,
        rights: Rights::CHANNEL_ALL.0,
        id: channel,
        side,
        link,
    }
}

/// A thread spawner (`id` 0) or thread (`id` its tid) object.
pub fn th(kind: ObjectKind, id: u64, link: Link) -> ObjectRef {
    ObjectRef {
        kind,
        rights: 0,
        id,
        side: 0,
        link,
    }
}

pub fn h(index: u16, object: ObjectRef) -> HandleRecord {
    HandleRecord {
        index,
        generation: index ^ 0x55,
        object,
    }
}

pub fn to(process: u16, index: u16) -> Link {
    Link::Handle { process, index }
}

pub fn rec(pid: u64, parent: Option<u16>, name: &'static str) -> ProcessRecord<'static> {
    ProcessRecord {
        pid,
        parent_pid: if parent.is_some() { 100 } else { 1 },
        parent,
        name,
        thread_limit: 4 + (pid % 3) as u32,
        arena_base: ARENA_BASE,
        arena_ceiling: 64 << 20,
        stack_low: STACKS_BASE,
        stack_high: STACKS_BASE + 8 * STACK_SLOT,
        priority: pid % 5,
        core: (pid % 2) as u32,
        kernel_stack_pages: 16 + (pid % 5) as u32,
        cpu_ns: pid * 1_000_000 + 17,
    }
}

pub fn module(path: &'static str) -> ModuleRef<'static> {
    ModuleRef {
        path,
        hash: module_hash(path.as_bytes()),
        load_base: MODULE_BASE,
    }
}

fn on(index: u16) -> Receiver {
    Receiver::Handle { index }
}

/// A tree of three processes: root 0 with two children; several threads each; handles of
/// every kind and every link kind; messages on several endpoints, one carrying an endpoint
/// whose peer is a handle of the root, and one queued for that carried endpoint; thread
/// spawners and live and ended threads; sparse arena, stack and module data pages.
pub fn rich() -> Vec<Proc> {
    let p0 = Proc {
        record: rec(100, None, "supervisor"),
        module: module("/sbin/super"),
        threads: vec![
            thread(1, ThreadState::Runnable, 1),
            thread(2, ThreadState::Blocked, 2),
            thread(9, ThreadState::Runnable, 3),
        ],
        handles: vec![
            h(0, ep(1000, 1, Link::None)),
            h(1, ep(2000, 0, to(1, 0))),
            h(2, ep(2001, 0, to(2, 0))),
            h(
                3,
                ObjectRef {
                    kind: ObjectKind::Process,
                    rights: (Rights::KILL.0 | Rights::SUSPEND.0),
                    id: 101,
                    side: 0,
                    link: Link::Process { index: 1 },
                },
            ),
            h(
                4,
                ep(
                    3000,
                    0,
                    Link::Carried {
                        process: 1,
                        message: 1,
                        slot: 1,
                    },
                ),
            ),
            h(
                6,
                ObjectRef {
                    kind: ObjectKind::System,
                    rights: Rights::INSPECT.0,
                    id: 0,
                    side: 0,
                    link: Link::None,
                },
            ),
            h(
                7,
                ObjectRef {
                    kind: ObjectKind::Process,
                    rights: Rights::KILL.0,
                    id: 55,
                    side: 0,
                    link: Link::None,
                },
            ),
            h(1023, ep(7000, 0, Link::PeerClosed)),
        ],
        messages: vec![
            Msg {
                channel: 1000,
                side: 1,
                receiver: on(0),
                bytes: b"from init".to_vec(),
                handles: vec![],
            },
            Msg {
                channel: 2000,
                side: 0,
                receiver: on(1),
                bytes: vec![],
                handles: vec![],
            },
            Msg {
                channel: 2000,
                side: 0,
                receiver: on(1),
                bytes: (0..=255).collect(),
                handles: vec![],
            },
        ],
        arena: vec![
            (ARENA_BASE, page(1)),
            (ARENA_BASE + 0x3000, page(2)),
            (ARENA_BASE + (64 << 20) - 0x1000, page(3)),
        ],
        stacks: vec![(STACKS_BASE + STACK_SLOT - 0x1000, page(4))],
        data: vec![
            (MODULE_BASE + 0x2000, page(8)),
            (MODULE_BASE + 0x4000, page(9)),
        ],
    };
    let p1 = Proc {
        record: rec(101, Some(0), "worker-1"),
        module: module("/bin/worker"),
        threads: vec![thread(4, ThreadState::Blocked, 4)],
        handles: vec![
            h(0, ep(2000, 1, to(0, 1))),
            h(1, ep(4000, 0, to(2, 3))),
            h(
                2,
                ObjectRef {
                    kind: ObjectKind::Console,
                    rights: Rights::CONSOLE_ALL.0,
                    id: 0,
                    side: 0,
                    link: Link::None,
                },
            ),
        ],
        messages: vec![
            Msg {
                channel: 2000,
                side: 1,
                receiver: on(0),
                bytes: b"job 1".to_vec(),
                handles: vec![],
            },
            Msg {
                channel: 2000,
                side: 1,
                receiver: on(0),
                bytes: b"two endpoints for you".to_vec(),
                handles: vec![
                    ep(
                        5000,
                        0,
                        Link::Carried {
                            process: 1,
                            message: 1,
                            slot: 2,
                        },
                    ),
                    ep(3000, 1, to(0, 4)),
                    ep(
                        5000,
                        1,
                        Link::Carried {
                            process: 1,
                            message: 1,
                            slot: 0,
                        },
                    ),
                ],
            },
            Msg {
                channel: 3000,
                side: 1,
                receiver: Receiver::Carried {
                    message: 1,
                    slot: 1,
                },
                bytes: b"queued for an endpoint in transit".to_vec(),
                handles: vec![],
            },
        ],
        arena: vec![],
        stacks: vec![],
        data: vec![],
    };
    let p2 = Proc {
        record: rec(102, Some(0), "worker-2"),
        module: module("/bin/worker"),
        threads: vec![
            thread(5, ThreadState::Runnable, 5),
            thread(6, ThreadState::Runnable, 6),
        ],
        handles: vec![
            h(0, ep(2001, 1, to(0, 2))),
            h(3, ep(4000, 1, to(1, 1))),
            h(
                4,
                ObjectRef {
                    kind: ObjectKind::Device,
                    rights: Rights::DEVICE_ALL.0,
                    id: 0x0018,
                    side: 0,
                    link: Link::None,
                },
            ),
            h(5, th(ObjectKind::ThreadSpawner, 0, Link::None)),
            h(6, th(ObjectKind::Thread, 6, Link::None)),
            h(7, th(ObjectKind::Thread, 7, Link::Ended { code: i64::MIN })),
            h(8, th(ObjectKind::Thread, 9, Link::Ended { code: 3 })),
        ],
        messages: vec![Msg {
            channel: 4000,
            side: 1,
            receiver: on(3),
            bytes: vec![7; 65536],
            handles: vec![],
        }],
        arena: vec![(ARENA_BASE + 0x10_0000, page(5))],
        stacks: vec![
            (STACKS_BASE + 3 * STACK_SLOT - 0x2000, page(6)),
            (STACKS_BASE + 3 * STACK_SLOT - 0x1000, page(7)),
        ],
        data: vec![
            (MODULE_BASE + MODULE_MAX_SIZE - 0x2000, page(11)),
            (MODULE_BASE + MODULE_MAX_SIZE - 0x1000, page(10)),
        ],
    };
    vec![p0, p1, p2]
}

/// A small single process: one thread, the parent channel, nothing else.
pub fn minimal() -> Vec<Proc> {
    vec![Proc {
        record: rec(5, None, "p"),
        module: module("/bin/p"),
        threads: vec![thread(1, ThreadState::Runnable, 1)],
        handles: vec![h(0, ep(1, 0, Link::None))],
        messages: vec![],
        arena: vec![],
        stacks: vec![],
        data: vec![],
    }]
}

pub fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

pub fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn rd64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn wr64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A table entry as stored.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub index: usize,
    pub at: usize,
    pub kind: u16,
    pub process: u16,
    pub offset: usize,
    pub length: usize,
}

/// The table entries of a well-formed image.
pub fn entries(b: &[u8]) -> Vec<Entry> {
    let n = rd32(b, 12) as usize;
    (0..n)
        .map(|i| {
            let at = HEADER_LEN + i * ENTRY_LEN;
            Entry {
                index: i,
                at,
                kind: rd16(b, at),
                process: rd16(b, at + 2),
                offset: rd64(b, at + 8) as usize,
                length: rd64(b, at + 16) as usize,
            }
        })
        .collect()
}

/// The entry of `kind` for `process`.
pub fn section(b: &[u8], process: u16, kind: SectionKind) -> Entry {
    entries(b)
        .into_iter()
        .find(|e| e.process == process && e.kind == kind as u16)
        .unwrap_or_else(|| panic!("no {kind:?} section for process {process}"))
}

/// Recomputes every CRC that can be computed: each section's whose entry lies inside the
/// buffer and points inside it, the table's, the header's. Leaves everything else alone, so
/// the parser reaches the first check that is not a CRC.
pub fn repair(b: &mut [u8]) {
    if b.len() < HEADER_LEN {
        return;
    }
    let n = rd32(b, 12) as usize;
    let table_end = HEADER_LEN.saturating_add(n.saturating_mul(ENTRY_LEN));
    if table_end <= b.len() {
        for i in 0..n {
            let at = HEADER_LEN + i * ENTRY_LEN;
            let off = rd64(b, at + 8);
            let len = rd64(b, at + 16);
            if let Some(end) = off.checked_add(len)
                && end <= b.len() as u64
            {
                let crc = procimage::checksum::crc32c(&b[off as usize..end as usize]);
                wr32(b, at + 24, crc);
            }
        }
        let crc = procimage::checksum::crc32c(&b[HEADER_LEN..table_end]);
        wr32(b, 28, crc);
    }
    let crc = procimage::checksum::crc32c(&b[..60]);
    wr32(b, 60, crc);
}
