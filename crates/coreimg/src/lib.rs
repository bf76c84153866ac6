//! The compressed-core container: what the boot stub carries and decompresses.
//!
//! Layout (little-endian), specified in `docs/boot.md`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MOXCORE1` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | flags (0) |
//! | 16 | 8 | compressed length |
//! | 24 | 8 | uncompressed length |
//! | 32 | 4 | CRC-32 of the compressed bytes |
//! | 36 | 4 | CRC-32 of the uncompressed bytes |
//! | 40 | … | LZ4 block-format payload |
//!
//! Unpacking checks every field before it trusts it and checks both CRCs, so a corrupt core is
//! always reported, never run: LZ4 alone would decode many corruptions into plausible garbage.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "pack")]
extern crate alloc;

/// The magic at offset 0.
pub const MAGIC: [u8; 8] = *b"MOXCORE1";
/// The only version this code reads and writes.
pub const VERSION: u32 = 1;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 40;

/// A parsed, bounds-checked header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of LZ4 payload after the header.
    pub compressed_len: u64,
    /// Bytes the payload decompresses to.
    pub uncompressed_len: u64,
    /// CRC-32 of the payload.
    pub compressed_crc: u32,
    /// CRC-32 of the decompressed core.
    pub uncompressed_crc: u32,
}

/// Why a core image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// Shorter than the header, or than the length the header states.
    Truncated {
        /// Bytes needed.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// The magic is not `MOXCORE1`.
    BadMagic,
    /// A version this stub does not read.
    BadVersion(u32),
    /// The payload's checksum does not match the header.
    CompressedCrc {
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The LZ4 payload does not decode.
    Decompress,
    /// It decoded to another length than the header states.
    WrongLength {
        /// From the header.
        expected: u64,
        /// Decoded.
        actual: u64,
    },
    /// The decoded core's checksum does not match the header.
    UncompressedCrc {
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The output buffer is smaller than the uncompressed length.
    OutputTooSmall,
}

impl core::fmt::Display for CoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            CoreError::Truncated { need, have } => {
                write!(f, "truncated: {have} bytes present, {need} needed")
            }
            CoreError::BadMagic => write!(f, "bad magic (not a moxie core image)"),
            CoreError::BadVersion(v) => write!(f, "format version {v}, this stub reads {VERSION}"),
            CoreError::CompressedCrc { expected, actual } => write!(
                f,
                "compressed payload CRC-32 is {actual:#010x}, header says {expected:#010x}"
            ),
            CoreError::Decompress => write!(f, "LZ4 payload does not decode"),
            CoreError::WrongLength { expected, actual } => {
                write!(f, "decoded {actual} bytes, header says {expected}")
            }
            CoreError::UncompressedCrc { expected, actual } => write!(
                f,
                "decoded core CRC-32 is {actual:#010x}, header says {expected:#010x}"
            ),
            CoreError::OutputTooSmall => write!(f, "output buffer smaller than the core"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    /// Parses the header and returns it with the payload it announces.
    pub fn parse(image: &[u8]) -> Result<(Header, &[u8]), CoreError> {
        if image.len() < HEADER_LEN {
            return Err(CoreError::Truncated {
                need: HEADER_LEN as u64,
                have: image.len() as u64,
            });
        }
        if image[..8] != MAGIC {
            return Err(CoreError::BadMagic);
        }
        let version = u32_at(image, 8);
        if version != VERSION {
            return Err(CoreError::BadVersion(version));
        }
        let h = Header {
            compressed_len: u64_at(image, 16),
            uncompressed_len: u64_at(image, 24),
            compressed_crc: u32_at(image, 32),
            uncompressed_crc: u32_at(image, 36),
        };
        let have = (image.len() - HEADER_LEN) as u64;
        if h.compressed_len > have {
            return Err(CoreError::Truncated {
                need: h.compressed_len.saturating_add(HEADER_LEN as u64),
                have: image.len() as u64,
            });
        }
        Ok((
            h,
            &image[HEADER_LEN..HEADER_LEN + h.compressed_len as usize],
        ))
    }
}

/// Verifies `image` and decompresses it into `out`; returns the core's length.
pub fn unpack_into(image: &[u8], out: &mut [u8]) -> Result<usize, CoreError> {
    let (h, payload) = Header::parse(image)?;
    let actual = crc32fast::hash(payload);
    if actual != h.compressed_crc {
        return Err(CoreError::CompressedCrc {
            expected: h.compressed_crc,
            actual,
        });
    }
    if (out.len() as u64) < h.uncompressed_len {
        return Err(CoreError::OutputTooSmall);
    }
    let out = &mut out[..h.uncompressed_len as usize];
    let n = lz4_flex::block::decompress_into(payload, out).map_err(|_| CoreError::Decompress)?;
    if n as u64 != h.uncompressed_len {
        return Err(CoreError::WrongLength {
            expected: h.uncompressed_len,
            actual: n as u64,
        });
    }
    let actual = crc32fast::hash(out);
    if actual != h.uncompressed_crc {
        return Err(CoreError::UncompressedCrc {
            expected: h.uncompressed_crc,
            actual,
        });
    }
    Ok(n)
}

/// Compresses a core ELF into a container (host side).
#[cfg(feature = "pack")]
pub fn pack(core: &[u8]) -> alloc::vec::Vec<u8> {
    let payload = lz4_flex::block::compress(core);
    let mut out = alloc::vec::Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&(core.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(core).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(all(test, feature = "pack"))]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn sample() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn round_trip() {
        let core = sample();
        let img = pack(&core);
        assert!(img.len() < core.len(), "sample data should compress");
        let mut out = vec![0u8; core.len()];
        assert_eq!(unpack_into(&img, &mut out), Ok(core.len()));
        assert_eq!(out, core);
    }

    #[test]
    fn every_refusal_has_its_error() {
        let core = sample();
        let img = pack(&core);
        let mut out = vec![0u8; core.len()];
        assert!(matches!(
            unpack_into(&img[..10], &mut out),
            Err(CoreError::Truncated { .. })
        ));
        assert!(matches!(
            unpack_into(&img[..img.len() - 1], &mut out),
            Err(CoreError::Truncated { .. })
        ));
        let mut bad = img.clone();
        bad[0] ^= 1;
        assert_eq!(unpack_into(&bad, &mut out), Err(CoreError::BadMagic));
        let mut bad = img.clone();
        bad[8] = 9;
        assert_eq!(unpack_into(&bad, &mut out), Err(CoreError::BadVersion(9)));
        let mut bad = img.clone();
        let mid = HEADER_LEN + (img.len() - HEADER_LEN) / 2;
        bad[mid] ^= 0x40;
        assert!(matches!(
            unpack_into(&bad, &mut out),
            Err(CoreError::CompressedCrc { .. })
        ));
        let mut small = vec![0u8; core.len() - 1];
        assert_eq!(
            unpack_into(&img, &mut small),
            Err(CoreError::OutputTooSmall)
        );
        // A wrong uncompressed CRC in the header is caught after decoding.
        let mut bad = img.clone();
        bad[36] ^= 1;
        assert!(matches!(
            unpack_into(&bad, &mut out),
            Err(CoreError::UncompressedCrc { .. })
        ));
        let msg = std::format!("{}", CoreError::BadVersion(9));
        assert!(msg.contains("version 9"));
    }

    proptest! {
        /// No mutation of a valid image makes unpacking panic or report success with other bytes.
        #[test]
        fn mutations_never_panic_or_lie(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
            let core: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 13) as u8).collect();
            let mut img = pack(&core);
            for (at, x) in flips {
                let n = img.len();
                img[at % n] ^= x;
            }
            let mut out = vec![0u8; 8192];
            if let Ok(n) = unpack_into(&img, &mut out) {
                prop_assert_eq!(&out[..n], &core[..]);
            }
        }
    }
}
