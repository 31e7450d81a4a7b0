//! A small namespace-aware XML element tree for WebDAV request bodies.
//!
//! Request bodies are bounded (see `Limits`), so a tree is cheaper to reason about than a
//! streaming state machine per method. Namespace scopes are tracked here rather than with
//! quick-xml's `NsReader` because dead properties must be stored byte-exact (RFC 4918 4.3 and
//! litmus `propvalnspace`): storing a property's inner bytes is only sound together with every
//! prefix binding in scope at that point, and this tree keeps exactly that.
//!
//! Must never: expand a DTD or any entity beyond the five predefined ones and character
//! references (a DOCTYPE is refused), or allocate without bound.

use std::ops::Range;
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Limits applied while parsing; exceeding one is a client error, never a panic.
#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_depth: 64,
            max_elements: 50_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("malformed XML at byte {pos}: {msg}")]
    Malformed { pos: u64, msg: String },
    #[error("XML nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("XML body has more than {0} elements")]
    TooManyElements(usize),
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("undeclared namespace prefix '{0}'")]
    UnboundPrefix(String),
    #[error("empty request body where XML was required")]
    Empty,
}

/// Prefix bindings in scope: `(prefix, uri)`; the default namespace has prefix `""`.
pub type Scope = Arc<Vec<(String, String)>>;

#[derive(Debug, Clone)]
pub struct Element {
    /// Resolved namespace URI (`""` = no namespace).
    pub ns: String,
    pub local: String,
    /// The name as written, with its prefix.
    pub qname: String,
    /// Non-namespace attributes: (qname as written, unescaped value).
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// Concatenated character data directly inside this element.
    pub text: String,
    /// Byte range of this element's content (between the tags) in the source.
    pub inner: Range<usize>,
    /// Raw bytes of the attributes in the start tag, as written.
    pub raw_attrs: String,
    pub scope: Scope,
}

impl Element {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The prefixes (`""` for the default namespace) that this element and its descendants
    /// use in their names and attribute names. Walked with an explicit stack.
    fn used_prefixes(&self) -> std::collections::HashSet<&str> {
        let mut used = std::collections::HashSet::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            used.insert(split_qname(&e.qname).0);
            for (k, _) in &e.attrs {
                if k.contains(':') {
                    used.insert(split_qname(k).0);
                }
            }
            stack.extend(e.children.iter());
        }
        used
    }

    /// The element re-serialised so that it stands alone: original qname, the bindings in
    /// scope that it or its descendants use, original attributes, and the inner bytes exactly
    /// as received. Bindings nobody uses are left out, so a value costs what it holds, not
    /// what the request declared around it.
    pub fn standalone(&self, source: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.inner.len() + 64);
        out.push(b'<');
        out.extend_from_slice(self.qname.as_bytes());
        let used = self.used_prefixes();
        for (prefix, uri) in self.scope.iter().filter(|(p, _)| used.contains(p.as_str())) {
            if prefix.is_empty() {
                out.extend_from_slice(b" xmlns=\"");
            } else {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(b"=\"");
            }
            out.extend_from_slice(quick_xml::escape::escape(uri.as_str()).as_bytes());
            out.push(b'"');
        }
        for (k, v) in &self.attrs {
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            out.extend_from_slice(quick_xml::escape::escape(v.as_str()).as_bytes());
            out.push(b'"');
        }
        if self.inner.is_empty() {
            out.extend_from_slice(b"/>");
        } else {
            out.push(b'>');
            out.extend_from_slice(&source[self.inner.clone()]);
            out.extend_from_slice(b"</");
            out.extend_from_slice(self.qname.as_bytes());
            out.push(b'>');
        }
        out
    }
}

struct Open {
    el: Element,
    inner_start: usize,
}

fn bad(pos: u64, msg: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        pos,
        msg: msg.to_string(),
    }
}

fn split_qname(q: &str) -> (&str, &str) {
    match q.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", q),
    }
}

fn resolve(scope: &[(String, String)], prefix: &str) -> Option<String> {
    if prefix == "xml" {
        return Some("http://www.w3.org/XML/1998/namespace".into());
    }
    scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, u)| u.clone())
}

fn open_element(
    start: &BytesStart<'_>,
    parent_scope: &Scope,
    pos: u64,
) -> Result<Element, XmlError> {
    let qname = AsRef::<str>::as_ref(&start.name()).to_string();
    let mut decls: Vec<(String, String)> = Vec::new();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| bad(pos, e))?;
        let key = AsRef::<str>::as_ref(&a.key).to_string();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| bad(pos, e))?
            .into_owned();
        if key == "xmlns" {
            decls.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                // Namespaces in XML 1.0 section 3: prefix undeclaring is not allowed.
                return Err(bad(pos, format!("empty namespace for prefix '{p}'")));
            }
            decls.push((p.to_string(), value));
        } else {
            attrs.push((key, value));
        }
    }
    let scope = if decls.is_empty() {
        parent_scope.clone()
    } else {
        let mut s: Vec<(String, String)> = parent_scope
            .iter()
            .filter(|(p, _)| !decls.iter().any(|(dp, _)| dp == p))
            .cloned()
            .collect();
        s.extend(decls);
        Arc::new(s)
    };
    let (prefix, local) = split_qname(&qname);
    let ns = match resolve(&scope, prefix) {
        Some(u) => u,
        None if prefix.is_empty() => String::new(),
        None => return Err(XmlError::UnboundPrefix(prefix.to_string())),
    };
    for (k, _) in &attrs {
        let (p, _) = split_qname(k);
        if !p.is_empty() && resolve(&scope, p).is_none() {
            return Err(XmlError::UnboundPrefix(p.to_string()));
        }
    }
    let raw_attrs = String::from_utf8_lossy(start.attributes_raw().as_bytes()).into_owned();
    Ok(Element {
        ns,
        local: local.to_string(),
        qname,
        attrs,
        children: Vec::new(),
        text: String::new(),
        inner: 0..0,
        raw_attrs,
        scope,
    })
}

/// Parse a whole document and return its root element.
pub fn parse(source: &[u8], limits: XmlLimits) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(source).map_err(|e| bad(e.valid_up_to() as u64, e))?;
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let empty_scope: Scope = Arc::new(Vec::new());
    loop {
        let before = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| bad(reader.error_position(), e))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(s) | Event::Empty(s) if root.is_some() => {
                let _ = s;
                return Err(bad(before, "content after the root element"));
            }
            Event::Start(s) => {
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError::TooManyElements(limits.max_elements));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                let scope = stack
                    .last()
                    .map(|o| o.el.scope.clone())
                    .unwrap_or_else(|| empty_scope.clone());
                let el = open_element(&s, &scope, before)?;
                stack.push(Open {
                    el,
                    inner_start: after,
                });
            }
            Event::Empty(s) => {
                count += 1;
                if count > limits.max_elements {
                    return Err(XmlError::TooManyElements(limits.max_elements));
                }
                let scope = stack
                    .last()
                    .map(|o| o.el.scope.clone())
                    .unwrap_or_else(|| empty_scope.clone());
                let mut el = open_element(&s, &scope, before)?;
                el.inner = after..after;
                match stack.last_mut() {
                    Some(parent) => parent.el.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(mut open) = stack.pop() else {
                    return Err(bad(before, "unexpected end tag"));
                };
                open.el.inner = open.inner_start..before as usize;
                match stack.last_mut() {
                    Some(parent) => parent.el.children.push(open.el),
                    None => root = Some(open.el),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(o) => o.el.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(bad(before, "text outside the root element")),
                }
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                match stack.last_mut() {
                    Some(o) => o.el.text.push_str(&content),
                    None => return Err(bad(before, "CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(|e| bad(before, e))? {
                        Some(c) => c.to_string(),
                        None => return Err(bad(before, "invalid character reference")),
                    }
                } else {
                    let name = r.into_inner();
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_string(),
                        None => return Err(bad(before, format!("unknown entity '&{name};'"))),
                    }
                };
                match stack.last_mut() {
                    Some(o) => o.el.text.push_str(&resolved),
                    None => return Err(bad(before, "reference outside the root element")),
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(bad(text.len() as u64, "unclosed element"));
    }
    root.ok_or_else(|| bad(0, "no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_prefixes_and_default_namespace() {
        let src = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><getetag xmlns="DAV:"/><C:x xmlns:C="urn:c"/></D:prop></D:propfind>"#;
        let root = parse(src, XmlLimits::default()).unwrap();
        assert!(root.is("DAV:", "propfind"));
        let prop = root.child("DAV:", "prop").unwrap();
        assert!(prop.children[0].is("DAV:", "getetag"));
        assert!(prop.children[1].is("urn:c", "x"));
    }

    #[test]
    fn entity_references_are_joined_into_text() {
        let src = br#"<a xmlns="DAV:"><href>/x/a&amp;b&#65;.ics</href></a>"#;
        let root = parse(src, XmlLimits::default()).unwrap();
        assert_eq!(root.children[0].text, "/x/a&bA.ics");
    }

    #[test]
    fn refuses_doctype_unbound_prefix_and_depth() {
        assert_eq!(
            parse(
                b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>",
                XmlLimits::default()
            )
            .err(),
            Some(XmlError::Doctype)
        );
        assert!(matches!(
            parse(b"<Q:x/>", XmlLimits::default()),
            Err(XmlError::UnboundPrefix(_))
        ));
        let deep = "<a>".repeat(10) + &"</a>".repeat(10);
        let lim = XmlLimits {
            max_depth: 5,
            max_elements: 100,
        };
        assert_eq!(
            parse(deep.as_bytes(), lim).err(),
            Some(XmlError::TooDeep(5))
        );
        assert!(matches!(
            parse(b"<a><b></a>", XmlLimits::default()),
            Err(XmlError::Malformed { .. })
        ));
    }

    #[test]
    fn standalone_keeps_inner_bytes_and_scope() {
        let src = br#"<D:set xmlns:D="DAV:" xmlns:Z="urn:z"><Z:p a="1"><Z:q>t &amp; u</Z:q></Z:p></D:set>"#;
        let root = parse(src, XmlLimits::default()).unwrap();
        let p = &root.children[0];
        let out = String::from_utf8(p.standalone(src)).unwrap();
        assert!(out.starts_with("<Z:p xmlns:Z=\"urn:z\" a=\"1\">"), "{out}");
        assert!(out.ends_with("<Z:q>t &amp; u</Z:q></Z:p>"));
        let again = parse(out.as_bytes(), XmlLimits::default()).unwrap();
        assert!(again.is("urn:z", "p"));
    }

    /// A property value carries the bindings it uses, not every one in scope: 2,000
    /// declarations around a one-element value stored 2,000 bindings per property.
    #[test]
    fn standalone_keeps_only_the_bindings_used() {
        let decls: String = (0..2000)
            .map(|i| format!(" xmlns:n{i}=\"urn:{i}\""))
            .collect();
        let src = format!(
            r#"<D:set xmlns:D="DAV:"{decls}><n7:p n9:a="1"><q xmlns="urn:q"><n8:r/></q></n7:p></D:set>"#
        );
        let root = parse(src.as_bytes(), XmlLimits::default()).unwrap();
        let out = String::from_utf8(root.children[0].standalone(src.as_bytes())).unwrap();
        assert!(out.len() < 200, "{} bytes: {out}", out.len());
        for used in ["xmlns:n7=", "xmlns:n8=", "xmlns:n9="] {
            assert!(out.contains(used), "{used} missing from {out}");
        }
        let again = parse(out.as_bytes(), XmlLimits::default()).unwrap();
        assert!(again.is("urn:7", "p"));
    }
}
