//! Host tests of the block protocol: every message round-trips, every malformed field is refused
//! with its error, and no byte string (random, or a valid message mutated) makes decoding panic.
use blkproto::*;
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

fn sectors(n: usize, seed: u8) -> Vec<u8> {
    (0..n * SECTOR_SIZE)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn requests_round_trip() {
    let data = sectors(64, 7);
    let reqs = [
        Request::Read {
            id: 1,
            sector: 0,
            count: 1,
        },
        Request::Read {
            id: u32::MAX,
            sector: u64::MAX,
            count: MAX_SECTORS,
        },
        Request::Write {
            id: 3,
            sector: 12345,
            data: &data[..512],
        },
        Request::Write {
            id: 4,
            sector: 9,
            data: &data,
        },
        Request::Flush { id: 5 },
        Request::Capacity { id: 6 },
    ];
    for r in reqs {
        let bytes = enc_req(&r);
        assert_eq!(Request::decode(&bytes), Ok(r));
        assert_eq!(peek_id(&bytes), Some(r.id()));
    }
}

#[test]
fn header_layout_is_little_endian() {
    let bytes = enc_req(&Request::Read {
        id: 0x0403_0201,
        sector: 0x0c0b_0a09_0807_0605,
        count: 2,
    });
    assert_eq!(
        bytes,
        [
            MAGIC, VERSION, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2, 0, 0, 0, 0, 0, 0, 0
        ]
    );
    let cap = enc_rep(&Reply::Capacity {
        id: 9,
        result: Ok(131072),
    });
    assert_eq!(&cap[..4], &[MAGIC, VERSION, 0x84, 0]);
    assert_eq!(&cap[8..16], &131072u64.to_le_bytes());
    let err = enc_rep(&Reply::Write {
        id: 9,
        result: Err(Error::ReadOnly),
    });
    assert_eq!(&err[2..4], &[0x82, 4]);
}

#[test]
fn replies_round_trip() {
    let data = sectors(3, 1);
    let mut reps = vec![
        Reply::Read {
            id: 1,
            result: Ok(&data),
        },
        Reply::Write {
            id: 2,
            result: Ok(()),
        },
        Reply::Flush {
            id: 3,
            result: Ok(()),
        },
        Reply::Capacity {
            id: 4,
            result: Ok(u64::MAX),
        },
    ];
    for e in [
        Error::Io,
        Error::OutOfRange,
        Error::BadRequest,
        Error::ReadOnly,
        Error::Unsupported,
        Error::TooBig,
    ] {
        assert!(!e.as_str().is_empty());
        reps.push(Reply::Read {
            id: 5,
            result: Err(e),
        });
        reps.push(Reply::Write {
            id: 6,
            result: Err(e),
        });
        reps.push(Reply::Flush {
            id: 7,
            result: Err(e),
        });
        reps.push(Reply::Capacity {
            id: 8,
            result: Err(e),
        });
        reps.push(Reply::Rejected { id: 9, error: e });
    }
    for r in reps {
        let bytes = enc_rep(&r);
        assert_eq!(Reply::decode(&bytes), Ok(r), "{r:?}");
        // A reply is never mistaken for a request, nor the reverse.
        assert!(Request::decode(&bytes).is_err());
    }
    let req = enc_req(&Request::Flush { id: 1 });
    assert_eq!(Reply::decode(&req), Err(DecodeError::BadOp(3)));
}

#[test]
fn read_in_place_matches_encode() {
    let data = sectors(2, 3);
    let mut buf = vec![0; MAX_MESSAGE];
    buf[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(&data);
    let n = Reply::encode_read_in_place(&mut buf, 77, data.len()).unwrap();
    assert_eq!(
        &buf[..n],
        &enc_rep(&Reply::Read {
            id: 77,
            result: Ok(&data)
        })[..]
    );
    for bad in [0, 100, MAX_DATA + SECTOR_SIZE] {
        assert_eq!(
            Reply::encode_read_in_place(&mut buf, 1, bad),
            Err(EncodeError::BadData)
        );
    }
}

#[test]
fn write_in_place_matches_encode() {
    let data = sectors(5, 4);
    let mut buf = vec![0; MAX_MESSAGE];
    buf[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(&data);
    let n = Request::encode_write_in_place(&mut buf, 9, 1 << 40, data.len()).unwrap();
    let whole = Request::Write {
        id: 9,
        sector: 1 << 40,
        data: &data,
    };
    assert_eq!(&buf[..n], &enc_req(&whole)[..]);
    for bad in [0, 100, MAX_DATA + SECTOR_SIZE] {
        assert_eq!(
            Request::encode_write_in_place(&mut buf, 1, 0, bad),
            Err(EncodeError::BadData)
        );
    }
    let mut small = vec![0; HEADER_LEN + 100];
    assert_eq!(
        Request::encode_write_in_place(&mut small, 1, 0, SECTOR_SIZE),
        Err(EncodeError::BufferTooSmall)
    );
}

#[test]
fn encode_refuses_what_cannot_travel() {
    let mut buf = vec![0; MAX_MESSAGE];
    let big = vec![0; MAX_DATA + SECTOR_SIZE];
    for data in [&[][..], &[0; 100][..], &big[..]] {
        let w = Request::Write {
            id: 1,
            sector: 0,
            data,
        };
        assert_eq!(w.encode(&mut buf), Err(EncodeError::BadData));
    }
    for count in [0, MAX_SECTORS + 1] {
        let r = Request::Read {
            id: 1,
            sector: 0,
            count,
        };
        assert_eq!(r.encode(&mut buf), Err(EncodeError::BadData));
    }
    let mut small = [0; HEADER_LEN + 511];
    let w = Request::Write {
        id: 1,
        sector: 0,
        data: &[0; 512],
    };
    assert_eq!(w.encode(&mut small), Err(EncodeError::BufferTooSmall));
    assert_eq!(
        Request::Flush { id: 1 }.encode(&mut [0; HEADER_LEN - 1]),
        Err(EncodeError::BufferTooSmall)
    );
}

#[test]
fn malformed_requests_are_refused() {
    let good = enc_req(&Request::Write {
        id: 1,
        sector: 2,
        data: &[0; 1024],
    });
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        Request::decode(&b).map(|_| ())
    };
    assert_eq!(
        Request::decode(&good[..HEADER_LEN - 1]),
        Err(DecodeError::Truncated)
    );
    assert_eq!(with(&|b| b[0] = 0), Err(DecodeError::BadMagic));
    assert_eq!(with(&|b| b[1] = 2), Err(DecodeError::BadVersion(2)));
    assert_eq!(with(&|b| b[2] = 9), Err(DecodeError::BadOp(9)));
    assert_eq!(with(&|b| b[2] = 0x82), Err(DecodeError::BadOp(0x82)));
    assert_eq!(with(&|b| b[3] = 1), Err(DecodeError::BadStatus(1)));
    assert_eq!(with(&|b| b[21] = 1), Err(DecodeError::BadField));
    assert_eq!(
        with(&|b| b.truncate(b.len() - 1)),
        Err(DecodeError::BadLength)
    );
    assert_eq!(with(&|b| b.push(0)), Err(DecodeError::BadLength));
    assert_eq!(with(&|b| b[16] = 0), Err(DecodeError::BadField));
    assert_eq!(
        with(&|b| b[16] = MAX_SECTORS as u8 + 1),
        Err(DecodeError::TooBig)
    );
    assert_eq!(
        with(&|b| b[16..20].copy_from_slice(&u32::MAX.to_le_bytes())),
        Err(DecodeError::TooBig)
    );
    // A read request carries no data and asks for 1 ..= MAX_SECTORS.
    let read = enc_req(&Request::Read {
        id: 1,
        sector: 0,
        count: 1,
    });
    let mut r = read.clone();
    r.extend_from_slice(&[0; 512]);
    assert_eq!(Request::decode(&r), Err(DecodeError::BadLength));
    let mut r = read.clone();
    r[16] = 0;
    assert_eq!(Request::decode(&r), Err(DecodeError::BadField));
    // Flush and capacity have no sector, count or data.
    let flush = enc_req(&Request::Flush { id: 1 });
    let mut f = flush.clone();
    f[8] = 1;
    assert_eq!(Request::decode(&f), Err(DecodeError::BadField));
    let mut f = flush.clone();
    f.push(0);
    assert_eq!(Request::decode(&f), Err(DecodeError::BadLength));
    assert_eq!(DecodeError::TooBig.reply_error(), Error::TooBig);
    assert_eq!(DecodeError::BadOp(9).reply_error(), Error::Unsupported);
    assert_eq!(DecodeError::BadLength.reply_error(), Error::BadRequest);
    assert_eq!(peek_id(&good[..10]), None);
}

#[test]
fn malformed_replies_are_refused() {
    let ok = enc_rep(&Reply::Write {
        id: 1,
        result: Ok(()),
    });
    let mut b = ok.clone();
    b[3] = 200;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadStatus(200)));
    // A failed reply carries no data.
    let mut b = enc_rep(&Reply::Read {
        id: 1,
        result: Err(Error::Io),
    });
    b.extend_from_slice(&[0; 512]);
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadLength));
    // A rejection always names an error.
    let mut b = enc_rep(&Reply::Rejected {
        id: 1,
        error: Error::BadRequest,
    });
    b[3] = 0;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadStatus(0)));
    // A read reply's data matches its count.
    let mut b = enc_rep(&Reply::Read {
        id: 1,
        result: Ok(&[1; 1024]),
    });
    b[16] = 1;
    assert_eq!(Reply::decode(&b), Err(DecodeError::BadLength));
}

fn any_request(data: &[u8]) -> impl Strategy<Value = Request<'_>> {
    (0u8..4, any::<u32>(), any::<u64>(), 1u32..=MAX_SECTORS).prop_map(
        move |(k, id, sector, count)| match k {
            0 => Request::Read { id, sector, count },
            1 => Request::Write {
                id,
                sector,
                data: &data[..count as usize * SECTOR_SIZE],
            },
            2 => Request::Flush { id },
            _ => Request::Capacity { id },
        },
    )
}

static DATA: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| sectors(MAX_SECTORS as usize, 42));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::decode(&bytes);
        let _ = Reply::decode(&bytes);
        let _ = peek_id(&bytes);
    }

    #[test]
    fn random_headers_never_panic(
        head in proptest::collection::vec(any::<u8>(), HEADER_LEN),
        tail in 0usize..MAX_DATA + 2048,
        count_small in 0u32..70,
    ) {
        // Valid magic and version so decoding reaches the field checks.
        let mut b = head;
        b[0] = MAGIC;
        b[1] = VERSION;
        b[16..20].copy_from_slice(&count_small.to_le_bytes());
        b.resize(HEADER_LEN + tail, 0);
        if let Ok(r) = Request::decode(&b) {
            // Whatever decodes encodes back to the same bytes.
            prop_assert_eq!(enc_req(&r), b.clone());
        }
        if let Ok(r) = Reply::decode(&b) {
            prop_assert_eq!(enc_rep(&r), b);
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        req in any_request(&DATA),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut b = enc_req(&req);
        prop_assert_eq!(Request::decode(&b), Ok(req));
        for (at, v) in flips {
            let i = at % b.len();
            b[i] = v;
        }
        let b = &b[..b.len() - cut % 3.min(b.len())];
        if let Ok(r) = Request::decode(b) {
            prop_assert_eq!(enc_req(&r), b.to_vec());
        }
        let _ = Reply::decode(b);
    }
}

/// A small deterministic generator, so the mass test below needs no seed file.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn a_million_mutated_messages_never_panic() {
    let data = sectors(64, 9);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut seeds = vec![
        enc_req(&Request::Write {
            id: 1,
            sector: 5,
            data: &data[..2048],
        }),
        enc_req(&Request::Read {
            id: 2,
            sector: 5,
            count: 8,
        }),
        enc_req(&Request::Capacity { id: 3 }),
        enc_rep(&Reply::Read {
            id: 4,
            result: Ok(&data[..1024]),
        }),
        enc_rep(&Reply::Rejected {
            id: 5,
            error: Error::BadRequest,
        }),
    ];
    let mut accepted = 0;
    for i in 0..1_000_000u32 {
        let mut b = seeds[i as usize % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % b.len() as u64) as usize;
            // Mutate the header far more often than the data, where checks live.
            let at = if rng.next().is_multiple_of(4) {
                at
            } else {
                at % HEADER_LEN
            };
            b[at] = rng.next() as u8;
        }
        match rng.next() % 8 {
            0 => b.truncate((rng.next() % b.len() as u64) as usize),
            1 => b.extend_from_slice(&[0; 512]),
            _ => {}
        }
        if let Ok(r) = Request::decode(&b) {
            assert_eq!(enc_req(&r), b);
            accepted += 1;
        }
        if let Ok(r) = Reply::decode(&b) {
            assert_eq!(enc_rep(&r), b);
            accepted += 1;
        }
        if i.is_multiple_of(100_000) {
            // Keep an accepted mutant as a seed: mutations of mutations reach further.
            if Request::decode(&b).is_ok() || Reply::decode(&b).is_ok() {
                seeds.push(b);
            }
        }
    }
    // Mutating ids and sectors keeps messages valid, so some must survive.
    assert!(accepted > 1000, "only {accepted} mutants decoded");
}
