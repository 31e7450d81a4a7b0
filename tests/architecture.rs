//! Architecture invariants from ARCHITECTURE.md, checked by reading the source: module layering,
//! which crates each module may touch, module docs, and no `println!` in the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module: a module may use only modules of a lower layer. The
/// modules still to come (`crypto`, `vault`, `remind`, `notify`, `proxy`) have
/// their place. ARCHITECTURE.md carries the same table (checked below).
const LAYERS: &[(&str, u8)] = &[
    ("ical", 0),
    ("dav", 0),
    ("crypto", 0),
    ("clock", 0),
    ("store", 1),
    ("directory", 1),
    ("mail", 1),
    ("vault", 1),
    ("auth", 2),
    ("org", 2),
    ("calendar", 3),
    ("bridge", 3),
    ("share", 4),
    ("feed", 4),
    ("remind", 4),
    ("notify", 4),
    ("caldav", 5),
    ("web", 6),
    ("proxy", 6),
    ("app", 7),
];

/// External crates confined to one module (and the composition root).
const CONFINED: &[(&str, &[&str])] = &[
    ("sqlx", &["store"]),
    ("rusqlite", &["store"]),
    ("lettre", &["mail"]),
    ("ldap3", &["directory"]),
    // ldap3's rustls in `directory`; in `proxy`, the one tokio_rustls re-exports.
    ("rustls", &["directory", "proxy"]),
    // PEM CA files: `[ldap] ca_file` and `[bridge] ca_file`.
    ("rustls_pemfile", &["directory", "proxy"]),
    // TLS to business systems (the login proxy's own connections, imaps).
    ("tokio_rustls", &["proxy"]),
    ("webpki_roots", &["proxy"]),
    // The login proxy (`proxy::gateway`) serves the system hosts' requests itself.
    ("axum", &["web", "proxy", "app"]),
    ("tower_http", &["web"]),
    ("icalrs", &["ical"]),
    ("argon2", &["auth"]),
    ("openidconnect", &["auth"]),
    ("chacha20poly1305", &["crypto"]),
    ("zeroize", &["crypto", "vault"]),
    ("reqwest", &["auth", "proxy", "vault"]),
    ("html5gum", &["proxy"]),
    ("cookie", &["proxy"]),
    ("async_imap", &["proxy"]),
    ("hyper", &["proxy"]),
    ("hyper_util", &["proxy"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let m = first.trim_end_matches(".rs").to_string();
    (m != "lib" && m != "main").then_some(m)
}

/// Every `crate::name` path mentioned in code (not comments).
fn crate_refs(text: &str) -> Vec<String> {
    let mut out = vec![];
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + 7..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            } else if let Some(list) = after.strip_prefix('{') {
                let inner = list.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let n: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !n.is_empty() {
                        out.push(n);
                    }
                }
            }
            rest = after;
        }
    }
    out
}

/// Whether `line` names `krate::` as a path of its own (`tokio_rustls::` does not name
/// `rustls::`).
fn names_crate(line: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    line.match_indices(&needle).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut violations = vec![];
    for f in &files {
        let Some(m) = module_of(&src, f) else {
            continue;
        };
        let Some(&mine) = layer.get(m.as_str()) else {
            violations.push(format!(
                "{}: module '{m}' is not in the layer table",
                f.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for r in crate_refs(&text) {
            if r == m {
                continue;
            }
            match layer.get(r.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(_) => violations.push(format!("{}: '{m}' must not use '{r}'", f.display())),
                None => {}
            }
        }
        for (krate, allowed) in CONFINED {
            let used = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| names_crate(l, krate));
            if used && !allowed.contains(&m.as_str()) {
                violations.push(format!(
                    "{}: '{krate}' is confined to {allowed:?}",
                    f.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "architecture violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_file_says_what_it_owns_and_nothing_prints() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut problems = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{}: no //! module doc", f.display()));
        }
        if text.contains("println!") || text.contains("dbg!") {
            problems.push(format!(
                "{}: println!/dbg! in the server; use tracing",
                f.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The layer table in ARCHITECTURE.md: each row `| N | `a`, *`b`* | ... |`.
fn documented_layers(doc: &str) -> Vec<(String, u8)> {
    let mut out = vec![];
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<u8>() else {
            continue;
        };
        for m in cells[2].split(',') {
            let name = m.trim().trim_matches('*').trim_matches('`');
            if !name.is_empty() {
                out.push((name.to_string(), layer));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_documented_layer_table_is_the_enforced_one() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let mut enforced: Vec<(String, u8)> = LAYERS.iter().map(|(m, l)| (m.to_string(), *l)).collect();
    enforced.sort();
    assert_eq!(
        documented_layers(&doc),
        enforced,
        "ARCHITECTURE.md's layer table"
    );
    // Every module that exists is in it.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let name = e
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if name != "lib" && name != "main" {
            assert!(
                enforced.iter().any(|(m, _)| *m == name),
                "module '{name}' is not in the layer table"
            );
        }
    }
}

#[test]
fn the_checker_sees_violations() {
    assert_eq!(
        documented_layers("| 2 | `auth`, *`calendar`* | domain |\n| layer | modules | x |\n"),
        vec![("auth".to_string(), 2), ("calendar".to_string(), 2)]
    );
    // Guard the guard: the reference parser must find both spellings.
    let refs = crate_refs(
        "use crate::store::Store;\nuse crate::{dav, web::x};\n// crate::app in a comment\n",
    );
    assert_eq!(refs, vec!["store", "dav", "web"]);
}
