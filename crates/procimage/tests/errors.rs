//! Every refusal the parser documents, each from a valid image with one defect (and, where a
//! CRC would otherwise catch the edit first, the CRCs repaired): the exact error value, and for
//! the ones a person reads most often the exact message.
mod common;

use common::*;
use procimage::*;

fn rich_image() -> Vec<u8> {
    build(true, &rich(), &[]).unwrap()
}

fn err(b: &[u8]) -> ImageError {
    match Image::parse(b) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

/// Edits `b` with `f`, repairs the CRCs, returns the error.
fn edited(mut b: Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) -> ImageError {
    f(&mut b);
    repair(&mut b);
    err(&b)
}

fn section_err(e: Entry, defect: Defect) -> ImageError {
    ImageError::Section {
        index: e.index as u32,
        kind: e.kind,
        process: e.process,
        defect,
    }
}

fn content(e: Entry, c: ContentError) -> ImageError {
    section_err(e, Defect::Content(c))
}

#[test]
fn header_errors() {
    let b = rich_image();
    let total = b.len() as u64;
    assert_eq!(err(&b[..10]), ImageError::TooShort { have: 10 });
    assert_eq!(
        err(&b[..10]).to_string(),
        "truncated: file has 10 bytes, the header alone is 64"
    );
    assert_eq!(err(&[]), ImageError::TooShort { have: 0 });

    let mut m = b.clone();
    m[0] = b'X';
    assert_eq!(
        err(&m),
        ImageError::BadMagic {
            found: *b"XOXIEIMG"
        }
    );

    let mut v = b.clone();
    wr16(&mut v, 8, 7);
    assert_eq!(err(&v), ImageError::UnsupportedVersion { found: 7 });
    assert_eq!(
        err(&v).to_string(),
        "unsupported version 7 (this build reads 1)"
    );

    let mut c = b.clone();
    c[40] = 1;
    let stored = rd32(&c, 60);
    let computed = procimage::checksum::crc32c(&c[..60]);
    assert_eq!(err(&c), ImageError::HeaderCrc { stored, computed });
    assert_eq!(
        err(&c).to_string(),
        format!("header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")
    );

    assert_eq!(
        edited(b.clone(), |b| wr16(b, 10, 0x0003)),
        ImageError::UnknownFlags { flags: 3 }
    );
    assert_eq!(
        edited(b.clone(), |b| b[40] = 1),
        ImageError::HeaderReserved { at: 40 }
    );
    assert_eq!(
        edited(b.clone(), |b| b[27] = 1),
        ImageError::HeaderReserved { at: 27 }
    );

    let t = &b[..4000];
    assert_eq!(err(t), ImageError::Truncated { total, have: 4000 });
    assert_eq!(
        err(t).to_string(),
        format!("truncated: header says {total} bytes, file has 4000")
    );
    let mut long = b.clone();
    long.extend_from_slice(&[0; 16]);
    assert_eq!(
        err(&long),
        ImageError::TrailingBytes {
            total,
            have: total + 16
        }
    );
    assert_eq!(
        edited(b.clone(), |b| wr32(b, 12, u32::MAX)),
        ImageError::TotalTooSmall {
            total,
            need: 64 + 32 * u64::from(u32::MAX)
        }
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, 24, 0)),
        ImageError::NoProcesses
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, 10, 0)),
        ImageError::NotATree { processes: 3 }
    );
}

#[test]
fn table_errors() {
    let b = rich_image();
    let total = b.len() as u64;
    let es = entries(&b);

    // An edited entry without the table CRC repaired.
    let mut t = b.clone();
    wr64(&mut t, es[3].at + 8, 12345);
    let stored = rd32(&t, 28);
    let computed = procimage::checksum::crc32c(&t[64..64 + 32 * es.len()]);
    assert_eq!(err(&t), ImageError::TableCrc { stored, computed });

    let e = es[2];
    assert_eq!(
        edited(b.clone(), |b| b[e.at + 5] = 1),
        section_err(e, Defect::Reserved)
    );
    assert_eq!(
        edited(b.clone(), |b| b[e.at + 30] = 1),
        section_err(e, Defect::Reserved)
    );
    let unknown = edited(b.clone(), |b| wr16(b, e.at, 0x0009));
    assert_eq!(
        unknown,
        ImageError::Section {
            index: 2,
            kind: 9,
            process: 0,
            defect: Defect::UnknownKind
        }
    );
    assert_eq!(
        unknown.to_string(),
        "section 2 (unknown 0x0009 of process 0): unknown section kind that a reader must understand (this build reads version 1)"
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at, 0)),
        ImageError::Section {
            index: 2,
            kind: 0,
            process: 0,
            defect: Defect::UnknownKind
        }
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at + 2, 3)),
        ImageError::Section {
            index: 2,
            kind: e.kind,
            process: 3,
            defect: Defect::ProcessOutOfRange { processes: 3 }
        }
    );
    // Entry 2 (THREADS of 0) given the kind of entry 1 (MODULE): a duplicate.
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at, SectionKind::Module as u16)),
        ImageError::Section {
            index: 2,
            kind: SectionKind::Module as u16,
            process: 0,
            defect: Defect::Duplicate
        }
    );
    // Entry 2 given PROCESS: before the MODULE entry before it.
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at, SectionKind::Process as u16)),
        ImageError::Section {
            index: 2,
            kind: 1,
            process: 0,
            defect: Defect::OutOfOrder
        }
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, e.at + 8, e.offset as u64 + 16)),
        section_err(
            e,
            Defect::Misplaced {
                offset: e.offset as u64 + 16,
                expected: e.offset as u64
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, e.at + 16, u64::MAX - 8)),
        section_err(
            e,
            Defect::OutOfBounds {
                offset: e.offset as u64,
                length: u64::MAX - 8,
                total
            }
        )
    );
    let oob = edited(b.clone(), |b| wr64(b, e.at + 16, total));
    assert_eq!(
        oob.to_string(),
        format!(
            "section 2 (THREADS of process 0): {total} bytes at {} run past the image's end at {total}",
            e.offset
        )
    );
    // The PROCESS section of process 0 is 80 + 10 bytes: 6 bytes of padding follow it.
    let p = es[0];
    assert_eq!(p.length, 90);
    let pad = p.offset + p.length + 3;
    assert_eq!(
        edited(b.clone(), |b| b[pad] = 0xee),
        section_err(p, Defect::PaddingNotZero { at: pad as u64 })
    );
    // Sixteen more bytes at the end, counted in the header.
    let grown = edited(b.clone(), |b| {
        b.extend_from_slice(&[0; 16]);
        wr64(b, 16, total + 16);
    });
    assert_eq!(
        grown,
        ImageError::LayoutEnd {
            end: total,
            total: total + 16
        }
    );
    // Sixteen fewer bytes, the last section's length shortened by 16 too: its padding moves.
    let last = *es.last().unwrap();
    let shrunk = edited(b.clone(), |b| {
        b.truncate(b.len() - 16);
        wr64(b, 16, total - 16);
        wr64(b, last.at + 16, last.length as u64 - 16);
    });
    let data = section(&b, 2, SectionKind::Data);
    assert_eq!(data.index, last.index);
    assert_eq!(
        shrunk,
        content(
            data,
            ContentError::Length {
                length: 8208,
                expected: 8224
            }
        )
    );
}

#[test]
fn missing_sections() {
    // The single process's HANDLES entry (the last one) turned into an optional kind.
    let b = build(false, &minimal(), &[]).unwrap();
    let e = section(&b, 0, SectionKind::Handles);
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at, 0x8004)),
        ImageError::MissingSection {
            process: 0,
            kind: SectionKind::Handles
        }
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, e.at, 0x8004)).to_string(),
        "process 0 has no HANDLES section"
    );
    // Two processes counted, one present.
    let tree = build(true, &minimal(), &[]).unwrap();
    assert_eq!(
        edited(tree.clone(), |b| wr16(b, 24, 2)),
        ImageError::MissingSection {
            process: 1,
            kind: SectionKind::Process
        }
    );
    // The rich tree's process 1 sections relabelled as process 2's: process 1 is missing.
    let b = rich_image();
    let ones: Vec<Entry> = entries(&b).into_iter().filter(|e| e.process == 1).collect();
    assert_eq!(
        edited(b.clone(), |b| {
            for e in &ones {
                wr16(b, e.at + 2, 2);
            }
        }),
        ImageError::MissingSection {
            process: 1,
            kind: SectionKind::Process
        }
    );
}

#[test]
fn section_crc() {
    let b = rich_image();
    let e = section(&b, 0, SectionKind::Arena);
    let mut c = b.clone();
    c[e.offset + 100] ^= 0x10;
    let stored = rd32(&c, e.at + 24);
    let computed = procimage::checksum::crc32c(&c[e.offset..e.offset + e.length]);
    let got = err(&c);
    assert_eq!(got, section_err(e, Defect::Crc { stored, computed }));
    assert_eq!(
        got.to_string(),
        format!(
            "section {} (ARENA of process 0): CRC mismatch: stored {stored:#010x}, computed {computed:#010x}",
            e.index
        )
    );
}

#[test]
fn process_and_module_contents() {
    let b = rich_image();
    let p0 = section(&b, 0, SectionKind::Process);
    let p1 = section(&b, 1, SectionKind::Process);
    let m = section(&b, 0, SectionKind::Module);
    let o = p0.offset;
    assert_eq!(
        edited(b.clone(), |b| b[o + 80] = 0xff),
        content(p0, ContentError::Text { field: "name" })
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o + 18, 11)),
        content(
            p0,
            ContentError::Length {
                length: 90,
                expected: 91
            }
        )
    );
    // The spawn limits: thread limit at 20, kernel-stack budget at 68.
    assert_eq!(rd32(&b, o + 20), 5);
    assert_eq!(rd32(&b, o + 68), 16);
    for limit in [0, 17, u32::MAX] {
        assert_eq!(
            edited(b.clone(), |b| wr32(b, o + 20, limit)),
            content(p0, ContentError::ThreadLimit { limit })
        );
    }
    assert_eq!(
        edited(b.clone(), |b| wr32(b, o + 20, 0)).to_string(),
        "section 0 (PROCESS of process 0): thread limit 0 (1 to 16 allowed)"
    );
    for ok in [1, 16] {
        let mut m = b.clone();
        wr32(&mut m, o + 20, ok);
        repair(&mut m);
        assert_eq!(
            Image::parse(&m)
                .unwrap()
                .process(0)
                .unwrap()
                .record()
                .thread_limit,
            ok
        );
    }
    for pages in [0, 3, 65, u32::MAX] {
        assert_eq!(
            edited(b.clone(), |b| wr32(b, o + 68, pages)),
            content(p0, ContentError::KernelStackPages { pages })
        );
    }
    assert_eq!(
        edited(b.clone(), |b| wr32(b, o + 68, 3)).to_string(),
        "section 0 (PROCESS of process 0): kernel-stack budget of 3 pages (4 to 64 allowed)"
    );
    for ok in [4, 64] {
        let mut m = b.clone();
        wr32(&mut m, o + 68, ok);
        repair(&mut m);
        let img = Image::parse(&m).unwrap();
        assert_eq!(img.process(0).unwrap().record().kernel_stack_pages, ok);
    }
    assert_eq!(
        edited(b.clone(), |b| wr64(b, o + 24, abi::layout::ARENA_BASE + 1)),
        content(
            p0,
            ContentError::Unaligned {
                field: "arena",
                value: abi::layout::ARENA_BASE + 1
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, o + 32, 4095)),
        content(
            p0,
            ContentError::Unaligned {
                field: "arena ceiling",
                value: 4095
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, o + 32, !0xfff)),
        content(
            p0,
            ContentError::Region {
                field: "arena",
                start: abi::layout::ARENA_BASE,
                end: u64::MAX
            }
        )
    );
    let low = rd64(&b, o + 40);
    assert_eq!(
        edited(b.clone(), |b| wr64(b, o + 48, low - 0x1000)),
        content(
            p0,
            ContentError::Region {
                field: "stack slots",
                start: low,
                end: low - 0x1000
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o + 16, 0)),
        content(p0, ContentError::RootParent { parent: 0 })
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, p1.offset + 16, 1)),
        content(p1, ContentError::Parent { parent: 1 })
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, p1.offset + 16, NO_PROCESS)),
        content(p1, ContentError::Parent { parent: NO_PROCESS })
    );
    // Module: empty path, unaligned load base, reserved.
    assert_eq!(
        edited(b.clone(), |b| {
            wr16(b, m.offset + 40, 0);
            wr64(b, m.at + 16, 48);
            // The sections after it would be misplaced: drop them from the table.
        }),
        section_err(
            entries(&b)[m.index + 1],
            Defect::Misplaced {
                offset: entries(&b)[m.index + 1].offset as u64,
                expected: (m.offset + 48) as u64
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, m.offset, 0x40_0001)),
        content(
            m,
            ContentError::Unaligned {
                field: "load base",
                value: 0x40_0001
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[m.offset + 47] = 1),
        content(m, ContentError::Reserved { at: 42 })
    );
    let short = edited(b.clone(), |b| wr16(b, m.offset + 40, 0));
    assert_eq!(
        short,
        content(
            m,
            ContentError::Length {
                length: m.length as u64,
                expected: 48
            }
        )
    );
}

#[test]
fn thread_contents() {
    let b = rich_image();
    let t = section(&b, 0, SectionKind::Threads);
    let rec = |i: usize| t.offset + 16 + 704 * i;
    assert_eq!(
        edited(b.clone(), |b| b[rec(1) + 12] = 5),
        content(t, ContentError::ThreadState { tid: 2, state: 5 })
    );
    assert_eq!(
        edited(b.clone(), |b| b[rec(1) + 14] = 5),
        content(
            t,
            ContentError::Reserved {
                at: (16 + 704 + 13) as u64
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, rec(2), 1)),
        content(t, ContentError::ThreadOrder { tid: 1 })
    );
    assert_eq!(
        edited(b.clone(), |b| wr32(b, t.offset, 2)),
        content(
            t,
            ContentError::Length {
                length: t.length as u64,
                expected: 16 + 2 * 704
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[t.offset + 4] = 1),
        content(t, ContentError::Reserved { at: 4 })
    );
    // A process with no thread.
    let mut procs = minimal();
    procs[0].threads.clear();
    let mut bld = ImageBuilder::new();
    let p = &procs[0];
    bld.add(ProcessParts {
        record: p.record,
        module: p.module,
        threads: &[],
        handles: &p.handles,
        messages: &[],
        arena: &[],
        stacks: &[],
        data: &[],
    })
    .unwrap();
    let mut raw = vec![0; bld.len().unwrap() as usize];
    bld.write(&mut raw).unwrap();
    let t = section(&raw, 0, SectionKind::Threads);
    assert_eq!(err(&raw), content(t, ContentError::NoThreads));
}

#[test]
fn handle_contents() {
    let b = rich_image();
    let hs = section(&b, 0, SectionKind::Handles);
    let rec = |i: usize| hs.offset + 16 + 40 * i;
    let at0 = Place::Handle {
        process: 0,
        index: 0,
    };
    assert_eq!(
        edited(b.clone(), |b| wr16(b, rec(1), 0)),
        content(hs, ContentError::HandleOrder { index: 0 })
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, rec(7), 1024)),
        content(hs, ContentError::HandleIndex { index: 1024 })
    );
    let obj = |defect| content(hs, ContentError::Object { at: at0, defect });
    let o = rec(0) + 8;
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o, 9)),
        obj(ObjectDefect::Kind(9))
    );
    assert_eq!(
        edited(b.clone(), |b| b[o + 2] = 2),
        obj(ObjectDefect::Side(2))
    );
    assert_eq!(
        edited(b.clone(), |b| b[o + 3] = 9),
        obj(ObjectDefect::LinkKind(9))
    );
    assert_eq!(
        edited(b.clone(), |b| b[o + 3] = 4),
        obj(ObjectDefect::LinkForKind(4))
    );
    assert_eq!(
        edited(b.clone(), |b| wr32(b, o + 4, 1 << 20)),
        obj(ObjectDefect::Rights(1 << 20))
    );
    assert_eq!(
        edited(b.clone(), |b| b[o + 30] = 1),
        obj(ObjectDefect::Reserved)
    );
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o + 16, 1)),
        obj(ObjectDefect::LinkFields)
    );
    // Handle 1 links to process 1: make it process 3.
    let o1 = rec(1) + 8;
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o1 + 16, 3)),
        content(
            hs,
            ContentError::Object {
                at: Place::Handle {
                    process: 0,
                    index: 1
                },
                defect: ObjectDefect::LinkProcess(3)
            }
        )
    );
    // Handle 6 is the system handle: an id is refused.
    let o6 = rec(5) + 8;
    assert_eq!(
        edited(b.clone(), |b| wr64(b, o6 + 8, 1)),
        content(
            hs,
            ContentError::Object {
                at: Place::Handle {
                    process: 0,
                    index: 6
                },
                defect: ObjectDefect::Id(1)
            }
        )
    );
    // Handle 4 links to a carried handle: slot 8 does not exist.
    let o4 = rec(4) + 8;
    assert_eq!(
        edited(b.clone(), |b| wr16(b, o4 + 18, 8)),
        content(
            hs,
            ContentError::Object {
                at: Place::Handle {
                    process: 0,
                    index: 4
                },
                defect: ObjectDefect::CarriedSlot(8)
            }
        )
    );
}

#[test]
fn link_errors() {
    let b = rich_image();
    let hs0 = section(&b, 0, SectionKind::Handles);
    let hs1 = section(&b, 1, SectionKind::Handles);
    let obj0 = |i: usize| hs0.offset + 16 + 40 * i + 8;
    let obj1 = |i: usize| hs1.offset + 16 + 40 * i + 8;
    let from = Place::Handle {
        process: 0,
        index: 1,
    };
    // Handle 1 of process 0 (channel 2000) names handle 1 of process 1 (channel 4000).
    let e = edited(b.clone(), |b| wr16(b, obj0(1) + 18, 1));
    assert_eq!(
        e,
        ImageError::Link {
            from,
            to: Place::Handle {
                process: 1,
                index: 1
            },
            defect: LinkDefect::Channel
        }
    );
    assert_eq!(
        e.to_string(),
        "handle 1 of process 0: its peer, handle 1 of process 1, is not the other side of the same channel"
    );
    // ... names handle 2 of process 1 (the console).
    assert_eq!(
        edited(b.clone(), |b| wr16(b, obj0(1) + 18, 2)),
        ImageError::Link {
            from,
            to: Place::Handle {
                process: 1,
                index: 2
            },
            defect: LinkDefect::NotEndpoint
        }
    );
    // ... names handle 9 of process 1, which does not exist.
    assert_eq!(
        edited(b.clone(), |b| wr16(b, obj0(1) + 18, 9)),
        ImageError::Link {
            from,
            to: Place::Handle {
                process: 1,
                index: 9
            },
            defect: LinkDefect::Missing
        }
    );
    // Handle 0 of process 1 moved to channel 2001: the messages queued for it on channel 2000
    // no longer name their receiver (the MESSAGES check comes before the links).
    let ms1 = section(&b, 1, SectionKind::Messages);
    assert_eq!(
        edited(b.clone(), |b| wr64(b, obj1(0) + 8, 2001)),
        content(
            ms1,
            ContentError::Receiver {
                message: 0,
                at: Place::Handle {
                    process: 1,
                    index: 0
                },
                defect: LinkDefect::Channel
            }
        )
    );
    // Process 0's handle 4 names carried slot 0 instead of 1 (channel 5000, not 3000).
    assert_eq!(
        edited(b.clone(), |b| wr16(b, obj0(4) + 18, 0)),
        ImageError::Link {
            from: Place::Handle {
                process: 0,
                index: 4
            },
            to: Place::Carried {
                process: 1,
                message: 1,
                slot: 0
            },
            defect: LinkDefect::Channel
        }
    );
    // ... names message 7, which does not exist.
    assert_eq!(
        edited(b.clone(), |b| wr32(b, obj0(4) + 20, 7)),
        ImageError::Link {
            from: Place::Handle {
                process: 0,
                index: 4
            },
            to: Place::Carried {
                process: 1,
                message: 7,
                slot: 1
            },
            defect: LinkDefect::Missing
        }
    );
    // A closed peer on one side only: the other side does not link back.
    assert_eq!(
        edited(b.clone(), |b| {
            b[obj0(2) + 3] = 1;
            wr16(b, obj0(2) + 16, 0);
            wr16(b, obj0(2) + 18, 0);
        }),
        ImageError::Link {
            from: Place::Handle {
                process: 2,
                index: 0
            },
            to: Place::Handle {
                process: 0,
                index: 2
            },
            defect: LinkDefect::NotBack
        }
    );
}

#[test]
fn message_contents() {
    let b = rich_image();
    let ms = section(&b, 0, SectionKind::Messages);
    let ms1 = section(&b, 1, SectionKind::Messages);
    let rec = |i: usize| ms.offset + 16 + 32 * i;
    assert_eq!(
        edited(b.clone(), |b| wr32(b, rec(2) + 12, 70_000)),
        content(
            ms,
            ContentError::MessageBytes {
                message: 2,
                bytes: 70_000
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[rec(1) + 9] = 9),
        content(
            ms,
            ContentError::MessageHandles {
                message: 1,
                count: 9
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[rec(0) + 10] = 7),
        content(
            ms,
            ContentError::ReceiverKind {
                message: 0,
                kind: 7
            }
        )
    );
    let data1 = rd64(&b, rec(1) + 24);
    assert_eq!(
        edited(b.clone(), |b| wr64(b, rec(1) + 24, data1 + 8)),
        content(
            ms,
            ContentError::DataOffset {
                message: 1,
                offset: data1 + 8,
                expected: data1
            }
        )
    );
    // Message 0 moved to handle 1's queue: after message 0 that is fine, but message 1 and 2
    // then follow a receiver key equal to theirs; moving message 2 to handle 0 breaks the order.
    assert_eq!(
        edited(b.clone(), |b| wr16(b, rec(2) + 16, 0)),
        content(ms, ContentError::MessageOrder { message: 2 })
    );
    // Message 0 (channel 1000 on handle 0) said to be on channel 1001.
    assert_eq!(
        edited(b.clone(), |b| wr64(b, rec(0), 1001)),
        content(
            ms,
            ContentError::Receiver {
                message: 0,
                at: Place::Handle {
                    process: 0,
                    index: 0
                },
                defect: LinkDefect::Channel
            }
        )
    );
    // The padding after message 0's 9 bytes.
    let data0 = rd64(&b, rec(0) + 24) as usize;
    assert_eq!(
        edited(b.clone(), |b| b[ms.offset + data0 + 10] = 1),
        content(
            ms,
            ContentError::Reserved {
                at: (data0 + 10) as u64
            }
        )
    );
    // Process 1's message 2 waits in carried handle 1 of message 1; point it at slot 5.
    let rec1 = |i: usize| ms1.offset + 16 + 32 * i;
    assert_eq!(
        edited(b.clone(), |b| b[rec1(2) + 11] = 5),
        content(
            ms1,
            ContentError::Receiver {
                message: 2,
                at: Place::Carried {
                    process: 1,
                    message: 1,
                    slot: 5
                },
                defect: LinkDefect::Missing
            }
        )
    );
    // A carried object with an unknown kind.
    let d1 = rd64(&b, rec1(1) + 24) as usize;
    assert_eq!(
        edited(b.clone(), |b| wr16(b, ms1.offset + d1 + 32, 77)),
        content(
            ms1,
            ContentError::Object {
                at: Place::Carried {
                    process: 1,
                    message: 1,
                    slot: 1
                },
                defect: ObjectDefect::Kind(77)
            }
        )
    );
    // A count larger than the index fits in.
    assert_eq!(
        edited(b.clone(), |b| wr32(b, ms.offset, u32::MAX)),
        content(
            ms,
            ContentError::TooShort {
                length: ms.length as u64,
                need: 16 + 32 * u64::from(u32::MAX)
            }
        )
    );
}

#[test]
fn page_contents() {
    let b = rich_image();
    let a = section(&b, 0, SectionKind::Arena);
    let s = section(&b, 2, SectionKind::Stacks);
    let va = |i: usize| a.offset + 16 + 8 * i;
    let base = abi::layout::ARENA_BASE;
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(1), base + 0x3001)),
        content(a, ContentError::PageUnaligned { va: base + 0x3001 })
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(1), base)),
        content(a, ContentError::PageOrder { va: base })
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(2), base + (64 << 20))),
        content(
            a,
            ContentError::PageOutside {
                va: base + (64 << 20),
                start: base,
                end: base + (64 << 20)
            }
        )
    );
    let low = abi::layout::STACKS_BASE;
    assert_eq!(
        edited(b.clone(), |b| wr64(b, s.offset + 16, low - 0x1000)),
        content(
            s,
            ContentError::PageOutside {
                va: low - 0x1000,
                start: low,
                end: low + 8 * abi::layout::STACK_SLOT
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, a.offset, 4)),
        content(
            a,
            ContentError::Length {
                length: a.length as u64,
                expected: 16 + 4 * 4104
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, a.offset, u64::MAX)),
        content(
            a,
            ContentError::Length {
                length: a.length as u64,
                expected: u64::MAX
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[a.offset + 9] = 1),
        content(a, ContentError::Reserved { at: 8 })
    );
}

#[test]
fn every_error_has_a_message() {
    // Display never panics and always says something, for every defect the tests above reach.
    let b = build(true, &rich(), &[]).unwrap();
    // Every byte of the header, table and the first sections, then a sample of the rest.
    let step = (b.len() / 2000).max(1);
    for i in (0..4096).chain((4096..b.len()).step_by(step)) {
        let mut m = b.clone();
        m[i] ^= 0x80;
        repair(&mut m);
        if let Err(e) = Image::parse(&m) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn data_pages() {
    use abi::layout::{MODULE_BASE, MODULE_MAX_SIZE, USER_END};
    let b = rich_image();
    let d0 = section(&b, 0, SectionKind::Data);
    let d2 = section(&b, 2, SectionKind::Data);
    let m0 = section(&b, 0, SectionKind::Module);
    let va = |d: Entry, i: usize| d.offset + 16 + 8 * i;
    let end = MODULE_BASE + MODULE_MAX_SIZE;
    let outside = |d: Entry, va: u64, start: u64, end: u64| {
        content(d, ContentError::PageOutside { va, start, end })
    };
    // Below the load base, and at the end of the module's span (the last page fits).
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(d0, 0), MODULE_BASE - 0x1000)),
        outside(d0, MODULE_BASE - 0x1000, MODULE_BASE, end)
    );
    assert_eq!(rd64(&b, va(d2, 1)), end - 0x1000);
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(d2, 1), end)),
        outside(d2, end, MODULE_BASE, end)
    );
    let e = edited(b.clone(), |b| wr64(b, va(d2, 1), end));
    assert_eq!(
        e.to_string(),
        format!(
            "section {} (DATA of process 2): page {end:#x} is outside {MODULE_BASE:#x}..{end:#x}",
            d2.index
        )
    );
    // The range follows the MODULE section's load base.
    let moved = MODULE_BASE + 0x3000;
    assert_eq!(
        edited(b.clone(), |b| wr64(b, m0.offset, moved)),
        outside(d0, MODULE_BASE + 0x2000, moved, moved + MODULE_MAX_SIZE)
    );
    // A module loaded near the top of user space: its data pages stop at USER_END.
    let high = USER_END - 0x10000;
    assert_eq!(
        edited(b.clone(), |b| {
            wr64(b, m0.offset, high);
            wr64(b, va(d0, 0), USER_END - 0x1000);
            wr64(b, va(d0, 1), USER_END);
        }),
        outside(d0, USER_END, high, USER_END)
    );
    // Alignment, order, count.
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(d0, 1), MODULE_BASE + 0x4008)),
        content(
            d0,
            ContentError::PageUnaligned {
                va: MODULE_BASE + 0x4008
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, va(d0, 1), MODULE_BASE + 0x2000)),
        content(
            d0,
            ContentError::PageOrder {
                va: MODULE_BASE + 0x2000
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| wr64(b, d0.offset, 3)),
        content(
            d0,
            ContentError::Length {
                length: d0.length as u64,
                expected: 16 + 3 * 4104
            }
        )
    );
    assert_eq!(
        edited(b.clone(), |b| b[d0.offset + 12] = 1),
        content(d0, ContentError::Reserved { at: 8 })
    );
    // DATA sorts after STACKS: given kind STACKS (7) process 0's DATA entry repeats it.
    assert_eq!(
        edited(b.clone(), |b| wr16(b, d0.at, SectionKind::Stacks as u16)),
        section_err(
            Entry {
                kind: SectionKind::Stacks as u16,
                ..d0
            },
            Defect::Duplicate
        )
    );
}

/// The 32 bytes of an object reference: kind, link kind, id (side, rights and link fields 0).
fn object_bytes(kind: u16, link: u8, id: u64) -> [u8; 32] {
    let mut o = [0u8; 32];
    o[..2].copy_from_slice(&kind.to_le_bytes());
    o[3] = link;
    o[8..16].copy_from_slice(&id.to_le_bytes());
    o
}

#[test]
fn thread_objects() {
    let b = rich_image();
    let hs = section(&b, 2, SectionKind::Handles);
    // Process 2's handles: 0, 3, 4, then 5 the spawner, 6 live thread 6, 7 an ended thread
    // (code i64::MIN), 8 ended thread 9 (code 3).
    let obj = |i: usize| hs.offset + 16 + 40 * i + 8;
    let (spawner, live, ended) = (obj(3), obj(4), obj(5));
    assert_eq!(rd16(&b, spawner), ObjectKind::ThreadSpawner as u16);
    assert_eq!(rd16(&b, live), ObjectKind::Thread as u16);
    assert_eq!(b[ended + 3], 5);
    assert_eq!(rd64(&b, ended + 24), i64::MIN as u64);
    let bad = |index: u16, defect| {
        content(
            hs,
            ContentError::Object {
                at: Place::Handle { process: 2, index },
                defect,
            },
        )
    };
    // The spawner: id 0, side 0, no link.
    assert_eq!(
        edited(b.clone(), |b| wr64(b, spawner + 8, 1)),
        bad(5, ObjectDefect::Id(1))
    );
    assert_eq!(
        edited(b.clone(), |b| b[spawner + 2] = 1),
        bad(5, ObjectDefect::Side(1))
    );
    for link in [1, 4, 5] {
        assert_eq!(
            edited(b.clone(), |b| b[spawner + 3] = link),
            bad(5, ObjectDefect::LinkForKind(link))
        );
    }
    // A thread: side 0; no endpoint or process link.
    assert_eq!(
        edited(b.clone(), |b| b[live + 2] = 1),
        bad(6, ObjectDefect::Side(1))
    );
    for link in [1, 2, 3, 4] {
        assert_eq!(
            edited(b.clone(), |b| b[live + 3] = link),
            bad(6, ObjectDefect::LinkForKind(link))
        );
    }
    assert_eq!(
        edited(b.clone(), |b| b[live + 3] = 6),
        bad(6, ObjectDefect::LinkKind(6))
    );
    // A live thread's tid must have a record in the holder's THREADS (2 has tids 5 and 6;
    // tid 4 is process 1's).
    for tid in [4, 7, u64::MAX] {
        assert_eq!(
            edited(b.clone(), |b| wr64(b, live + 8, tid)),
            bad(6, ObjectDefect::NoThread(tid))
        );
    }
    let mut ok = b.clone();
    wr64(&mut ok, live + 8, 5);
    repair(&mut ok);
    Image::parse(&ok).unwrap();
    assert_eq!(
        edited(b.clone(), |b| wr64(b, live + 8, 7)).to_string(),
        format!(
            "section {} (HANDLES of process 2): handle 6 of process 2: live thread 7, which the process has no record of",
            hs.index
        )
    );
    // An ended thread: no such check; its code only with link kind 5, and no link fields.
    assert_eq!(
        edited(b.clone(), |b| b[ended + 3] = 0),
        bad(7, ObjectDefect::Reserved)
    );
    assert_eq!(
        edited(b.clone(), |b| b[live + 31] = 1),
        bad(6, ObjectDefect::Reserved)
    );
    for field in [16, 18, 20] {
        assert_eq!(
            edited(b.clone(), |b| b[ended + field] = 1),
            bad(7, ObjectDefect::LinkFields)
        );
    }
    // Link kind 5 on any other object.
    let hs0 = section(&b, 0, SectionKind::Handles);
    let o0 = |i: usize| hs0.offset + 16 + 40 * i + 8;
    for (i, index) in [(0, 0), (3, 3), (5, 6)] {
        assert_eq!(
            edited(b.clone(), |b| b[o0(i) + 3] = 5),
            content(
                hs0,
                ContentError::Object {
                    at: Place::Handle { process: 0, index },
                    defect: ObjectDefect::LinkForKind(5)
                }
            )
        );
    }
}

#[test]
fn threads_never_travel() {
    let b = rich_image();
    let ms1 = section(&b, 1, SectionKind::Messages);
    // Process 1's message 1 carries three endpoints; replace the first.
    let data = rd64(&b, ms1.offset + 16 + 32 + 24) as usize;
    let slot0 = ms1.offset + data;
    let at = Place::Carried {
        process: 1,
        message: 1,
        slot: 0,
    };
    let travels = |kind| {
        content(
            ms1,
            ContentError::Object {
                at,
                defect: ObjectDefect::Travels(kind),
            },
        )
    };
    let thread = object_bytes(ObjectKind::Thread as u16, 0, 4);
    assert_eq!(
        edited(b.clone(), |b| b[slot0..slot0 + 32].copy_from_slice(&thread)),
        travels(ObjectKind::Thread)
    );
    let ended = {
        let mut o = object_bytes(ObjectKind::Thread as u16, 5, 4);
        o[24..].copy_from_slice(&7i64.to_le_bytes());
        o
    };
    assert_eq!(
        edited(b.clone(), |b| b[slot0..slot0 + 32].copy_from_slice(&ended)),
        travels(ObjectKind::Thread)
    );
    let spawner = object_bytes(ObjectKind::ThreadSpawner as u16, 0, 0);
    let e = edited(b.clone(), |b| {
        b[slot0..slot0 + 32].copy_from_slice(&spawner)
    });
    assert_eq!(e, travels(ObjectKind::ThreadSpawner));
    assert_eq!(
        e.to_string(),
        format!(
            "section {} (MESSAGES of process 1): carried handle 0 of message 1 of process 1: a thread spawner object cannot travel in a message",
            ms1.index
        )
    );
}
