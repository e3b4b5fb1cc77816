//! The routing in place as a JSON routing document, in the config file's shape, so that what the admin
//! API shows can be read like a config file and pushed back (`edgeplane push` accepts JSON). The shape
//! is the config crate's ([`Routing::to_document`], every default written out); here inline private
//! keys are redacted and absent settings left out.

use edgeplane_config::model::Routing;
use serde_json::Value;

/// What the API shows in place of an inline private key.
const REDACTED: &str = "<redacted>";

/// `routing` as a document: `{"routes": [...], "clusters": {...}}`, plus `certificates` if any.
pub(super) fn routing_json(routing: &Routing) -> Value {
    let mut doc = routing.to_document();
    for c in &mut doc.certificates {
        if c.key_pem.is_some() {
            c.key_pem = Some(REDACTED.into());
        }
    }
    // Serializing plain structs and maps to a JSON value cannot fail.
    let mut value = serde_json::to_value(doc).unwrap_or(Value::Null);
    drop_nulls(&mut value);
    value
}

/// Removes the object members whose value is `null` (settings left unset), at every depth.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, member| !member.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_reads_back_as_the_same_routing() {
        let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n\
            [[routes]]\nname = \"r\"\nhosts = [\"*.example.com\"]\npath_prefix = \"/api\"\ncluster = \"c\"\n\
            [clusters.c]\nbalancing = \"adaptive\"\nslow_start = \"20s\"\nfailover_below = 80\n\
            panic_threshold = 30\nzone_aware = true\n\
            [clusters.c.retry]\nattempts = 2\non = [\"reset\", \"429\"]\nbudget_percent = 10\n\
            [clusters.c.circuit_breaker]\nmax_requests = 100\nmax_connections = 50\nmax_pending = 7\n\
            [clusters.c.affinity]\nheader = \"x-ep\"\nttl = \"5m\"\n\
            [clusters.c.timeouts]\ntotal = \"4s\"\n\
            [clusters.c.outlier]\nconsecutive_failures = 4\n\
            [clusters.c.health_check]\npath = \"/h\"\n\
            [clusters.c.hash_on]\ncookie = \"sid\"\n\
            [clusters.c.tls]\nsni = \"api.internal\"\nh2 = true\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:9\"\nweight = 3\nzone = \"z\"\npriority = 1\n";
        let routing = edgeplane_config::from_toml(text).unwrap().routing;
        let doc = super::routing_json(&routing).to_string();
        let back = edgeplane_config::document_from_text(&doc).unwrap();
        assert_eq!(back.routes, routing.routes);
        assert_eq!(back.clusters, routing.clusters);
        assert!(!doc.contains("null"), "{doc}");
    }

    #[test]
    fn inline_private_keys_are_never_shown() {
        let text = "[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
            [[certificates]]\ncert = \"/c.pem\"\n\
            key_pem = \"-----BEGIN PRIVATE KEY-----\\nAA==\\n-----END PRIVATE KEY-----\\n\"\n";
        let routing = edgeplane_config::document_from_text(text).unwrap();
        let doc = super::routing_json(&routing);
        assert_eq!(doc["certificates"][0]["key_pem"], super::REDACTED);
        assert_eq!(doc["certificates"][0]["cert"], "/c.pem");
        assert!(!doc.to_string().contains("BEGIN PRIVATE KEY"));
    }
}
