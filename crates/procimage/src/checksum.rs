//! The image's checksum: CRC-32C (Castagnoli, reflected, initial value and final XOR all ones:
//! the iSCSI / ext4 CRC). [`crc32c`] is the portable implementation (the `crc` crate, 16 tables);
//! a reader or writer that has a faster one of the same function (the kernel uses the SSE 4.2
//! `crc32` instruction) passes it as a [`Crc32c`] to [`crate::ImageBuilder::write_with`] and
//! [`crate::Image::parse_with`].

/// A function computing CRC-32C over a byte slice; it must agree with [`crc32c`] on every input.
pub type Crc32c = fn(&[u8]) -> u32;

const CASTAGNOLI: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// CRC-32C of `bytes`, in portable code.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_the_standard() {
        // The catalogue's check value for CRC-32/ISCSI.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
