//! What a request is, read from untrusted input: the client's address (trusted
//! X-Forwarded-For), its country, its cookies and write tokens, gathered as facts for `decide`; and the
//! route's rate limit each request is checked against, keyed by those facts.

pub mod client_ip;
pub mod cookie;
pub mod facts;
pub mod geo;
pub mod rate_limit;
pub mod tokens;
