//! Validation of where a route sends its requests: one cluster, clusters by weight, or nowhere (the
//! route answers itself).

use super::Validator;
use crate::model::*;
use crate::raw::*;

/// Largest weight of one of a route's clusters (their sum stays far below `u32::MAX`).
const MAX_WEIGHT: i64 = 1_000_000;

impl Validator {
    /// The route's cluster or split (`answers`: the route has its own answer, so it takes neither).
    pub(super) fn route_target(
        &mut self,
        path: &str,
        raw: &RawRoute,
        clusters: &[Cluster],
        answers: bool,
    ) -> (Option<usize>, Option<Split>) {
        let named = !raw.cluster.is_empty();
        let weighted = !raw.weighted_clusters.is_empty();
        if raw.split_on.is_some() && !weighted {
            self.error(format!("{path}.split_on"), "only with weighted_clusters");
        }
        match (named, weighted) {
            (true, true) => {
                self.error(path, "set at most one of cluster, weighted_clusters");
                (None, None)
            }
            (_, _) if answers && (named || weighted) => {
                let key = if named {
                    "cluster"
                } else {
                    "weighted_clusters"
                };
                self.error(
                    format!("{path}.{key}"),
                    "a route that answers itself (redirect, direct) has no cluster",
                );
                (None, None)
            }
            (true, false) => (
                self.cluster_index(&format!("{path}.cluster"), &raw.cluster, clusters),
                None,
            ),
            (false, true) => (None, self.split(path, raw, clusters)),
            (false, false) if answers => (None, None),
            (false, false) => {
                self.error(
                    format!("{path}.cluster"),
                    "required (or weighted_clusters, or a redirect or direct answer)",
                );
                (None, None)
            }
        }
    }

    /// The index of the cluster called `name`, or an error at `path`.
    fn cluster_index(&mut self, path: &str, name: &str, clusters: &[Cluster]) -> Option<usize> {
        let index = clusters.iter().position(|c| c.name == name);
        if index.is_none() {
            self.error(path, format!("unknown cluster {name:?}"));
        }
        index
    }

    /// `[routes.mirror]` (`answers`: the route has its own answer, so nothing to mirror).
    pub(super) fn mirror(
        &mut self,
        path: &str,
        raw: Option<&RawMirror>,
        clusters: &[Cluster],
        answers: bool,
    ) -> Option<Mirror> {
        use crate::model::defaults::route::mirror as d;
        let raw = raw?;
        let path = format!("{path}.mirror");
        if answers {
            self.error(
                &path,
                "a route that answers itself (redirect, direct) sends nothing to mirror",
            );
        }
        let cluster = if raw.cluster.is_empty() {
            self.error(format!("{path}.cluster"), "required");
            None
        } else {
            self.cluster_index(&format!("{path}.cluster"), &raw.cluster, clusters)
        };
        let percent = raw.percent.unwrap_or(d::PERCENT);
        if !(0.0..=100.0).contains(&percent) {
            self.error(
                format!("{path}.percent"),
                format!("{percent} is out of range 0..=100"),
            );
        }
        let per_million = (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32;
        let max_body = self.int(
            &format!("{path}.max_body"),
            raw.max_body,
            d::MAX_BODY,
            0,
            64 << 20,
        ) as u64;
        let max_concurrent = self.int(
            &format!("{path}.max_concurrent"),
            raw.max_concurrent,
            d::MAX_CONCURRENT,
            1,
            100_000,
        );
        Some(Mirror {
            cluster: cluster?,
            per_million,
            max_body,
            max_concurrent,
        })
    }

    /// `[routes.compression]`.
    pub(super) fn compression(
        &mut self,
        path: &str,
        raw: Option<&RawCompression>,
    ) -> Option<Compression> {
        use crate::model::defaults::route::compression as d;
        let raw = raw?;
        let path = format!("{path}.compression");
        let names: Vec<String> = match &raw.algorithms {
            Some(list) => list.clone(),
            None => d::ALGORITHMS.iter().map(|a| a.to_string()).collect(),
        };
        if names.is_empty() {
            self.error(
                format!("{path}.algorithms"),
                "name at least one of zstd, br, gzip",
            );
        }
        let mut algorithms = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match Encoding::ALL.iter().find(|(n, _)| n == name) {
                Some((_, e)) if algorithms.contains(e) => self.error(
                    format!("{path}.algorithms[{i}]"),
                    format!("{name:?} is listed twice"),
                ),
                Some((_, e)) => algorithms.push(*e),
                None => self.error(
                    format!("{path}.algorithms[{i}]"),
                    format!("unknown encoding {name:?}; expected zstd, br or gzip"),
                ),
            }
        }
        let min_size = self.int(
            &format!("{path}.min_size"),
            raw.min_size,
            d::MIN_SIZE,
            0,
            1 << 30,
        ) as u64;
        let types: Vec<String> = match &raw.content_types {
            Some(list) => list.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
            None => d::CONTENT_TYPES.iter().map(|t| t.to_string()).collect(),
        };
        for (i, t) in types.iter().enumerate() {
            let valid = t.split_once('/').is_some_and(|(a, b)| {
                let token = |s: &str| !s.is_empty() && s.bytes().all(super::is_token_byte);
                token(a) && (b == "*" || token(b))
            });
            if !valid {
                self.error(
                    format!("{path}.content_types[{i}]"),
                    format!("expected type/subtype or type/*, not {t:?}"),
                );
            }
        }
        Some(Compression {
            algorithms,
            min_size,
            content_types: types,
        })
    }

    /// `weighted_clusters` and `split_on`.
    fn split(&mut self, path: &str, raw: &RawRoute, clusters: &[Cluster]) -> Option<Split> {
        let mut shares = Vec::with_capacity(raw.weighted_clusters.len());
        let mut total = 0u64;
        for (j, w) in raw.weighted_clusters.iter().enumerate() {
            let at = format!("{path}.weighted_clusters[{j}]");
            if w.cluster.is_empty() {
                self.error(format!("{at}.cluster"), "required");
            } else if raw.weighted_clusters[..j]
                .iter()
                .any(|earlier| earlier.cluster == w.cluster)
            {
                self.error(
                    format!("{at}.cluster"),
                    format!("cluster {:?} is named twice", w.cluster),
                );
            }
            if w.weight.is_none() {
                self.error(format!("{at}.weight"), "required");
            }
            let weight = self.int(&format!("{at}.weight"), w.weight, 0, 0, MAX_WEIGHT) as u32;
            total += u64::from(weight);
            let index = if w.cluster.is_empty() {
                None
            } else {
                self.cluster_index(&format!("{at}.cluster"), &w.cluster, clusters)
            };
            if let Some(cluster) = index {
                shares.push(WeightedCluster { cluster, weight });
            }
        }
        let in_range =
            |w: &RawWeightedCluster| w.weight.is_some_and(|v| (0..=MAX_WEIGHT).contains(&v));
        if total == 0 && raw.weighted_clusters.iter().all(in_range) {
            self.error(
                format!("{path}.weighted_clusters"),
                "the weights sum to 0: no cluster would get a request",
            );
        }
        let on = raw
            .split_on
            .as_ref()
            .map(|h| self.hash_on(&format!("{path}.split_on"), Some(h)));
        Some(Split {
            clusters: shares,
            on,
        })
    }
}
