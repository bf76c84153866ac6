//! Host tests of the filesystem protocol: every message round-trips, paths are checked, every
//! malformed field is refused with its error, and no byte string (random, or a valid message
//! mutated) makes decoding panic.
use fsproto::*;
use proptest::prelude::*;

fn enc_req(r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0; MAX_MESSAGE];
    let n = r.encode(&mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

fn enc_rep(r: &Reply<'_>) -> Vec<u8> {
    let mut buf = vec![0; MAX_MESSAGE];
    let n = r.encode(&mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

const ALL_ERRORS: [Error; 14] = [
    Error::NotFound,
    Error::Exists,
    Error::NotADirectory,
    Error::IsADirectory,
    Error::NotEmpty,
    Error::NoSpace,
    Error::Io,
    Error::BadRequest,
    Error::NameTooLong,
    Error::BadPath,
    Error::InvalidName,
    Error::TooBig,
    Error::Corrupt,
    Error::Unsupported,
];

fn all_requests(data: &[u8]) -> Vec<Request<'_>> {
    vec![
        Request::Lookup { id: 1, path: "/" },
        Request::Stat {
            id: 2,
            path: "/sbin/init",
        },
        Request::Read {
            id: 3,
            path: "/a b/Ünïcode name.txt",
            offset: u64::MAX,
            len: MAX_DATA as u32,
        },
        Request::Write {
            id: 4,
            path: "/f",
            offset: 7,
            data,
        },
        Request::Write {
            id: 4,
            path: "/f",
            offset: 0,
            data: &[],
        },
        Request::Create {
            id: 5,
            path: "/new",
            flags: 0,
        },
        Request::Create {
            id: 5,
            path: "/new",
            flags: create::TRUNCATE,
        },
        Request::Mkdir { id: 6, path: "/d" },
        Request::Readdir {
            id: 7,
            path: "/d",
            cursor: 12,
        },
        Request::Remove { id: 8, path: "/d" },
        Request::Rename {
            id: 9,
            from: "/d/x",
            to: "/e/y",
        },
        Request::Fsync { id: 10 },
        Request::Truncate {
            id: 11,
            path: "/f",
            size: 1 << 40,
        },
    ]
}

#[test]
fn requests_round_trip() {
    let data: Vec<u8> = (0..MAX_DATA).map(|i| i as u8).collect();
    for r in all_requests(&data) {
        let b = enc_req(&r);
        assert_eq!(Request::decode(&b), Ok(r));
        assert_eq!(peek_id(&b), Some(r.id()));
        assert!(Reply::decode(&b).is_err(), "a request is not a reply");
    }
}

#[test]
fn messages_built_in_place_equal_the_encoded_ones() {
    let data: Vec<u8> = (0..MAX_DATA).map(|i| i as u8).collect();
    for len in [0, 1, 4096, MAX_DATA] {
        let d = &data[..len];
        // A write request: header and path, then the data put in place.
        let mut buf = vec![0; MAX_MESSAGE];
        let at = Request::encode_write_head(9, "/sys/a.img", 1 << 33, len, &mut buf).unwrap();
        buf[at..at + len].copy_from_slice(d);
        let whole = Request::Write {
            id: 9,
            path: "/sys/a.img",
            offset: 1 << 33,
            data: d,
        };
        assert_eq!(buf[..at + len], enc_req(&whole)[..]);
        // A read reply: the data first, then the header.
        let mut out = vec![0; MAX_MESSAGE];
        out[HEADER_LEN..HEADER_LEN + len].copy_from_slice(d);
        let n = Reply::encode_read_in_place(&mut out, 7, 5 << 20, len).unwrap();
        let whole = Reply::Read {
            id: 7,
            result: Ok((d, 5 << 20)),
        };
        assert_eq!(out[..n], enc_rep(&whole)[..]);
    }
    let mut small = vec![0; HEADER_LEN + 100];
    assert!(Request::encode_write_head(1, "/a", 0, 100, &mut small).is_err());
    assert!(Request::encode_write_head(1, "a", 0, 1, &mut [0; 64]).is_err());
    assert!(
        Request::encode_write_head(1, "/a", 0, MAX_DATA + 1, &mut vec![0; MAX_MESSAGE]).is_err()
    );
    assert!(Reply::encode_read_in_place(&mut small, 1, 0, 200).is_err());
    assert!(Reply::encode_read_in_place(&mut vec![0; MAX_MESSAGE], 1, 0, MAX_DATA + 1).is_err());
}

#[test]
fn set_id_renumbers_every_kind() {
    let data = [1u8, 2, 3];
    for mut r in all_requests(&data) {
        let op = r.op();
        r.set_id(0xdead_beef);
        assert_eq!(r.id(), 0xdead_beef);
        assert_eq!(r.op(), op, "only the id changes");
    }
}

#[test]
fn header_layout() {
    let b = enc_req(&Request::Rename {
        id: 0x0403_0201,
        from: "/ab",
        to: "/c",
    });
    assert_eq!(
        b,
        [
            MAGIC, VERSION, 9, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, 0, b'/',
            b'a', b'b', b'/', b'c'
        ]
    );
    let r = enc_rep(&Reply::Write {
        id: 1,
        result: Ok(0x1122),
    });
    assert_eq!(&r[2..4], &[0x84, 0]);
    assert_eq!(&r[8..10], &[0x22, 0x11]);
    let e = enc_rep(&Reply::Remove {
        id: 1,
        result: Err(Error::NotEmpty),
    });
    assert_eq!(&e[2..4], &[0x88, 5]);
}

fn all_replies<'a>(data: &'a [u8], page: DirPage<'a>) -> Vec<Reply<'a>> {
    let stat = Stat {
        kind: Kind::File,
        size: 1 << 33,
        read_only: true,
        modified: Time {
            year: 2107,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
        },
    };
    let mut v = vec![
        Reply::Lookup {
            id: 1,
            result: Ok(Kind::Dir),
        },
        Reply::Stat {
            id: 2,
            result: Ok(stat),
        },
        Reply::Read {
            id: 3,
            result: Ok((data, 99)),
        },
        Reply::Read {
            id: 3,
            result: Ok((&[], 0)),
        },
        Reply::Write {
            id: 4,
            result: Ok(u64::MAX),
        },
        Reply::Create {
            id: 5,
            result: Ok(()),
        },
        Reply::Mkdir {
            id: 6,
            result: Ok(()),
        },
        Reply::Readdir {
            id: 7,
            result: Ok(page),
        },
        Reply::Remove {
            id: 8,
            result: Ok(()),
        },
        Reply::Rename {
            id: 9,
            result: Ok(()),
        },
        Reply::Fsync {
            id: 10,
            result: Ok(()),
        },
        Reply::Truncate {
            id: 11,
            result: Ok(()),
        },
    ];
    for (i, e) in ALL_ERRORS.into_iter().enumerate() {
        let req = all_requests(&[])[i % 13];
        v.push(Reply::error_for(req.op(), req.id(), e));
        v.push(Reply::Rejected { id: 0, error: e });
    }
    v
}

#[test]
fn replies_round_trip() {
    let data = vec![0xA5; 1000];
    let mut buf = vec![0; MAX_DATA];
    let mut w = DirPageWriter::new(&mut buf);
    assert_eq!(w.push("sbin", Kind::Dir, 0), Ok(true));
    assert_eq!(w.push("A long name.txt", Kind::File, 12345), Ok(true));
    let page = w.page(2);
    for r in all_replies(&data, page) {
        let b = enc_rep(&r);
        assert_eq!(Reply::decode(&b), Ok(r), "{r:?}");
        assert!(Request::decode(&b).is_err());
        assert_eq!(r.error().is_some(), b[3] != 0);
    }
    for e in ALL_ERRORS {
        assert!(!e.as_str().is_empty());
    }
}

#[test]
fn directory_pages() {
    let mut buf = vec![0; 100];
    let mut w = DirPageWriter::new(&mut buf);
    assert_eq!(w.push("", Kind::File, 0), Err(EncodeError::BadValue));
    assert_eq!(w.push("a/b", Kind::File, 0), Err(EncodeError::BadValue));
    assert_eq!(w.push("..", Kind::Dir, 0), Err(EncodeError::BadValue));
    let mut pushed = 0;
    while w.push("twenty-byte-name-xyz", Kind::File, pushed).unwrap() {
        pushed += 1;
    }
    // 31 bytes each: three fit in 100.
    assert_eq!((pushed, w.count()), (3, 3));
    let b = enc_rep(&Reply::Readdir {
        id: 1,
        result: Ok(w.page(END_CURSOR)),
    });
    let Ok(Reply::Readdir { result: Ok(p), .. }) = Reply::decode(&b) else {
        panic!("page does not decode")
    };
    assert!(p.is_last());
    assert_eq!(p.len(), 3);
    let sizes: Vec<u64> = p.entries().map(|e| e.size).collect();
    assert_eq!(sizes, [0, 1, 2]);
    assert!(
        p.entries()
            .all(|e| e.name == "twenty-byte-name-xyz" && e.kind == Kind::File)
    );
    // A count that disagrees with the entries, or a bad entry, is refused.
    let mut bad = b.clone();
    bad[16] = 4;
    assert_eq!(Reply::decode(&bad), Err(DecodeError::BadLength));
    let mut bad = b.clone();
    bad[HEADER_LEN + 10] = 3;
    assert_eq!(Reply::decode(&bad), Err(DecodeError::BadField));
    let mut bad = b.clone();
    bad[HEADER_LEN + 11] = b'/';
    assert_eq!(Reply::decode(&bad), Err(DecodeError::BadField));
    let mut bad = b;
    bad.pop();
    assert_eq!(Reply::decode(&bad), Err(DecodeError::BadField));
}

#[test]
fn path_rules() {
    for good in ["/", "/a", "/a/b c/ü", "/.hidden", "/a..b", "/..."] {
        assert_eq!(path::check(good), Ok(()), "{good}");
    }
    for bad in [
        "", "a", "a/b", "//", "/a/", "/a//b", "/.", "/a/..", "/a/./b", "/a\0b",
    ] {
        assert_eq!(path::check(bad), Err(Error::BadPath), "{bad:?}");
    }
    let long_name = format!("/{}", "n".repeat(path::MAX_NAME + 1));
    assert_eq!(path::check(&long_name), Err(Error::NameTooLong));
    let ok_name = format!("/{}", "n".repeat(path::MAX_NAME));
    assert_eq!(path::check(&ok_name), Ok(()));
    let long_path = "/abcdefg".repeat(path::MAX_PATH / 8 + 1);
    assert_eq!(path::check(&long_path), Err(Error::NameTooLong));
    assert_eq!(path::split_last("/"), None);
    assert_eq!(path::split_last("/a"), Some(("/", "a")));
    assert_eq!(path::split_last("/a/b/c"), Some(("/a/b", "c")));
    assert_eq!(path::components("/a/b").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(path::components("/").count(), 0);
}

#[test]
fn encode_refuses_bad_values() {
    let mut buf = vec![0; MAX_MESSAGE];
    let big = vec![0; MAX_DATA + 1];
    let bad = [
        Request::Lookup { id: 1, path: "rel" },
        Request::Rename {
            id: 1,
            from: "/a",
            to: "/b/../c",
        },
        Request::Read {
            id: 1,
            path: "/a",
            offset: 0,
            len: MAX_DATA as u32 + 1,
        },
        Request::Write {
            id: 1,
            path: "/a",
            offset: 0,
            data: &big,
        },
        Request::Create {
            id: 1,
            path: "/a",
            flags: 2,
        },
    ];
    for r in bad {
        assert_eq!(r.encode(&mut buf), Err(EncodeError::BadValue), "{r:?}");
    }
    assert_eq!(
        Request::Lookup {
            id: 1,
            path: "/abc"
        }
        .encode(&mut buf[..HEADER_LEN + 3]),
        Err(EncodeError::BufferTooSmall)
    );
    assert_eq!(
        Reply::Read {
            id: 1,
            result: Ok((&big, 0))
        }
        .encode(&mut buf),
        Err(EncodeError::BadValue)
    );
}

#[test]
fn malformed_requests_are_refused() {
    let good = enc_req(&Request::Write {
        id: 1,
        path: "/f",
        offset: 0,
        data: b"hello",
    });
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        Request::decode(&b).map(|_| ())
    };
    assert_eq!(Request::decode(&good[..5]), Err(DecodeError::Truncated));
    assert_eq!(with(&|b| b[0] = 0), Err(DecodeError::BadMagic));
    assert_eq!(with(&|b| b[1] = 9), Err(DecodeError::BadVersion(9)));
    assert_eq!(with(&|b| b[2] = 0), Err(DecodeError::BadOp(0)));
    assert_eq!(with(&|b| b[2] = 12), Err(DecodeError::BadOp(12)));
    assert_eq!(with(&|b| b[3] = 2), Err(DecodeError::BadStatus(2)));
    assert_eq!(with(&|b| b.push(0)), Err(DecodeError::BadLength));
    assert_eq!(with(&|b| b[16] = 4), Err(DecodeError::BadLength));
    assert_eq!(with(&|b| b[18] = 1), Err(DecodeError::TooBig));
    assert_eq!(with(&|b| b[20] = 200), Err(DecodeError::BadLength));
    assert_eq!(with(&|b| b[22] = 1), Err(DecodeError::BadLength));
    assert_eq!(
        with(&|b| b[24] = b'f'),
        Err(DecodeError::Path(Error::BadPath))
    );
    assert_eq!(
        with(&|b| b[25] = 0xff),
        Err(DecodeError::Path(Error::BadPath))
    );
    // Fields an operation does not use must be zero.
    let mut b = enc_req(&Request::Mkdir { id: 1, path: "/d" });
    b[8] = 1;
    assert_eq!(Request::decode(&b), Err(DecodeError::BadField));
    let mut b = enc_req(&Request::Create {
        id: 1,
        path: "/d",
        flags: 0,
    });
    b[16] = 2;
    assert_eq!(Request::decode(&b), Err(DecodeError::BadField));
    let mut b = enc_req(&Request::Fsync { id: 1 });
    b.push(b'/');
    b[20] = 1;
    assert_eq!(Request::decode(&b), Err(DecodeError::BadLength));
    let mut b = enc_req(&Request::Read {
        id: 1,
        path: "/f",
        offset: 0,
        len: 1,
    });
    b.push(0);
    assert_eq!(Request::decode(&b), Err(DecodeError::BadLength));
    // A too-long path in a request becomes the NameTooLong answer.
    let long = format!("/{}", "x".repeat(path::MAX_NAME + 1));
    let mut b = enc_req(&Request::Lookup { id: 1, path: "/x" });
    b.truncate(HEADER_LEN);
    b[20..22].copy_from_slice(&(long.len() as u16).to_le_bytes());
    b.extend_from_slice(long.as_bytes());
    let e = Request::decode(&b).unwrap_err();
    assert_eq!(e, DecodeError::Path(Error::NameTooLong));
    assert_eq!(e.reply_error(), Error::NameTooLong);
    assert_eq!(DecodeError::BadOp(99).reply_error(), Error::Unsupported);
    assert_eq!(DecodeError::BadMagic.reply_error(), Error::BadRequest);
}

#[test]
fn malformed_replies_are_refused() {
    let mut b = enc_rep(&Reply::Lookup {
        id: 1,
        result: Ok(Kind::File),
    });
    b[8] = 3;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadField));
    let stat = Stat {
        kind: Kind::Dir,
        size: 0,
        read_only: false,
        modified: Time::default(),
    };
    let good = enc_rep(&Reply::Stat {
        id: 1,
        result: Ok(stat),
    });
    for (at, v) in [
        (HEADER_LEN + 10, 13),
        (HEADER_LEN + 12, 24),
        (HEADER_LEN + 16, 2),
    ] {
        let mut b = good.clone();
        b[at] = v;
        assert_eq!(Reply::decode(&b), Err(DecodeError::BadField));
    }
    let mut b = enc_rep(&Reply::Rejected {
        id: 1,
        error: Error::BadRequest,
    });
    b[3] = 0;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadStatus(0)));
    let mut b = enc_rep(&Reply::Read {
        id: 1,
        result: Err(Error::Io),
    });
    b.push(1);
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadLength));
}

static DATA: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| (0..4096u32).map(|i| (i * 7) as u8).collect());

/// The path rules as first written (split into components): `path::check` must agree.
fn check_by_split(path: &str) -> Result<(), Error> {
    if path.len() > path::MAX_PATH {
        return Err(Error::NameTooLong);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Error::BadPath);
    };
    if rest.is_empty() {
        return Ok(());
    }
    for c in rest.split('/') {
        if c.is_empty() || c == "." || c == ".." || c.contains('\0') {
            return Err(Error::BadPath);
        }
        if c.len() > path::MAX_NAME {
            return Err(Error::NameTooLong);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn path_check_agrees_with_the_rules(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("/".to_string()),
                Just(".".to_string()),
                Just("\0".to_string()),
                Just("é".to_string()),
                "[a-z]{1,8}",
                (700usize..800).prop_map(|n| "x".repeat(n)),
            ],
            0..12,
        )
    ) {
        let p: String = parts.concat();
        prop_assert_eq!(path::check(&p), check_by_split(&p), "{:?}", p);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(&bytes);
        if let Ok(Reply::Readdir { result: Ok(p), .. }) = Reply::decode(&bytes) {
            prop_assert_eq!(p.entries().count(), p.len());
        }
        let _ = peek_id(&bytes);
    }

    #[test]
    fn random_paths_are_checked(p in "(/[a-z.\\x00/]{0,4}){0,4}") {
        // Whatever the check accepts encodes and decodes back to itself.
        if path::check(&p).is_ok() {
            let b = enc_req(&Request::Stat { id: 1, path: &p });
            prop_assert_eq!(Request::decode(&b), Ok(Request::Stat { id: 1, path: &p }));
        } else {
            let r = Request::Stat { id: 1, path: &p }.encode(&mut [0; 64]);
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..40,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in 0usize..4,
    ) {
        let mut buf = vec![0; 400];
        let mut w = DirPageWriter::new(&mut buf);
        for n in ["a", "bb", "ccc"] {
            w.push(n, Kind::File, 1).unwrap();
        }
        let reqs = all_requests(&DATA[..100]);
        let reps = all_replies(&DATA[..50], w.page(3));
        let mut b = if which < reqs.len() {
            enc_req(&reqs[which])
        } else {
            enc_rep(&reps[which % reps.len()])
        };
        for (at, v) in flips {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(b.len().saturating_sub(cut));
        if let Ok(r) = Request::decode(&b) {
            prop_assert_eq!(enc_req(&r), b.clone());
        }
        if let Ok(r) = Reply::decode(&b) {
            prop_assert_eq!(enc_rep(&r), b);
        }
    }
}
