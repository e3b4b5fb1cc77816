//! One request's way through the proxy, in the order it takes: [`forward`] (route, pick, [`admit`],
//! a [`mirror`] copy),
//! [`rewrite`] (the upstream's request) with [`headers`] (hop-by-hop) and [`added_headers`]
//! (`X-Forwarded-*`, `Via`, request id), [`attempts`] (the tries: [`retry`] policy, [`send`] one try,
//! [`next_try`] after a failure), [`respond`] (the client's response, streamed by [`body`]; the
//! request body sent upstream is [`request_body`]), and the [`access_log`] line. [`shared`] is what
//! every request of the node, and of one connection, shares.

pub(crate) mod access_log;
pub(crate) mod added_headers;
pub(crate) mod admit;
pub(crate) mod answer;
pub(crate) mod attempts;
pub(crate) mod body;
pub(crate) mod compress;
pub(crate) mod ending;
pub(crate) mod forward;
pub(crate) mod grpc_body;
pub(crate) mod headers;
pub(crate) mod location;
pub(crate) mod mirror;
pub(crate) mod next_try;
pub(crate) mod request_body;
pub(crate) mod respond;
pub(crate) mod retry;
pub(crate) mod rewrite;
pub(crate) mod send;
pub(crate) mod shared;
pub(crate) mod trace_context;
