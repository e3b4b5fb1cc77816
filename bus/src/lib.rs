//! edgeplane's NATS boundary.
//!
//! Everything that touches the wire lives here and nowhere else: subject names under a configurable
//! prefix ([`Subjects`]), the serde wire messages for config acknowledgements, heartbeats, scaling
//! events and node announcements ([`wire`]), rate-limit usage reports ([`usage`]), fleet events ([`event`]), autoscale recommendations ([`autoscale`]), staged rollouts ([`rollout`]), their codec with schema versioning ([`codec`]), the NATS
//! connection options (auth, TLS, ping interval, jittered reconnect; [`connect`]) and the JetStream
//! resources (the config KV bucket, created in a way that works on nats-server 2.9 as well as 2.1x;
//! [`jetstream`]). It is the only crate with serde wire types; the proxy's tables never see them.
//!
//! The wire format is documented for publishers in any language in `docs/bus.md`.

pub mod autoscale;
pub mod codec;
pub mod connect;
mod error;
pub mod event;
pub mod jetstream;
pub mod rollout;
mod subjects;
pub mod usage;
pub mod wire;

pub use codec::{decode, encode, DecodeError, CONTENT_TYPE, SCHEMA_VERSION};
pub use connect::{BusOptions, BusStats, Credentials, TlsFiles};
pub use error::BusError;
pub use subjects::{valid_token, Subjects, DEFAULT_PREFIX};
