//! memberlist's wire format (v0.2.x), written anew from its documented facts: a type
//! byte plus msgpack maps with memberlist's field names, compound messages, the CRC
//! wrapper, LZW compression and the AES-GCM encryption envelope.
//!
//! This module only turns bytes into values and back; it keeps no state. Go's msgpack
//! writes `[]byte` fields as msgpack *str*, so every byte field here is a
//! `serde_bytes::ByteBuf`, which accepts str, bin and nil.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The first byte of every memberlist message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    /// UDP (or TCP fallback) ping.
    Ping = 0,
    /// Ask a member to ping another for us.
    IndirectPing = 1,
    /// Answer to a ping.
    Ack = 2,
    /// A member is suspected.
    Suspect = 3,
    /// A member is alive (join, refutation).
    Alive = 4,
    /// A member is dead (or left, when Node == From).
    Dead = 5,
    /// TCP state exchange.
    PushPull = 6,
    /// Several messages in one packet.
    Compound = 7,
    /// Application payload.
    User = 8,
    /// LZW-compressed message.
    Compress = 9,
    /// Encrypted stream envelope (TCP).
    Encrypt = 10,
    /// The target of an indirect ping did not answer.
    Nack = 11,
    /// CRC32 wrapper (UDP, outermost).
    HasCrc = 12,
    /// Error reply on a stream.
    Err = 13,
}

impl MessageType {
    /// The type for a byte, if memberlist v0.2 knows it.
    pub fn from_u8(b: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match b {
            0 => Ping,
            1 => IndirectPing,
            2 => Ack,
            3 => Suspect,
            4 => Alive,
            5 => Dead,
            6 => PushPull,
            7 => Compound,
            8 => User,
            9 => Compress,
            10 => Encrypt,
            11 => Nack,
            12 => HasCrc,
            13 => Err,
            _ => return None,
        })
    }
}

/// Why bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its own lengths say.
    #[error("truncated message")]
    Truncated,
    /// The type byte is unknown.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// msgpack that does not decode to the expected struct.
    #[error("malformed msgpack: {0}")]
    Malformed(String),
    /// The CRC32 does not match.
    #[error("CRC mismatch")]
    BadCrc,
    /// No key of the keyring authenticates the message.
    #[error("no installed key decrypts the message")]
    Decrypt,
    /// Encryption is configured but the message is plaintext.
    #[error("encryption is configured but the message is not encrypted")]
    NotEncrypted,
    /// An unsupported compression algorithm or a bad LZW stream.
    #[error("bad compressed message: {0}")]
    Compression(String),
    /// Larger than memberlist accepts (20 MiB for a push/pull).
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The cluster label is missing, unexpected or different from ours.
    #[error("label mismatch")]
    Label,
    /// A valid message in a place where it is not allowed.
    #[error("unexpected message type {0:?}")]
    Unexpected(MessageType),
}

/// memberlist's protocol versions `[pmin, pmax, pcur, dmin, dmax, dcur]` as we advertise
/// them: protocol 1..5, speaking 2 (memberlist's default), no delegate protocol.
pub const VSN: [u8; 6] = [1, 5, 2, 0, 0, 0];

/// Largest push/pull state accepted (memberlist's `maxPushStateBytes`).
pub const MAX_PUSH_STATE: usize = 20 * 1024 * 1024;

/// `ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ping {
    /// The intended target's name; a member drops pings meant for someone else.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Sequence number, echoed by the ack.
    #[serde(rename = "SeqNo", default)]
    pub seq_no: u32,
    /// Where to send the ack (raw IP bytes), if not the packet's source.
    #[serde(
        rename = "SourceAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_addr: Option<ByteBuf>,
    /// The sender's name.
    #[serde(
        rename = "SourceNode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_node: Option<String>,
    /// Where to send the ack (port).
    #[serde(
        rename = "SourcePort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<u16>,
}

/// `indirectPingReq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IndirectPing {
    /// Whether the requester wants a nack if the target stays silent.
    #[serde(rename = "Nack", default)]
    pub nack: bool,
    /// The target's name.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// The target's port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// The requester's sequence number.
    #[serde(rename = "SeqNo", default)]
    pub seq_no: u32,
    /// The requester's address.
    #[serde(
        rename = "SourceAddr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_addr: Option<ByteBuf>,
    /// The requester's name.
    #[serde(
        rename = "SourceNode",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_node: Option<String>,
    /// The requester's port.
    #[serde(
        rename = "SourcePort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_port: Option<u16>,
    /// The target's IP bytes.
    #[serde(rename = "Target", default)]
    pub target: ByteBuf,
}

/// `ackResp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ack {
    /// Opaque payload from the ping delegate (nil here).
    #[serde(rename = "Payload", default)]
    pub payload: Option<ByteBuf>,
    /// The ping's sequence number.
    #[serde(rename = "SeqNo", default)]
    pub seq_no: u32,
}

/// `nackResp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Nack {
    /// The indirect ping's sequence number.
    #[serde(rename = "SeqNo", default)]
    pub seq_no: u32,
}

/// `suspect` and `dead` share this shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Accusation {
    /// Who says so (for dead: From == Node is a voluntary leave).
    #[serde(rename = "From", default)]
    pub from: String,
    /// The incarnation accused.
    #[serde(rename = "Incarnation", default)]
    pub incarnation: u32,
    /// The member accused.
    #[serde(rename = "Node", default)]
    pub node: String,
}

/// `alive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Alive {
    /// Raw IP bytes (4, or 16 for IPv4-mapped), kept verbatim when re-gossiped.
    #[serde(rename = "Addr", default)]
    pub addr: ByteBuf,
    /// Incarnation, from 1.
    #[serde(rename = "Incarnation", default)]
    pub incarnation: u32,
    /// Application metadata.
    #[serde(rename = "Meta", default)]
    pub meta: Option<ByteBuf>,
    /// Name.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Gossip port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// Protocol versions, exactly 6 bytes.
    #[serde(rename = "Vsn", default)]
    pub vsn: ByteBuf,
}

/// The header of a push/pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PushPullHeader {
    /// Part of a join.
    #[serde(rename = "Join", default)]
    pub join: bool,
    /// How many node states follow.
    #[serde(rename = "Nodes", default)]
    pub nodes: u32,
    /// Bytes of user state after the node states.
    #[serde(rename = "UserStateLen", default)]
    pub user_state_len: u32,
}

/// A node's state in a push/pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PushNodeState {
    /// Raw IP bytes.
    #[serde(rename = "Addr", default)]
    pub addr: ByteBuf,
    /// Incarnation.
    #[serde(rename = "Incarnation", default)]
    pub incarnation: u32,
    /// Metadata.
    #[serde(rename = "Meta", default)]
    pub meta: Option<ByteBuf>,
    /// Name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Port.
    #[serde(rename = "Port", default)]
    pub port: u16,
    /// 0 alive, 1 suspect, 2 dead, 3 left.
    #[serde(rename = "State", default)]
    pub state: u8,
    /// Protocol versions.
    #[serde(rename = "Vsn", default)]
    pub vsn: ByteBuf,
}

/// `compress`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Compress {
    /// 0 = LZW, the only algorithm.
    #[serde(rename = "Algo", default)]
    pub algo: u8,
    /// Compressed bytes.
    #[serde(rename = "Buf", default)]
    pub buf: ByteBuf,
}

/// `errResp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrResp {
    /// The error text.
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// `userMsgHeader` (TCP user messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserMsgHeader {
    /// Bytes that follow.
    #[serde(rename = "UserMsgLen", default)]
    pub user_msg_len: u32,
}

/// `[type][msgpack map]`.
pub fn encode<T: Serialize>(ty: MessageType, msg: &T) -> Vec<u8> {
    let mut out = vec![ty as u8];
    // Writing to a Vec cannot fail, and these structs always serialize.
    let _ = rmp_serde::encode::write_named(&mut out, msg);
    out
}

/// Append one msgpack map.
pub fn append<T: Serialize>(out: &mut Vec<u8>, msg: &T) {
    let _ = rmp_serde::encode::write_named(out, msg);
}

/// Decode one msgpack value from the front of `rd`, advancing it.
pub fn decode_next<T: DeserializeOwned>(rd: &mut &[u8]) -> Result<T, WireError> {
    rmp_serde::decode::from_read(rd).map_err(|e| match e {
        rmp_serde::decode::Error::InvalidMarkerRead(_)
        | rmp_serde::decode::Error::InvalidDataRead(_) => WireError::Truncated,
        other => WireError::Malformed(other.to_string()),
    })
}

/// Decode a message body (after its type byte).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let mut rd = body;
    decode_next(&mut rd)
}

/// `[7][n][u16 BE lengths][parts]`; at most 255 parts.
pub fn compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let parts = &parts[..parts.len().min(255)];
    let mut out = Vec::with_capacity(2 + parts.iter().map(|p| p.len() + 2).sum::<usize>());
    out.push(MessageType::Compound as u8);
    out.push(parts.len() as u8);
    for p in parts {
        out.extend_from_slice(&(p.len().min(u16::MAX as usize) as u16).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Split a compound body (after the type byte). Parts that do not fit are reported as
/// truncated, after the ones that do (as memberlist processes what it can).
pub fn split_compound(body: &[u8]) -> (Vec<&[u8]>, bool) {
    let Some((&n, rest)) = body.split_first() else {
        return (Vec::new(), true);
    };
    let n = usize::from(n);
    if rest.len() < 2 * n {
        return (Vec::new(), true);
    }
    let (lens, mut data) = rest.split_at(2 * n);
    let mut parts = Vec::with_capacity(n);
    for l in lens.chunks_exact(2) {
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if data.len() < len {
            return (parts, true);
        }
        let (p, tail) = data.split_at(len);
        parts.push(p);
        data = tail;
    }
    (parts, false)
}

/// The label header's type byte (memberlist 0.3 and later).
pub const HAS_LABEL: u8 = 244;

/// `[244][len][label][rest]`: a cluster label, outermost, so that members of different
/// clusters on one network ignore each other.
pub fn with_label(label: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + label.len() + rest.len());
    out.push(HAS_LABEL);
    out.push(label.len().min(255) as u8);
    out.extend_from_slice(&label[..label.len().min(255)]);
    out.extend_from_slice(rest);
    out
}

/// Split off a label header if there is one: `(label, rest)`.
pub fn strip_label(bytes: &[u8]) -> Result<(Option<&[u8]>, &[u8]), WireError> {
    if bytes.first() != Some(&HAS_LABEL) {
        return Ok((None, bytes));
    }
    let len = usize::from(*bytes.get(1).ok_or(WireError::Truncated)?);
    if len == 0 {
        return Err(WireError::Malformed("empty label".into()));
    }
    let label = bytes.get(2..2 + len).ok_or(WireError::Truncated)?;
    Ok((Some(label), &bytes[2 + len..]))
}

/// `[12][crc32 BE][payload]`.
pub fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MessageType::HasCrc as u8);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Strip a CRC wrapper if present, checking it.
pub fn strip_crc(packet: &[u8]) -> Result<&[u8], WireError> {
    if packet.first() != Some(&(MessageType::HasCrc as u8)) {
        return Ok(packet);
    }
    let Some(body) = packet.get(5..) else {
        return Err(WireError::Truncated);
    };
    let want = u32::from_be_bytes([packet[1], packet[2], packet[3], packet[4]]);
    if crc32fast::hash(body) == want {
        Ok(body)
    } else {
        Err(WireError::BadCrc)
    }
}

const LZW_BUFFER: usize = 4096;

/// LZW as Go's `compress/lzw` with LSB order and 8-bit literals (GIF's variant):
/// `[9][msgpack compress{Algo: 0, Buf}]`.
pub fn compress(msg: &[u8]) -> Vec<u8> {
    thread_local! {
        // An encoder's code table is large: one per thread, reset for each message.
        static ENCODER: std::cell::RefCell<weezl::encode::Encoder> =
            std::cell::RefCell::new(weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8));
    }
    let mut buf = Vec::with_capacity(msg.len() / 2 + 16);
    ENCODER.with(|e| {
        let mut enc = e.borrow_mut();
        enc.reset();
        let mut stream = enc.into_stream(&mut buf);
        // weezl's default stream buffer is 16 MiB, zeroed on every call: far more than a
        // gossip message needs.
        stream.set_buffer_size(LZW_BUFFER);
        let _ = stream.encode_all(msg).status;
    });
    encode(
        MessageType::Compress,
        &Compress {
            algo: 0,
            buf: ByteBuf::from(buf),
        },
    )
}

/// Largest decompressed size accepted from one UDP packet, all nesting levels together
/// (memberlist's receive buffer is 64 KiB; its senders compress messages of ~1400 bytes).
pub const MAX_PACKET_EXPANSION: usize = 1 << 20;

/// Undo `compress` (body after the type byte); returns the inner message. Decoding
/// stops with `TooLarge` as soon as the output would pass `limit`, so an LZW bomb costs
/// no more than `limit` bytes.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let c: Compress = decode(body)?;
    if c.algo != 0 {
        return Err(WireError::Compression(format!(
            "unknown algorithm {}",
            c.algo
        )));
    }
    thread_local! {
        // Like the encoder's, a decoder's tables are large: one per thread, reset each time.
        static DECODER: std::cell::RefCell<weezl::decode::Decoder> =
            std::cell::RefCell::new(weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8));
    }
    DECODER.with(|d| {
        let mut dec = d.borrow_mut();
        dec.reset();
        let mut out = Vec::new();
        let mut chunk = [0u8; LZW_BUFFER];
        let mut input = &c.buf[..];
        loop {
            let r = dec.decode_bytes(input, &mut chunk);
            input = &input[r.consumed_in..];
            out.extend_from_slice(&chunk[..r.consumed_out]);
            if out.len() > limit {
                return Err(WireError::TooLarge(out.len()));
            }
            match r.status {
                Ok(weezl::LzwStatus::Done) => break,
                Ok(weezl::LzwStatus::Ok) if r.consumed_in > 0 || r.consumed_out > 0 => {}
                Ok(_) => break,
                Err(e) => return Err(WireError::Compression(e.to_string())),
            }
        }
        // Go's reader insists on the end code; a stream without it is refused.
        if !dec.has_ended() {
            return Err(WireError::Compression("missing end code".into()));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_uses_memberlists_field_names_and_decodes_go_bytes() {
        // An alive as a Go v0.2.2 member sends it (byte fields as msgpack str).
        let go: Vec<u8> = [
            &[0x86u8, 0xa4][..],
            b"Addr",
            &[0xa4, 127, 0, 0, 1, 0xab],
            b"Incarnation",
            &[0x01, 0xa4],
            b"Meta",
            &[0xc0, 0xa4],
            b"Node",
            &[0xa1, b'b', 0xa4],
            b"Port",
            &[0xcd, 0x46, 0x1b, 0xa3],
            b"Vsn",
            &[0xa6, 1, 5, 2, 0, 0, 0],
        ]
        .concat();
        let a: Alive = decode(&go).unwrap();
        assert_eq!(&a.addr[..], &[127, 0, 0, 1]);
        assert_eq!((a.node.as_str(), a.port, a.incarnation), ("b", 17947, 1));
        assert_eq!(&a.vsn[..], &VSN);
        assert_eq!(a.meta, None);
        // Ours round-trips, as a map with the same keys.
        let ours = encode(MessageType::Alive, &a);
        assert_eq!(ours[1], 0x86, "a 6-entry map");
        assert_eq!(decode::<Alive>(&ours[1..]).unwrap(), a);
        // A non-UTF-8 IP in a str is still bytes.
        let mut odd = go.clone();
        odd[7..11].copy_from_slice(&[0xc0, 0xa8, 1, 2]);
        assert_eq!(
            &decode::<Alive>(&odd).unwrap().addr[..],
            &[0xc0, 0xa8, 1, 2]
        );
    }

    #[test]
    fn compound_round_trips_and_reports_truncation() {
        let parts = vec![vec![1u8, 2, 3], vec![4u8], vec![]];
        let c = compound(&parts);
        let (got, truncated) = split_compound(&c[1..]);
        assert!(!truncated);
        assert_eq!(got, vec![&[1u8, 2, 3][..], &[4u8][..], &[][..]]);
        let (got, truncated) = split_compound(&c[1..c.len() - 1]);
        assert!(truncated);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn crc_wrapper_is_checked() {
        let w = with_crc(b"\x02hello");
        assert_eq!(strip_crc(&w).unwrap(), b"\x02hello");
        let mut bad = w.clone();
        bad[6] ^= 1;
        assert_eq!(strip_crc(&bad), Err(WireError::BadCrc));
        assert_eq!(strip_crc(b"\x02plain").unwrap(), b"\x02plain");
    }

    #[test]
    fn label_header_round_trips_and_rejects_truncation() {
        let l = with_label(b"swarm-a", b"\x02rest");
        assert_eq!(
            strip_label(&l).unwrap(),
            (Some(&b"swarm-a"[..]), &b"\x02rest"[..])
        );
        assert_eq!(strip_label(b"\x02rest").unwrap(), (None, &b"\x02rest"[..]));
        assert_eq!(strip_label(&l[..5]), Err(WireError::Truncated));
    }

    #[test]
    fn lzw_round_trips() {
        let msg: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let c = compress(&msg);
        assert_eq!(c[0], MessageType::Compress as u8);
        assert!(c.len() < msg.len());
        assert_eq!(decompress(&c[1..], 1 << 20).unwrap(), msg);
        assert!(matches!(
            decompress(&c[1..], 100),
            Err(WireError::TooLarge(_))
        ));
    }
}
