//! The bytes of the messages on tcp/2377, as the pcap taps carry them.
//!
//! Raft messages are raft-rs's protobuf `Message`, as swarmkit's `raft.Raft/ProcessRaftMessage`
//! carries etcd's. The dispatcher's messages are written as protobuf too, with gRPC's
//! 5-byte message prefix (flag, big-endian length), in a schema of swarmlab's own that
//! follows swarmkit's shapes (`HeartbeatRequest`, `UpdateTaskStatusRequest`,
//! assignments). So far they are written for the taps only: the receiver still reads the
//! typed message, and decoding them is the redesign's next step (issue 12).

use super::{Assignment, Msg, Status};
use protobuf::CodedOutputStream;

/// Which message a frame holds (field 15 of every dispatcher message).
fn kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Raft(_) => "raft.ProcessRaftMessage",
        Msg::Heartbeat { .. } => "dispatcher.Heartbeat",
        Msg::Status { .. } => "dispatcher.UpdateTaskStatus",
        Msg::Ack { .. } => "dispatcher.Assignments",
        Msg::NotLeader { .. } => "dispatcher.NotLeader",
    }
}

/// The message's bytes on the stream.
pub fn encode(msg: &Msg) -> Vec<u8> {
    let body = match msg {
        Msg::Raft(bytes) => bytes.clone(),
        other => body(other),
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0); // not compressed
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn nested(f: impl FnOnce(&mut CodedOutputStream) -> protobuf::ProtobufResult<()>) -> Vec<u8> {
    let mut v = Vec::new();
    {
        let mut os = CodedOutputStream::vec(&mut v);
        // Writing into a Vec does not fail.
        f(&mut os)
            .and_then(|()| os.flush())
            .expect("protobuf into a Vec");
    }
    v
}

fn status(s: &Status) -> Vec<u8> {
    nested(|os| {
        os.write_string(1, &s.task)?;
        os.write_uint32(2, s.state as u32)?;
        if !s.err.is_empty() {
            os.write_string(3, &s.err)?;
        }
        Ok(())
    })
}

fn assignment(a: &Assignment) -> Vec<u8> {
    nested(|os| {
        os.write_string(1, &a.task.id)?;
        os.write_string(2, &a.service)?;
        os.write_uint64(3, a.task.slot)?;
        os.write_uint32(4, a.task.state as u32)?;
        os.write_uint32(5, a.task.desired as u32)?;
        os.write_string(6, &a.image)?;
        for arg in &a.args {
            os.write_string(7, arg)?;
        }
        Ok(())
    })
}

fn body(msg: &Msg) -> Vec<u8> {
    nested(|os| {
        match msg {
            Msg::Raft(_) => {}
            Msg::Heartbeat { node, statuses, .. } => {
                os.write_string(1, node)?;
                for s in statuses {
                    os.write_bytes(2, &status(s))?;
                }
            }
            Msg::Status { statuses } => {
                for s in statuses {
                    os.write_bytes(2, &status(s))?;
                }
            }
            Msg::Ack {
                period,
                leader,
                managers,
                tasks,
                ..
            } => {
                // google.protobuf.Duration { seconds = 1, nanos = 2 }
                let d = nested(|d| {
                    d.write_uint64(1, period.as_nanos() / 1_000_000_000)?;
                    d.write_uint32(2, (period.as_nanos() % 1_000_000_000) as u32)
                });
                os.write_bytes(1, &d)?;
                os.write_string(2, &leader.to_string())?;
                for m in managers {
                    os.write_string(3, &m.to_string())?;
                }
                for a in tasks {
                    os.write_bytes(4, &assignment(a))?;
                }
            }
            Msg::NotLeader { leader } => {
                if let Some(l) = leader {
                    os.write_string(1, &l.to_string())?;
                }
            }
        }
        os.write_string(15, kind(msg))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_grpcs_prefix_with_its_length() {
        let m = Msg::Status {
            statuses: vec![Status {
                task: "t1".into(),
                state: crate::swarm::store::TaskState::Running,
                err: String::new(),
            }],
        };
        let b = encode(&m);
        assert_eq!(b[0], 0);
        assert_eq!(
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
            b.len() - 5
        );
        // field 2, length-delimited: the status, whose field 1 is the task id.
        assert_eq!(&b[5..9], &[0x12, 6, 0x0a, 2]);
        assert!(b.ends_with(b"dispatcher.UpdateTaskStatus"));
        let raft = encode(&Msg::Raft(vec![1, 2, 3]));
        assert_eq!(raft, vec![0, 0, 0, 0, 3, 1, 2, 3]);
    }
}
