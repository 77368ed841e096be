//! The VXLAN header of RFC 7348 §5, as a zero-copy view over bytes plus a plain `Repr`.
//!
//! This module owns the 8-byte VXLAN header only. The outer Ethernet, IPv4 and UDP
//! headers are etherparse's business (see `encap`), and nothing here allocates.
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;

/// A 24-bit VXLAN Network Identifier. The 24-bit bound is checked at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI that fits in 24 bits.
    pub const MAX: u32 = 0x00ff_ffff;

    /// A VNI, or `None` when `value` does not fit in 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= Self::MAX {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// The VNI as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a receiver does with reserved bits that are set.
///
/// RFC 7348 §5 says reserved fields "MUST be set to zero on transmission and ignored on
/// receipt". The Linux `vxlan` driver is stricter: without a negotiated extension
/// (GBP, GPE, RCO) it drops a frame whose unknown flag or reserved bits are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReservedBits {
    /// Ignore them, as RFC 7348 says.
    #[default]
    Ignore,
    /// Drop the frame, as the Linux kernel does.
    Drop,
}

/// Why a VXLAN header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer than 8 bytes.
    #[error("VXLAN header truncated")]
    Truncated,
    /// The I flag (valid VNI) is not set: RFC 7348 §5 requires it.
    #[error("VXLAN I flag not set")]
    NoVniFlag,
    /// A reserved bit is set and the policy is `ReservedBits::Drop`.
    #[error("VXLAN reserved bits set")]
    ReservedBits,
}

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Field = 1..4;
    pub const VNI: Field = 4..7;
    pub const RESERVED2: usize = 7;
}

/// Length of the VXLAN header in bytes.
pub const HEADER_LEN: usize = field::RESERVED2 + 1;

/// The I flag: "the VNI is valid" (RFC 7348 §5).
pub const FLAG_I: u8 = 0x08;

/// A view of a VXLAN header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wrap a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wrap a buffer after checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Ensure no getter can panic.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Give the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag is set.
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24 reserved bits after the flags.
    pub fn reserved1(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::RESERVED1];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The 8 reserved bits after the VNI.
    pub fn reserved2(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED2]
    }

    /// Whether any reserved bit, in the flags or the reserved fields, is set.
    pub fn has_reserved_bits(&self) -> bool {
        self.flags() & !FLAG_I != 0 || self.reserved1() != 0 || self.reserved2() != 0
    }

    /// The VNI field.
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    /// What follows the header: the inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Set the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Set the 24 reserved bits after the flags (the top byte of `value` is ignored).
    pub fn set_reserved1(&mut self, value: u32) {
        let b = value.to_be_bytes();
        self.buffer.as_mut()[field::RESERVED1].copy_from_slice(&b[1..]);
    }

    /// Set the 8 reserved bits after the VNI.
    pub fn set_reserved2(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED2] = value;
    }

    /// Set the VNI field.
    pub fn set_vni(&mut self, vni: Vni) {
        let b = vni.0.to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&b[1..]);
    }
}

/// A parsed VXLAN header.
///
/// The I flag is implied: a header without it does not parse. The other flag bits and the
/// reserved fields are kept as received (under `ReservedBits::Ignore` they may be
/// non-zero); `HeaderRepr::new` makes them zero, as RFC 7348 §5 requires of a sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRepr {
    /// The network the inner frame belongs to.
    pub vni: Vni,
    /// The flag bits other than I (the R bits of RFC 7348 §5).
    pub reserved_flags: u8,
    /// The 24 reserved bits after the flags.
    pub reserved1: u32,
    /// The 8 reserved bits after the VNI.
    pub reserved2: u8,
}

impl HeaderRepr {
    /// A header for sending: the VNI, every reserved bit zero.
    pub const fn new(vni: Vni) -> HeaderRepr {
        HeaderRepr {
            vni,
            reserved_flags: 0,
            reserved1: 0,
            reserved2: 0,
        }
    }

    /// Validate a header under a reserved-bits policy.
    pub fn parse<T: AsRef<[u8]>>(
        header: &Header<T>,
        reserved: ReservedBits,
    ) -> Result<HeaderRepr, Error> {
        header.check_len()?;
        if !header.i_flag() {
            return Err(Error::NoVniFlag);
        }
        if reserved == ReservedBits::Drop && header.has_reserved_bits() {
            return Err(Error::ReservedBits);
        }
        Ok(HeaderRepr {
            vni: header.vni(),
            reserved_flags: header.flags() & !FLAG_I,
            reserved1: header.reserved1(),
            reserved2: header.reserved2(),
        })
    }

    /// Bytes needed to emit this header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header: the I flag, the VNI and the reserved fields as they are in the
    /// `Repr` (all zero for one made by `new`, as a sender must).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        header.set_flags(FLAG_I | self.reserved_flags);
        header.set_reserved1(self.reserved1);
        header.set_vni(self.vni);
        header.set_reserved2(self.reserved2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_refuses_more_than_24_bits() {
        assert_eq!(Vni::new(0x0100_0000), None);
        assert_eq!(Vni::new(Vni::MAX).map(Vni::get), Some(0x00ff_ffff));
    }

    #[test]
    fn emitted_header_has_i_flag_and_zero_reserved_bits() {
        let mut buf = [0xffu8; HEADER_LEN];
        let mut header = Header::new_unchecked(&mut buf[..]);
        HeaderRepr::new(Vni::new(4097).unwrap()).emit(&mut header);
        assert_eq!(buf, [0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0]);
    }

    #[test]
    fn frame_without_i_flag_is_refused() {
        let buf = [0x00u8, 0, 0, 0, 0, 0x10, 0x01, 0];
        let header = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(
            HeaderRepr::parse(&header, ReservedBits::Ignore),
            Err(Error::NoVniFlag)
        );
    }

    #[test]
    fn reserved_bits_are_ignored_by_rfc_policy_and_dropped_by_linux_policy() {
        let buf = [0x88u8, 0, 1, 0, 0, 0x10, 0x01, 7];
        let header = Header::new_checked(&buf[..]).unwrap();
        let repr = HeaderRepr::parse(&header, ReservedBits::Ignore).unwrap();
        assert_eq!(repr.vni.get(), 4097);
        assert_eq!(
            (repr.reserved_flags, repr.reserved1, repr.reserved2),
            (0x80, 0x100, 7)
        );
        assert_eq!(
            HeaderRepr::parse(&header, ReservedBits::Drop),
            Err(Error::ReservedBits)
        );
    }

    #[test]
    fn short_buffer_is_truncated() {
        assert!(matches!(
            Header::new_checked(&[0x08u8, 0, 0][..]),
            Err(Error::Truncated)
        ));
    }
}
