//! The stdio transport: one JSON-RPC message per line in, one per line out, nothing else on
//! stdout (logs go to stderr). Requests run concurrently, so a long scan can be cancelled.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::McpServer;
use super::protocol::{INVALID_REQUEST, Incoming, error_response, parse_message};

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
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(max_line_bytes));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut signalled = false;
    loop {
        let line = tokio::select! {
            line = lines.next() => line,
            _ = &mut shutdown => {
                signalled = true;
                break;
            }
            // Reap finished requests as we go, so the set stays small.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let line = match line {
            None => break,
            Some(Ok(line)) => line,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let _ = out_tx.send(error_response(
                    &Value::Null,
                    INVALID_REQUEST,
                    &format!("message longer than {max_line_bytes} bytes"),
                ));
                continue;
            }
            Some(Err(LinesCodecError::Io(e))) => {
                tracing::warn!(error = %e, "stdin failed; stopping");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message = match parse_message(&line) {
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
