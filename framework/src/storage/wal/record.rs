//! Record framing: every WAL record, the hard-state file and the snapshot metadata are one
//! record each.
//!
//! ```text
//!  0        4        8        12                 12 + len
//!  ├────────┼────────┼────────┼──────────────────┤
//!  │  len   │  crc   │  hcrc  │  payload (len)   │
//!  └────────┴────────┴────────┴──────────────────┘
//!  len   u32 LE  payload bytes
//!  crc   u32 LE  CRC-32C of the payload
//!  hcrc  u32 LE  CRC-32C of bytes 0..8: a length damaged in place is caught before it is
//!                trusted (it would otherwise pass for a torn tail and hide the records after it)
//! ```

use super::crc::crc32c;

/// Bytes before the payload.
pub(crate) const HEADER_BYTES: usize = 12;

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    /// The file ends inside the header, or inside the payload the header announces.
    Truncated,
    /// The header's own checksum does not match.
    HeaderChecksum,
    /// The header is intact but the payload's checksum does not match. `end` is where the
    /// record ends, relative to its start.
    PayloadChecksum {
        /// The record's length, header included.
        end: usize,
    },
}

impl Defect {
    /// A short description for errors and logs.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Defect::Truncated => "record cut short",
            Defect::HeaderChecksum => "record header checksum mismatch",
            Defect::PayloadChecksum { .. } => "record payload checksum mismatch",
        }
    }
}

/// Appends one framed record holding `payload` to `buf`. The caller keeps payloads under 4 GiB.
pub(crate) fn encode_into(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("record payload under 4 GiB (checked by caller)");
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc32c(payload).to_le_bytes());
    let header_crc = crc32c(&header[0..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
}

/// The framed size of a record holding `payload_len` bytes.
pub(crate) fn framed_len(payload_len: usize) -> usize {
    HEADER_BYTES + payload_len
}

/// Reads the record at the start of `bytes`: its payload and its framed length.
pub(crate) fn decode(bytes: &[u8]) -> Result<(&[u8], usize), Defect> {
    let header = bytes.get(..HEADER_BYTES).ok_or(Defect::Truncated)?;
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if crc32c(&header[0..8]) != word(8) {
        return Err(Defect::HeaderChecksum);
    }
    let end = HEADER_BYTES + word(0) as usize;
    let payload = bytes.get(HEADER_BYTES..end).ok_or(Defect::Truncated)?;
    if crc32c(payload) != word(4) {
        return Err(Defect::PayloadChecksum { end });
    }
    Ok((payload, end))
}

/// Whether a defect at the start of `rest` (the bytes from the bad record to the end of the
/// file) looks like a write cut short by a crash rather than damage: the record runs past the
/// end of the file, or nothing but zeros (space the file system extended but never wrote)
/// follows the bad part. Only ever asked about the last segment.
pub(crate) fn is_torn_tail(defect: Defect, rest: &[u8]) -> bool {
    let zeros_from = |from: usize| {
        rest.get(from..)
            .is_none_or(|tail| tail.iter().all(|b| *b == 0))
    };
    match defect {
        Defect::Truncated => true,
        Defect::HeaderChecksum => zeros_from(HEADER_BYTES),
        Defect::PayloadChecksum { end } => zeros_from(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_into(&mut buf, payload);
        buf
    }

    #[test]
    fn round_trips() {
        let buf = framed(b"hello");
        assert_eq!(buf.len(), framed_len(5));
        assert_eq!(decode(&buf), Ok((&b"hello"[..], buf.len())));
        assert_eq!(decode(&framed(b"")), Ok((&b""[..], HEADER_BYTES)));
    }

    #[test]
    fn every_cut_is_truncated_and_torn() {
        let buf = framed(b"some payload");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Err(Defect::Truncated), "cut at {cut}");
            assert!(is_torn_tail(Defect::Truncated, &buf[..cut]));
        }
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let buf = framed(b"some payload");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                let result = decode(&damaged);
                assert!(
                    matches!(
                        result,
                        Err(Defect::HeaderChecksum | Defect::PayloadChecksum { .. })
                    ),
                    "flip of bit {bit} in byte {byte} gave {result:?}"
                );
            }
        }
    }

    #[test]
    fn a_bad_record_followed_by_data_is_not_torn() {
        let mut buf = framed(b"first");
        buf[HEADER_BYTES] ^= 1;
        let end = buf.len();
        buf.extend(framed(b"second"));
        assert!(!is_torn_tail(Defect::PayloadChecksum { end }, &buf));
        assert!(!is_torn_tail(Defect::HeaderChecksum, &buf));
        buf.truncate(end);
        buf.extend([0u8; 40]);
        assert!(is_torn_tail(Defect::PayloadChecksum { end }, &buf));
    }
}
