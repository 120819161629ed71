//! One client's session: its negotiated revision, and its requests in flight (to cancel them).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A client's session. Over stdio there is one per process; over HTTP one per
/// `Mcp-Session-Id`.
pub struct Session {
    /// The `Mcp-Session-Id` over HTTP; `stdio-…` for the one session of a stdio process.
    pub id: String,
    initialized: AtomicBool,
    /// Requests in flight by id (the id's JSON text, so `1` and `"1"` differ as they should).
    in_flight: DashMap<String, CancellationToken>,
    last_seen: Mutex<Instant>,
    /// Cancelled when the session ends; every request's token is a child of it.
    cancel: CancellationToken,
}

impl Session {
    /// A new session; `parent` is the server's shutdown token.
    pub fn new(id: String, parent: &CancellationToken) -> Session {
        Session {
            id,
            initialized: AtomicBool::new(false),
            in_flight: DashMap::new(),
            last_seen: Mutex::new(Instant::now()),
            cancel: parent.child_token(),
        }
    }

    /// Marks `initialize` answered: the session is usable from then on.
    pub fn initialize(&self) {
        self.initialized.store(true, Ordering::Release);
    }

    /// Whether `initialize` has been answered.
    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }

    /// Registers a request in flight and returns the token that cancels it.
    pub fn begin(&self, id: &Value) -> CancellationToken {
        let token = self.cancel.child_token();
        self.in_flight.insert(id.to_string(), token.clone());
        token
    }

    /// Forgets a finished request.
    pub fn end(&self, id: &Value) {
        self.in_flight.remove(&id.to_string());
    }

    /// Cancels a request in flight; unknown or finished ids are ignored (returns false).
    pub fn cancel_request(&self, id: &Value) -> bool {
        match self.in_flight.get(&id.to_string()) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends the session: cancels everything in flight.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Notes activity, for idle expiry.
    pub fn touch(&self) {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Time since the last activity (never idle while a request runs).
    pub fn idle_for(&self) -> Duration {
        if !self.in_flight.is_empty() {
            return Duration::ZERO;
        }
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_reaches_only_the_named_request() {
        let root = CancellationToken::new();
        let session = Session::new(String::new(), &root);
        let one = session.begin(&Value::from(1));
        let other = session.begin(&Value::from("1"));
        assert!(session.cancel_request(&Value::from(1)));
        assert!(one.is_cancelled() && !other.is_cancelled());
        session.end(&Value::from(1));
        assert!(!session.cancel_request(&Value::from(1)));
        session.close();
        assert!(other.is_cancelled());
    }
}
