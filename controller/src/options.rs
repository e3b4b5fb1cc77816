//! From the node's `[node.nats]` settings to the bus's connection options.

use edgeplane_bus::{BusOptions, Credentials, TlsFiles};
use edgeplane_config::model::{Nats, NatsAuth};

/// Connection options for a node (or a CLI command acting as `name`).
pub fn bus_options(nats: &Nats, name: &str) -> BusOptions {
    BusOptions {
        urls: nats.urls.clone(),
        credentials: match &nats.auth {
            NatsAuth::None => Credentials::None,
            NatsAuth::UserPassword(user, password) => Credentials::UserPassword {
                user: user.clone(),
                password: password.clone(),
            },
            NatsAuth::Token(t) => Credentials::Token(t.clone()),
            NatsAuth::NkeySeed(s) => Credentials::NkeySeed(s.clone()),
            NatsAuth::CredsFile(p) => Credentials::CredsFile(p.clone()),
        },
        tls: TlsFiles {
            ca: nats.tls_ca.clone(),
            client: nats.tls_client.clone(),
            required: nats.tls_required,
        },
        name: name.to_string(),
        ..BusOptions::default()
    }
}
