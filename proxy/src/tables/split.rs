//! A route's traffic shared among clusters by weight (a canary): which cluster a request goes to.
//!
//! Each cluster owns a run of the range `0..total`, in the document's order. A request with the
//! route's `split_on` key lands at `key % total`, so a client stays on its cluster while the weights
//! stay; moving weight from the first cluster to the last moves only the clients in the runs that
//! change hands. Without a key, a request lands at random. A request carrying the affinity token of
//! one of the clusters' endpoints (the cluster's `affinity`) stays on that cluster, whatever it
//! draws, so a client the canary served keeps being served there.

use crate::tables::balancer::hashing::request_key;
use crate::tables::balancer::rng::Rng;
use crate::tables::cluster::Cluster;
use edgeplane_config::model::{self, HashOn};
use http::HeaderMap;

/// A compiled [`model::Split`].
#[derive(Debug)]
pub(crate) struct Split {
    /// Cluster index and the end of its run in `0..total`, in order.
    runs: Box<[(usize, u64)]>,
    total: u64,
    on: Option<HashOn>,
    rng: Rng,
}

/// What a request needs to be placed: its headers, path and client address.
pub(crate) struct Placement<'a> {
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// Its path.
    pub(crate) path: &'a str,
    /// The client's IP address, as text.
    pub(crate) client_ip: &'a [u8],
}

impl Split {
    /// Compiles a validated split.
    pub(crate) fn compile(split: &model::Split) -> Split {
        let mut end = 0u64;
        let runs = split
            .clusters
            .iter()
            .map(|w| {
                end += u64::from(w.weight);
                (w.cluster, end)
            })
            .collect();
        Split {
            runs,
            total: end,
            on: split.on.clone(),
            rng: Rng::from_entropy(),
        }
    }

    /// The position of the chosen cluster among the split's, and its index in `clusters` (`None`
    /// only if the weights sum to 0, which validation refuses).
    pub(crate) fn choose(
        &self,
        clusters: &[Cluster],
        req: &Placement<'_>,
    ) -> Option<(usize, usize)> {
        if let Some(sticky) = self.affine(clusters, req.headers) {
            return Some(sticky);
        }
        if self.total == 0 {
            return None;
        }
        let key = self
            .on
            .as_ref()
            .and_then(|on| request_key(on, req.headers, req.path, req.client_ip));
        let point = key.unwrap_or_else(|| self.rng.next_u64()) % self.total;
        self.runs
            .iter()
            .position(|&(_, end)| point < end)
            .map(|slot| (slot, self.runs[slot].0))
    }

    /// The cluster one of whose endpoints the request's affinity token names, if any.
    fn affine(&self, clusters: &[Cluster], headers: &HeaderMap) -> Option<(usize, usize)> {
        self.runs
            .iter()
            .enumerate()
            .find_map(|(slot, &(index, _))| {
                let affinity = clusters.get(index)?.affinity.as_ref()?;
                let token = affinity.requested(headers)?;
                affinity.endpoint(token).map(|_| (slot, index))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeplane_config::model::WeightedCluster;

    fn split(weights: &[u32], on: Option<HashOn>) -> Split {
        Split::compile(&model::Split {
            clusters: weights
                .iter()
                .enumerate()
                .map(|(cluster, &weight)| WeightedCluster { cluster, weight })
                .collect(),
            on,
        })
    }

    fn place<'a>(headers: &'a HeaderMap) -> Placement<'a> {
        Placement {
            headers,
            path: "/",
            client_ip: b"127.0.0.1",
        }
    }

    #[test]
    fn requests_follow_the_weights() {
        let s = split(&[95, 5], None);
        let h = HeaderMap::new();
        let mut counts = [0u32; 2];
        for _ in 0..20_000 {
            let (slot, index) = s.choose(&[], &place(&h)).unwrap();
            assert_eq!(slot, index);
            counts[slot] += 1;
        }
        // 5 % of 20,000 is 1,000; the bound is about ten standard deviations wide.
        assert!((700..1300).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn a_cluster_of_weight_zero_gets_nothing() {
        let s = split(&[0, 3, 0], None);
        let h = HeaderMap::new();
        for _ in 0..1000 {
            assert_eq!(s.choose(&[], &place(&h)), Some((1, 1)));
        }
    }

    #[test]
    fn a_keyed_client_stays_on_its_cluster_and_shifts_monotonically() {
        let before = split(&[90, 10], Some(HashOn::Header("x-user".into())));
        let after = split(&[80, 20], Some(HashOn::Header("x-user".into())));
        let mut moved_back = 0;
        let mut canary = 0;
        for user in 0..2000 {
            let mut h = HeaderMap::new();
            h.insert("x-user", format!("user-{user}").parse().unwrap());
            let first = before.choose(&[], &place(&h)).unwrap();
            for _ in 0..3 {
                assert_eq!(before.choose(&[], &place(&h)), Some(first));
            }
            let later = after.choose(&[], &place(&h)).unwrap();
            if first.0 == 1 {
                canary += 1;
                moved_back += usize::from(later.0 == 0);
            }
        }
        assert!(
            (120..280).contains(&canary),
            "{canary} of 2000 on a 10 % canary"
        );
        assert_eq!(moved_back, 0, "growing the canary sent its users back");
    }
}
