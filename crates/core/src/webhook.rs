/// An inbound webhook request as the host received it.
#[derive(Debug)]
pub struct WebhookRequest {
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The raw body, exactly as signed by the sender.
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// A header as a string, when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A delivery that passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The sender's delivery id, stable across retries; used to store a delivery once.
    pub delivery_id: Option<String>,
    /// The event name (Jira: `webhookEvent`).
    pub event_type: Option<String>,
}

/// What a verified request asks of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// An event to store and acknowledge.
    Event(VerifiedWebhook),
    /// A handshake (URL verification) to answer directly, storing nothing.
    Handshake {
        /// Content type of the reply.
        content_type: String,
        /// Body of the reply.
        body: Vec<u8>,
    },
}

/// The answer to a handshake a vendor sends before any delivery, which needs no installation to
/// give (see [`Plugin::answer_handshake`](crate::Plugin::answer_handshake)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeReply {
    /// Content type of the reply.
    pub content_type: &'static str,
    /// Body of the reply.
    pub body: Vec<u8>,
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Signature header absent.
    #[error("missing signature")]
    MissingSignature,
    /// Signature present but wrong, or no secret to check it with.
    #[error("invalid signature")]
    InvalidSignature,
    /// The request is malformed (bad body, stale timestamp).
    #[error("malformed webhook: {0}")]
    Malformed(String),
}
