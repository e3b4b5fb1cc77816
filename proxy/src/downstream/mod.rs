//! The client's side of a connection: the accept loop and connection limits ([`server`]), TLS
//! termination ([`tls`]), the protocol sniff ([`sniff`], with [`rewind`]), serving a connection
//! ([`connection`]: HTTP/1.x requests by the own server, [`h1`], or hyper's; HTTP/2 by hyper's; each
//! request answered by [`answer`], its body a [`body::ClientBody`]) and parking it while idle
//! ([`park`]), the node-wide watcher of every connection
//! ([`watcher`]) with its samplers ([`idle`], [`head_watch`]), how a connection is told to close
//! ([`closing`]), shedding idle connections at the limit ([`shed`]), upgraded tunnels ([`tunnel`])
//! and the node's phase with each connection's hold on it ([`lifecycle`]).

pub(crate) mod answer;
pub(crate) mod body;
pub(crate) mod closing;
pub(crate) mod connection;
pub(crate) mod h1;
pub(crate) mod head_watch;
pub(crate) mod idle;
pub(crate) mod lifecycle;
pub(crate) mod park;
pub(crate) mod rewind;
pub(crate) mod server;
pub(crate) mod shed;
pub(crate) mod sniff;
pub(crate) mod tls;
pub(crate) mod tunnel;
pub(crate) mod watcher;
