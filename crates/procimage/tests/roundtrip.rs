//! Round trips: what the builder writes, the parser gives back field for field — a tree of
//! three processes with several threads, every kind of handle and link (thread spawners, live
//! and ended threads among them), queued messages (one carrying endpoints, one queued for an
//! endpoint in transit), sparse arena, stack and module data pages — plus the samples,
//! optional sections, the builder's own refusals, and random valid trees (proptest).
mod common;

use common::*;
use procimage::*;
use proptest::prelude::*;

/// Compares a parsed image with the inputs it was built from.
fn assert_matches(img: &Image<'_>, procs: &[Proc]) {
    assert_eq!(usize::from(img.process_count()), procs.len());
    for (i, want) in procs.iter().enumerate() {
        let p = img.process(i as u16).expect("process");
        assert_eq!(p.index(), i as u16);
        assert_eq!(p.record(), want.record);
        assert_eq!(p.module(), want.module);
        assert_eq!(p.threads().len(), want.threads.len());
        assert_eq!(p.threads().collect::<Vec<_>>(), want.threads);
        assert_eq!(p.handles().collect::<Vec<_>>(), want.handles);
        for hr in &want.handles {
            assert_eq!(p.handle(hr.index), Some(*hr));
        }
        assert_eq!(
            p.handle(1022),
            want.handles.iter().find(|h| h.index == 1022).copied()
        );
        let msgs: Vec<_> = p.messages().collect();
        assert_eq!(msgs.len(), want.messages.len());
        for (j, (got, m)) in msgs.iter().zip(&want.messages).enumerate() {
            assert_eq!(got.channel, m.channel);
            assert_eq!(got.side, m.side);
            assert_eq!(got.receiver, m.receiver);
            assert_eq!(got.bytes, &m.bytes[..]);
            assert_eq!(got.handle_count(), m.handles.len());
            assert_eq!(got.handles().collect::<Vec<_>>(), m.handles);
            let again = p.message(j as u32).expect("message by index");
            assert_eq!(again.bytes, got.bytes);
        }
        assert!(p.message(want.messages.len() as u32).is_none());
        let pages = |it: Pages<'_>| it.map(|pg| (pg.va, pg.bytes.to_vec())).collect::<Vec<_>>();
        let want_pages = |v: &[(u64, Box<[u8; PAGE]>)]| {
            v.iter()
                .map(|(va, b)| (*va, b.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pages(p.arena()), want_pages(&want.arena));
        assert_eq!(pages(p.stacks()), want_pages(&want.stacks));
        assert_eq!(p.data().len(), want.data.len());
        assert_eq!(pages(p.data()), want_pages(&want.data));
    }
    assert!(img.process(procs.len() as u16).is_none());
}

#[test]
fn rich_tree_round_trips() {
    let procs = rich();
    let bytes = build(true, &procs, &[]).expect("builds");
    let img = Image::parse(&bytes).expect("parses");
    assert!(img.is_tree());
    assert_eq!(img.total_len(), bytes.len() as u64);
    assert_eq!(img.header().version, VERSION);
    assert_eq!(img.header().processes, 3);
    assert_matches(&img, &procs);
    // Every section is where the table says, aligned, with a good CRC; the table is sorted.
    let sections: Vec<_> = img.sections().collect();
    assert_eq!(sections.len() as u32, img.header().sections);
    // 3 × (PROCESS MODULE THREADS HANDLES MESSAGES) + ARENA, STACKS and DATA of 0 and 2.
    assert_eq!(sections.len(), 21);
    let data: Vec<_> = sections
        .iter()
        .filter(|s| s.known_kind() == Some(SectionKind::Data))
        .map(|s| (s.process, s.length))
        .collect();
    assert_eq!(data, [(0, 16 + 2 * 4104), (2, 16 + 2 * 4104)]);
    // DATA comes last among a process's sections.
    assert_eq!(sections[20].known_kind(), Some(SectionKind::Data));
    // The spawn limits and the thread objects come back as written.
    let p2 = img.process(2).unwrap();
    // pid 102: limits 4 + 102 % 3 and 16 + 102 % 5.
    assert_eq!(p2.record().thread_limit, 4);
    assert_eq!(p2.record().kernel_stack_pages, 18);
    assert_eq!(
        p2.handle(5).unwrap().object,
        th(ObjectKind::ThreadSpawner, 0, Link::None)
    );
    assert_eq!(p2.handle(6).unwrap().object.link, Link::None);
    assert_eq!(
        p2.handle(7).unwrap().object.link,
        Link::Ended { code: i64::MIN }
    );
    assert_eq!(
        p2.handle(8).unwrap().object,
        th(ObjectKind::Thread, 9, Link::Ended { code: 3 })
    );
    for w in sections.windows(2) {
        assert!((w[0].process, w[0].kind) < (w[1].process, w[1].kind));
        assert!(w[0].offset + w[0].length <= w[1].offset);
    }
    for s in &sections {
        assert_eq!(s.offset % SECTION_ALIGN, 0);
        assert!(s.crc_ok());
        assert_eq!(s.bytes.len() as u64, s.length);
    }
    // Links resolve both ways through object_at.
    let peer = img
        .object_at(Place::Carried {
            process: 1,
            message: 1,
            slot: 1,
        })
        .unwrap();
    assert_eq!(peer.link, to(0, 4));
    assert_eq!(
        img.object_at(Place::Handle {
            process: 0,
            index: 4
        })
        .unwrap()
        .id,
        3000
    );
    assert!(
        img.object_at(Place::Handle {
            process: 0,
            index: 5
        })
        .is_none()
    );
    assert!(
        img.object_at(Place::Carried {
            process: 1,
            message: 9,
            slot: 0
        })
        .is_none()
    );
}

#[test]
fn write_into_a_buffer_matches_build() {
    let procs = minimal();
    let bytes = build(false, &procs, &[]).unwrap();
    let p = &procs[0];
    let mut b = ImageBuilder::new();
    b.add(ProcessParts {
        record: p.record,
        module: p.module,
        threads: &p.threads,
        handles: &p.handles,
        messages: &[],
        arena: &[],
        stacks: &[],
        data: &[],
    })
    .unwrap();
    assert_eq!(b.len().unwrap(), bytes.len() as u64);
    let mut out = vec![0xffu8; bytes.len() + 100];
    assert_eq!(b.write(&mut out).unwrap(), bytes.len());
    assert_eq!(&out[..bytes.len()], &bytes[..]);
    let mut small = vec![0u8; bytes.len() - 1];
    assert_eq!(
        b.write(&mut small),
        Err(BuildError::BufferTooSmall {
            need: bytes.len() as u64,
            have: bytes.len() as u64 - 1
        })
    );
    assert_eq!(ImageBuilder::new().build(), Err(BuildError::Empty));
}

#[test]
fn single_process_image() {
    let procs = minimal();
    let bytes = build(false, &procs, &[]).unwrap();
    let img = Image::parse(&bytes).unwrap();
    assert!(!img.is_tree());
    assert_matches(&img, &procs);
    // Header, 4 entries, PROCESS (80 + 1 → 96), MODULE (48 + 6 → 64), THREADS (720), HANDLES (56 → 64).
    assert_eq!(bytes.len(), 64 + 4 * 32 + 96 + 64 + 720 + 64);
}

#[test]
fn samples_parse() {
    let tree = sample::tree();
    let img = Image::parse(&tree).expect("sample tree parses");
    assert_eq!(img.process_count(), 3);
    assert!(img.is_tree());
    let root = img.process(0).unwrap();
    assert_eq!(root.record().name, "supervisor");
    assert_eq!(root.module().hash, module_hash(sample::MODULE_BYTES));
    assert_eq!(root.threads().len(), 2);
    assert_eq!(root.arena().len(), 3);
    assert_eq!(img.process(1).unwrap().messages().len(), 2);
    // Module data, a spawner, a live thread and an ended one.
    let load = abi::layout::MODULE_BASE;
    let data: Vec<u64> = root.data().map(|p| p.va).collect();
    assert_eq!(data, [load + 0x3000, load + 0x5000]);
    let kinds: Vec<(ObjectKind, u64, Link)> = root
        .handles()
        .map(|h| h.object)
        .filter(|o| matches!(o.kind, ObjectKind::ThreadSpawner | ObjectKind::Thread))
        .map(|o| (o.kind, o.id, o.link))
        .collect();
    assert_eq!(
        kinds,
        [
            (ObjectKind::ThreadSpawner, 0, Link::None),
            (ObjectKind::Thread, 11, Link::None),
            (ObjectKind::Thread, 12, Link::Ended { code: -2 }),
        ]
    );
    assert!(root.threads().any(|t| t.tid == 11));
    assert_eq!(root.record().thread_limit, 16);
    assert_eq!(root.record().kernel_stack_pages, 64);
    let single = sample::single();
    let img = Image::parse(&single).expect("sample single parses");
    assert_eq!(img.process_count(), 1);
    assert!(!img.is_tree());
    assert_eq!(img.process(0).unwrap().data().len(), 1);
}

#[test]
fn optional_sections_are_skipped() {
    let procs = rich();
    let note = b"a later version's notes";
    let bytes = build(
        true,
        &procs,
        &[(1, 0x8001, note), (0, 0xffff, b""), (1, 0x8000, b"x")],
    )
    .unwrap();
    let img = Image::parse(&bytes).unwrap();
    assert_matches(&img, &procs);
    let extra: Vec<_> = img
        .sections()
        .filter(|s| s.known_kind().is_none())
        .collect();
    assert_eq!(extra.len(), 3);
    assert_eq!(
        (extra[0].process, extra[0].kind, extra[0].bytes),
        (0, 0xffff, &b""[..])
    );
    assert_eq!(
        (extra[1].process, extra[1].kind, extra[1].bytes),
        (1, 0x8000, &b"x"[..])
    );
    assert_eq!(
        (extra[2].process, extra[2].kind, extra[2].bytes),
        (1, 0x8001, &note[..])
    );
    assert_eq!(format!("{}", KindName(0x8001)), "optional 0x8001");
    assert_eq!(format!("{}", KindName(6)), "ARENA");
    assert_eq!(format!("{}", KindName(9)), "unknown 0x0009");
    // The builder refuses a kind without the optional bit, and a repeated one.
    let mut b = ImageBuilder::new();
    assert_eq!(
        b.add_optional(0, 3, b""),
        Err(BuildError::OptionalKind { kind: 3 })
    );
    b.add_optional(0, 0x9000, b"").unwrap();
    assert_eq!(
        b.add_optional(0, 0x9000, b""),
        Err(BuildError::OptionalKind { kind: 0x9000 })
    );
}

#[test]
fn builder_refuses_what_the_parser_would() {
    let mut procs = minimal();
    procs[0].threads.clear();
    assert!(matches!(
        build(false, &procs, &[]),
        Err(BuildError::Invalid(ImageError::Section {
            defect: Defect::Content(ContentError::NoThreads),
            ..
        }))
    ));
    let mut procs = minimal();
    procs[0].handles[0].object.link = to(0, 7);
    let e = build(false, &procs, &[]).unwrap_err();
    assert_eq!(
        e,
        BuildError::Invalid(ImageError::Link {
            from: Place::Handle {
                process: 0,
                index: 0
            },
            to: Place::Handle {
                process: 0,
                index: 7
            },
            defect: LinkDefect::Missing
        })
    );
    assert_eq!(
        e.to_string(),
        "the image would be refused: handle 0 of process 0: its peer, handle 7 of process 0, does not exist"
    );
    // Two single processes without the tree flag.
    let mut two = minimal();
    two.extend(minimal());
    two[1].record.parent = Some(0);
    assert_eq!(
        build(false, &two, &[]),
        Err(BuildError::Invalid(ImageError::NotATree { processes: 2 }))
    );
    assert!(build(true, &two, &[]).is_ok());
    // A name longer than its u16 length field.
    let mut procs = minimal();
    let long: &'static str = Box::leak("n".repeat(70_000).into_boxed_str());
    procs[0].record.name = long;
    assert_eq!(
        build(false, &procs, &[]),
        Err(BuildError::TooLarge {
            field: "process name length",
            value: 70_000
        })
    );
}

#[test]
fn module_hash_is_sha256() {
    // FIPS 180-2 example: SHA-256("abc").
    let h = module_hash(b"abc");
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// A random valid tree: `n` processes, each with a parent channel to its parent (the root's
/// peer outside), random threads, pages and messages on the parent channel.
fn random_tree(seed: u64, n: usize) -> Vec<Proc> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut procs = Vec::new();
    for i in 0..n {
        let parent = if i == 0 {
            None
        } else {
            Some((next() % i as u64) as u16)
        };
        let threads = (0..1 + next() % 4)
            .map(|t| {
                thread(
                    t * 3 + 1,
                    if next() % 2 == 0 {
                        ThreadState::Runnable
                    } else {
                        ThreadState::Blocked
                    },
                    next(),
                )
            })
            .collect();
        let link = match parent {
            None => Link::None,
            // The parent's handle 100 + i is this child's parent channel.
            Some(p) => to(p, 100 + i as u16),
        };
        let mut handles = vec![h(0, ep(10_000 + i as u64, 1, link))];
        // The spawner, a handle to the first (live) thread and an ended one now and then.
        if next() % 2 == 0 {
            handles.push(h(1, th(ObjectKind::ThreadSpawner, 0, Link::None)));
            handles.push(h(2, th(ObjectKind::Thread, 1, Link::None)));
            let code = next() as i64;
            handles.push(h(3, th(ObjectKind::Thread, 99, Link::Ended { code })));
        }
        // Handles to children are added below, once the children are known.
        let arena = (0..next() % 3)
            .map(|k| (abi::layout::ARENA_BASE + k * 0x2000, page(next())))
            .collect();
        let data = (0..next() % 3)
            .map(|k| (abi::layout::MODULE_BASE + (k + 1) * 0x3000, page(next())))
            .collect();
        let messages = (0..next() % 4)
            .map(|_| Msg {
                channel: 10_000 + i as u64,
                side: 1,
                receiver: Receiver::Handle { index: 0 },
                bytes: (0..next() % 200).map(|b| b as u8).collect(),
                handles: vec![],
            })
            .collect();
        handles.sort_by_key(|h| h.index);
        procs.push(Proc {
            record: rec(200 + i as u64, parent, "random"),
            module: module("/bin/random"),
            threads,
            handles,
            messages,
            arena,
            stacks: vec![],
            data,
        });
    }
    for i in 1..n {
        let p = procs[i].record.parent.unwrap() as usize;
        procs[p]
            .handles
            .push(h(100 + i as u16, ep(10_000 + i as u64, 0, to(i as u16, 0))));
    }
    procs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_trees_round_trip(seed in any::<u64>(), n in 1usize..8) {
        let procs = random_tree(seed, n);
        let bytes = build(true, &procs, &[]).unwrap();
        let img = Image::parse(&bytes).unwrap();
        assert_matches(&img, &procs);
    }
}

/// A checksum that is not CRC-32C: what a wrong accelerated implementation would be.
fn not_crc32c(b: &[u8]) -> u32 {
    checksum::crc32c(b) ^ 0x8000_0001
}

#[test]
fn the_checksum_is_crc32c_and_pluggable() {
    let procs = rich();
    let bytes = build(true, &procs, &[]).expect("builds");
    // The header's CRC is CRC-32C of its first 60 bytes.
    let stored = u32::from_le_bytes(bytes[60..64].try_into().unwrap());
    assert_eq!(stored, checksum::crc32c(&bytes[..60]));
    assert!(Image::parse_with(&bytes, checksum::crc32c).is_ok());
    assert!(matches!(
        Image::parse_with(&bytes, not_crc32c),
        Err(ImageError::HeaderCrc { .. })
    ));
    // Written with another function, read back only with that one.
    let other = build_then(true, &procs, &[], |b| {
        let mut out = vec![0u8; b.len()? as usize];
        b.write_with(&mut out, not_crc32c)?;
        Ok(out)
    })
    .expect("writes");
    let img = Image::parse_with(&other, not_crc32c).expect("parses with its function");
    assert_matches(&img, &procs);
    assert!(matches!(
        Image::parse(&other),
        Err(ImageError::HeaderCrc { .. })
    ));
    // Sections too: with the header and table resealed by the standard function, the first
    // section's CRC is the other function's and is refused.
    let mut resealed = other.clone();
    let count = u32::from_le_bytes(resealed[12..16].try_into().unwrap()) as usize;
    let table = checksum::crc32c(&resealed[64..64 + 32 * count]);
    resealed[28..32].copy_from_slice(&table.to_le_bytes());
    let head = checksum::crc32c(&resealed[..60]);
    resealed[60..64].copy_from_slice(&head.to_le_bytes());
    assert!(matches!(
        Image::parse(&resealed),
        Err(ImageError::Section {
            index: 0,
            defect: Defect::Crc { .. },
            ..
        })
    ));
}

#[test]
fn write_sets_every_byte_of_its_buffer() {
    // The builder zeroes only what its sections leave alone: a buffer full of old bytes must
    // come out as a fresh zeroed one does.
    let procs = rich();
    let fresh = build(true, &procs, &[(1, 0x8001, b"notes")]).expect("builds");
    let reused = build_then(true, &procs, &[(1, 0x8001, b"notes")], |b| {
        let mut out = vec![0xa5u8; b.len()? as usize];
        b.write(&mut out)?;
        Ok(out)
    })
    .expect("writes");
    assert_eq!(fresh, reused);
}
