//! The baseline of "added latency per chunk": a plain Redis subscriber on the very
//! channels the gateway subscribes to. Both receive the same `SPUBLISH`; the difference
//! between a chunk's arrival here and at the client's socket is what the gateway adds
//! (its subscriber, fan-out, socket write and the client's read), measured on one
//! clock with no timestamps from other processes.
//!
//! It speaks RESP over a bare TCP socket: the cheapest subscriber there is, so the
//! baseline is not slowed by a client library.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A connected, not yet running subscriber.
pub struct Tap {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// Arrival time of each chunk, by channel and `seq`.
pub type Arrivals = HashMap<(String, u64), Instant>;

/// The shard channel of a session (`shared::keys::Keys::channel`); ids the gateway
/// would refuse get a name no one publishes on.
pub fn channel_of(keys: &shared::keys::Keys, session_id: &str) -> String {
    match shared::ids::SessionId::parse(session_id) {
        Ok(id) => keys.channel(&id),
        Err(_) => format!("{}:invalid:{session_id}", keys.prefix()),
    }
}

impl Tap {
    /// Connects to `redis://host:port` (or `host:port`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let address = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&address)
            .await
            .with_context(|| format!("connecting the tap to {address}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Self {
            reader: BufReader::with_capacity(1 << 16, read),
            writer: write,
        })
    }

    /// Subscribes to the shard `channels` and waits until Redis confirmed every one.
    /// One `SSUBSCRIBE` per channel, all written before reading the replies: one
    /// command may name channels of one slot only.
    pub async fn subscribe(&mut self, channels: &[String]) -> anyhow::Result<()> {
        let mut command = Vec::new();
        for channel in channels {
            encode(&mut command, &["SSUBSCRIBE", channel]);
        }
        self.writer.write_all(&command).await?;
        for _ in channels {
            match read_value(&mut self.reader).await? {
                Resp::Array(items) if matches!(items.first(), Some(Resp::Bulk(k)) if k == b"ssubscribe") =>
                    {}
                other => bail!("unexpected reply to SSUBSCRIBE: {other:?}"),
            }
        }
        Ok(())
    }

    /// Records chunk arrivals until `stop` turns true.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<anyhow::Result<Arrivals>> {
        let Tap { mut reader, writer } = self;
        tokio::spawn(async move {
            // Held to the end: dropping the write half would shut the connection down.
            let _writer = writer;
            let mut arrivals = Arrivals::new();
            loop {
                let value = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return Ok(arrivals),
                    value = read_value(&mut reader) => value?,
                };
                let now = Instant::now();
                let Resp::Array(items) = value else { continue };
                let [Resp::Bulk(kind), Resp::Bulk(channel), Resp::Bulk(payload)] = &items[..]
                else {
                    continue;
                };
                if kind != b"smessage" {
                    continue;
                }
                let channel = String::from_utf8_lossy(channel);
                for (seq, is_chunk) in chunk_seqs(&String::from_utf8_lossy(payload)) {
                    if is_chunk {
                        arrivals.insert((channel.to_string(), seq), now);
                    }
                }
            }
        })
    }
}

/// `(seq, is a chunk)` of each event line of a published batch.
fn chunk_seqs(payload: &str) -> Vec<(u64, bool)> {
    payload
        .split('\n')
        .filter_map(|line| {
            let seq = shared::backend::seq_of(line)?;
            Some((seq, line.contains("\"type\":\"chunk\"")))
        })
        .collect()
}

/// A RESP2 value.
#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Resp>),
}

fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> anyhow::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        bail!("redis closed the tap connection");
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_value<R: AsyncBufReadExt + Unpin + Send>(
    reader: &mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Resp>> + Send + '_>> {
    Box::pin(async move {
        let line = read_line(reader).await?;
        let (kind, rest) = line.split_at(1.min(line.len()));
        Ok(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Integer(rest.parse()?),
            "$" => {
                let len: i64 = rest.parse()?;
                if len < 0 {
                    Resp::Nil
                } else {
                    let mut data = vec![0; len as usize + 2];
                    reader.read_exact(&mut data).await?;
                    data.truncate(len as usize);
                    Resp::Bulk(data)
                }
            }
            "*" => {
                let len: i64 = rest.parse()?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(read_value(reader).await?);
                }
                Resp::Array(items)
            }
            _ => bail!("unreadable RESP line {line:?}"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resp_values_parse() {
        let wire = b"*3\r\n$7\r\nmessage\r\n$6\r\nc:{s1}\r\n$5\r\nhe\r\no\r\n:12\r\n$-1\r\n+OK\r\n-ERR x\r\n";
        let mut reader = BufReader::new(&wire[..]);
        assert_eq!(
            read_value(&mut reader).await.unwrap(),
            Resp::Array(vec![
                Resp::Bulk(b"message".to_vec()),
                Resp::Bulk(b"c:{s1}".to_vec()),
                Resp::Bulk(b"he\r\no".to_vec()),
            ])
        );
        assert_eq!(read_value(&mut reader).await.unwrap(), Resp::Integer(12));
        assert_eq!(read_value(&mut reader).await.unwrap(), Resp::Nil);
        assert_eq!(
            read_value(&mut reader).await.unwrap(),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            read_value(&mut reader).await.unwrap(),
            Resp::Error("ERR x".into())
        );
        assert!(read_value(&mut reader).await.is_err(), "end of input");
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &["SUBSCRIBE", "a:{b}"]);
        assert_eq!(out, b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\na:{b}\r\n");
    }

    #[test]
    fn batches_are_split_into_chunk_seqs() {
        let payload =
            "{\"seq\":4,\"type\":\"chunk\",\"content\":\"a\"}\n{\"seq\":5,\"type\":\"complete\"}";
        assert_eq!(chunk_seqs(payload), vec![(4, true), (5, false)]);
        let keys = shared::keys::Keys::new("chat", 16);
        let id = shared::ids::SessionId::parse("s-1").unwrap();
        assert_eq!(channel_of(&keys, "s-1"), keys.channel(&id));
    }
}
