//! No import cycle between the files of proxy/src: every `crate::` path a file names (outside its
//! tests and comments), and every `super::` path to a sibling file, is an edge to the file that
//! defines it; a strongly connected group of files is
//! a cycle. Dependencies inside the crate run one way (ARCHITECTURE.md shows the layers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn modules(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let name = rel.to_string_lossy().replace('\\', "/");
            let name = name.strip_suffix("/mod").unwrap_or(&name).to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            // Test code may reach anywhere, and a doc link is not a dependency.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(name, code);
        }
    }
}

/// The module a `crate::a::b::C` path lands in: its longest prefix that is a file.
fn resolve(path: &str, mods: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("/"))
        .find(|m| mods.contains_key(m))
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in mods {
        let mut targets = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(0)];
                for item in inner.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("");
                    targets.extend(resolve(first, mods));
                }
            } else {
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                targets.extend(resolve(path.trim_end_matches(':'), mods));
            }
        }
        // `super::sibling::X` inside a folder: an edge to the sibling file (not to the parent,
        // which every child reaches by nature).
        if let Some((parent, _)) = m.rsplit_once('/') {
            for (i, _) in code.match_indices("super::") {
                let rest = &code[i + "super::".len()..];
                let paths: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => group[..group.find('}').unwrap_or(0)]
                        .split(',')
                        .map(|item| item.trim().to_string())
                        .collect(),
                    None => vec![rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect()],
                };
                for path in paths {
                    let full = format!("{parent}::{}", path.trim_end_matches(':'));
                    let full = full.replace('/', "::");
                    if let Some(t) = resolve(&full, mods).filter(|t| t != parent) {
                        targets.insert(t);
                    }
                }
            }
        }
        targets.retain(|t| t != m && !t.starts_with(&format!("{m}/")));
        g.insert(m.clone(), targets);
    }
    g
}

/// Strongly connected groups of more than one file (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: BTreeSet<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.insert(group);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: BTreeSet::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Each file's layer in an acyclic graph: 0 for a file that uses no other, else one more than the
/// highest layer it uses.
fn layers(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<usize, Vec<String>> {
    fn layer(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        memo: &mut BTreeMap<String, usize>,
    ) -> usize {
        if let Some(&l) = memo.get(m) {
            return l;
        }
        let l = g
            .get(m)
            .into_iter()
            .flatten()
            .map(|d| layer(d, g, memo) + 1)
            .max()
            .unwrap_or(0);
        memo.insert(m.to_string(), l);
        l
    }
    let mut memo = BTreeMap::new();
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for m in g.keys() {
        let l = layer(m, g, &mut memo);
        out.entry(l).or_default().push(m.clone());
    }
    out
}

/// Also prints the files by layer, bottom first (`-- --nocapture`): ARCHITECTURE.md sums it up.
#[test]
fn no_new_import_cycle_in_proxy_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    modules(&root, &root, &mut mods);
    let g = edges(&mods);
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles in proxy/src (each group's files depend on each other): {found:?}"
    );
    for (l, files) in layers(&g) {
        println!("{l:>2}  {}", files.join(", "));
    }
}

#[test]
fn the_check_finds_a_cycle_it_is_given() {
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), "use crate::b::X;".to_string());
    mods.insert("b".to_string(), "use crate::{c, d::Y};".to_string());
    mods.insert("c".to_string(), "fn f() { crate::a::g() }".to_string());
    mods.insert("d".to_string(), String::new());
    let found = cycles(&edges(&mods));
    assert_eq!(found.len(), 1);
    // Without the cycle, the layers run from the file that uses none.
    mods.insert("c".to_string(), String::new());
    let l = layers(&edges(&mods));
    assert_eq!(l[&0], ["c", "d"]);
    assert_eq!(l[&1], ["b"]);
    assert_eq!(l[&2], ["a"]);
    assert_eq!(found.iter().next().unwrap(), &["a", "b", "c"]);
    // Siblings in a folder reaching each other through `super::`.
    let mut mods = BTreeMap::new();
    mods.insert("h".to_string(), String::new());
    mods.insert("h/p".to_string(), "use super::t::{Line, T};".to_string());
    mods.insert("h/t".to_string(), "use super::{p::Span, X};".to_string());
    let found = cycles(&edges(&mods));
    assert_eq!(found.iter().next().unwrap(), &["h/p", "h/t"]);
}
