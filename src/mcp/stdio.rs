//! The stdio transport: one JSON-RPC message per line in, one per line out, nothing else on
//! stdout (logs go to stderr). Requests run concurrently, so a long scan can be cancelled.
//! Lines are read as bytes: a line that is not UTF-8, or longer than the limit, is answered
//! with a JSON-RPC parse error (-32700, id null) and the next line is read; only the end of
//! input (or a read error of the input itself) ends the session.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::McpServer;
use super::protocol::{Incoming, PARSE_ERROR, error_response, parse_message};

/// How long requests still running when stdin closes may take to finish and be answered
/// (`echo '{...}' | tagguard serve --stdio` closes stdin at once and still wants its answer).
const DRAIN_ON_EOF: Duration = Duration::from_secs(3);

/// How long cancelled requests get to wind down (a scan stops within a page) before they
/// are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Serves one client on `input`/`output` until `input` ends or `shutdown` resolves. Lines
/// longer than `max_line_bytes` are answered with an error and skipped.
pub async fn serve<R, W>(
    server: McpServer,
    input: R,
    output: W,
    max_line_bytes: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(message) = out_rx.recv().await {
            // serde_json never writes a raw newline inside a value: one message, one line.
            let mut line = message.to_string();
            line.push('\n');
            output.write_all(line.as_bytes()).await?;
            output.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });

    // One session per process; its id names it in the audit log.
    let session = server.new_session(format!("stdio-{}", uuid::Uuid::new_v4().simple()));
    let mut lines = LineReader::new(input, max_line_bytes);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut signalled = false;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = &mut shutdown => {
                signalled = true;
                break;
            }
            // Reap finished requests as we go, so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let bytes = match line {
            Ok(Line::End) => break,
            Ok(Line::Text(bytes)) => bytes,
            Ok(Line::TooLong) => {
                let _ = out_tx.send(error_response(
                    &Value::Null,
                    PARSE_ERROR,
                    &format!("parse error: message longer than {max_line_bytes} bytes"),
                ));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "stdin failed; stopping");
                break;
            }
        };
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line.strip_suffix('\r').unwrap_or(line),
            Err(e) => {
                let _ = out_tx.send(error_response(
                    &Value::Null,
                    PARSE_ERROR,
                    &format!(
                        "parse error: the message is not UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                ));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message = match parse_message(line) {
            Ok(message) => message,
            Err(error) => {
                let _ = out_tx.send(error);
                continue;
            }
        };
        // The lifecycle comes first: `initialize` is answered before the next line is read,
        // so a client that pipelines its first calls behind it finds the session ready.
        if matches!(&message, Incoming::Request { method, .. } if method == "initialize") {
            if let Some(response) = server.handle(&session, message, None).await {
                let _ = out_tx.send(response);
            }
            continue;
        }
        let server = server.clone();
        let session = session.clone();
        let out = out_tx.clone();
        tasks.spawn(async move {
            if let Some(response) = server.handle(&session, message, Some(out.clone())).await {
                let _ = out.send(response);
            }
        });
    }

    // On end of input, what is running may still answer, briefly (unless a signal comes).
    // Then cancel the rest: their scans stop in the engine, and they end without an answer.
    if !signalled {
        let drain = async { while tasks.join_next().await.is_some() {} };
        tokio::select! {
            _ = tokio::time::timeout(DRAIN_ON_EOF, drain) => {}
            _ = &mut shutdown => {}
        }
    }
    session.close();
    if tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("requests still running after cancellation; abandoning them");
        tasks.shutdown().await;
    }
    drop(out_tx);
    drop(session);
    // Everything that could write has ended or been aborted; the writer drains and stops.
    let Ok(written) = tokio::time::timeout(STOP_GRACE, writer).await else {
        return Ok(());
    };
    match written {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line, without its newline.
    Text(Vec<u8>),
    /// A line longer than the limit; its bytes were skipped.
    TooLong,
    /// The end of input.
    End,
}

/// Reads lines of bytes of at most `max` bytes each, skipping the rest of longer ones without
/// keeping them. Cancel-safe: what was read of a line stays in the reader when a `select!`
/// drops [`LineReader::next_line`].
struct LineReader<R> {
    input: BufReader<R>,
    max: usize,
    line: Vec<u8>,
    too_long: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(input: R, max: usize) -> LineReader<R> {
        LineReader {
            input: BufReader::new(input),
            max,
            line: Vec::new(),
            too_long: false,
        }
    }

    /// The next line.
    async fn next_line(&mut self) -> std::io::Result<Line> {
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                // A last line without a newline still counts.
                return Ok(if self.too_long {
                    self.too_long = false;
                    Line::TooLong
                } else if self.line.is_empty() {
                    Line::End
                } else {
                    Line::Text(std::mem::take(&mut self.line))
                });
            }
            let (chunk, ends) = match available.iter().position(|b| *b == b'\n') {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            let taken = chunk.len() + usize::from(ends);
            if !self.too_long {
                if self.line.len() + chunk.len() > self.max {
                    self.too_long = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.input.consume(taken);
            if ends {
                if std::mem::take(&mut self.too_long) {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(std::mem::take(&mut self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_and_the_next_is_read() {
        let input: &[u8] = b"short\nthis one is too long\n\xff\xfe\nlast";
        let mut lines = LineReader::new(input, 8);
        assert_eq!(
            lines.next_line().await.unwrap(),
            Line::Text(b"short".to_vec())
        );
        assert_eq!(lines.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(
            lines.next_line().await.unwrap(),
            Line::Text(vec![0xff, 0xfe])
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Line::Text(b"last".to_vec())
        );
        assert_eq!(lines.next_line().await.unwrap(), Line::End);
    }

    #[tokio::test]
    async fn a_line_split_across_reads_is_whole() {
        let (mut writer, reader) = tokio::io::duplex(4);
        let mut lines = LineReader::new(reader, 1000);
        let feed = tokio::spawn(async move {
            writer.write_all(b"{\"a\": 12345}\n").await.unwrap();
        });
        assert_eq!(
            lines.next_line().await.unwrap(),
            Line::Text(b"{\"a\": 12345}".to_vec())
        );
        feed.await.unwrap();
        assert_eq!(lines.next_line().await.unwrap(), Line::End);
    }
}
