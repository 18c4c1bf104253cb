//! Request framing: a 4-byte big-endian size, then the request. The size is
//! checked against `socket.request.max.bytes` before any buffer grows for it;
//! "incomplete" (read more) differs from "invalid" (close this connection only).

use bytes::{Buf, Bytes, BytesMut};

/// Smallest possible request: api key, version and correlation id.
pub const MIN_REQUEST_BYTES: usize = 8;

/// What the read buffer holds.
#[derive(Debug)]
pub enum Framed {
    /// A whole request (size prefix removed).
    Frame(Bytes),
    /// More bytes are needed; at least this many in total.
    Incomplete(usize),
    /// The size prefix is out of bounds: close the connection.
    Invalid(i64),
}

/// Takes one frame off the front of `buf` if complete.
pub fn next_frame(buf: &mut BytesMut, max_bytes: usize) -> Framed {
    if buf.len() < 4 {
        return Framed::Incomplete(4);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64;
    if size < MIN_REQUEST_BYTES as i64 || size as u64 > max_bytes as u64 {
        return Framed::Invalid(size);
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        return Framed::Incomplete(total);
    }
    buf.advance(4);
    Framed::Frame(buf.split_to(size as usize).freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_is_invalid_before_allocation() {
        let mut b = BytesMut::from(&2_000_000_000i32.to_be_bytes()[..]);
        assert!(matches!(next_frame(&mut b, 1 << 20), Framed::Invalid(_)));
        let mut b = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert!(matches!(next_frame(&mut b, 1 << 20), Framed::Invalid(_)));
    }

    #[test]
    fn incomplete_then_frame() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&10i32.to_be_bytes());
        b.extend_from_slice(&[1; 5]);
        assert!(matches!(next_frame(&mut b, 100), Framed::Incomplete(14)));
        b.extend_from_slice(&[2; 7]);
        match next_frame(&mut b, 100) {
            Framed::Frame(f) => assert_eq!(f.len(), 10),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.len(), 2);
    }
}
