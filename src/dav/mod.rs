//! Generic WebDAV (RFC 4918, RFC 3744, RFC 6578) wire format: request bodies parsed once into
//! typed requests, the `DAV:` property vocabulary, precondition conditions, and the multistatus
//! writer.
//!
//! Pure: no I/O, no SQL, no HTTP server, and no calendar concepts (those belong to `caldav`,
//! which builds on this module).

pub mod xml;

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

pub use xml::{Element, XmlError, XmlLimits};

pub const NS_DAV: &str = "DAV:";
pub const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const NS_CS: &str = "http://calendarserver.org/ns/";
pub const NS_APPLE: &str = "http://apple.com/ns/ical/";
/// Convene's own namespace: its request bodies and notification types (README), and the
/// human-readable message in an error body. One value: clients have been sent this one.
pub const NS_CONVENE: &str = "urn:x-convene:ns";

/// Prefixes declared once on every multistatus root; any other namespace is declared inline.
const ROOT_PREFIXES: &[(&str, &str)] = &[
    ("D", NS_DAV),
    ("C", NS_CALDAV),
    ("CS", NS_CS),
    ("A", NS_APPLE),
];

/// A property or element name in Clark terms, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropertyName {
    pub ns: String,
    pub local: String,
}

impl PropertyName {
    pub fn new(ns: &str, local: &str) -> Self {
        PropertyName {
            ns: ns.to_string(),
            local: local.to_string(),
        }
    }

    pub fn of(el: &Element) -> Self {
        PropertyName::new(&el.ns, &el.local)
    }

    /// An empty element for this name, valid inside a multistatus written by [`Multistatus`].
    pub fn empty_element(&self) -> String {
        match prefix_for(&self.ns) {
            Some(p) => format!("<{p}:{}/>", self.local),
            None if self.ns.is_empty() => format!("<{} xmlns=\"\"/>", self.local),
            None => format!(
                "<X:{} xmlns:X=\"{}\"/>",
                self.local,
                quick_xml::escape::escape(self.ns.as_str())
            ),
        }
    }
}

impl std::fmt::Display for PropertyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}{}", self.ns, self.local)
    }
}

pub fn prefix_for(ns: &str) -> Option<&'static str> {
    ROOT_PREFIXES
        .iter()
        .find(|(_, u)| *u == ns)
        .map(|(p, _)| *p)
}

/// The `Depth` request header (RFC 4918 10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Zero,
    One,
    Infinity,
}

impl Depth {
    pub fn parse(value: Option<&str>) -> Result<Option<Depth>, DavError> {
        match value.map(str::trim) {
            None => Ok(None),
            Some("0") => Ok(Some(Depth::Zero)),
            Some("1") => Ok(Some(Depth::One)),
            Some(v) if v.eq_ignore_ascii_case("infinity") => Ok(Some(Depth::Infinity)),
            Some(other) => Err(DavError::bad_request(format!(
                "invalid Depth header '{other}'"
            ))),
        }
    }
}

/// The strong ETag of stored bytes (quoted): the first 128 bits of their SHA-256. Every
/// writer of calendar data uses this one function, so an ETag never depends on who wrote.
pub fn etag_of(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("\"{}\"", hex::encode(&Sha256::digest(data)[..16]))
}

/// RFC 3744 3 privileges, with CalDAV's (RFC 4791 6.1.1, RFC 6638 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Read,
    Write,
    WriteProperties,
    WriteContent,
    WriteAcl,
    Bind,
    Unbind,
    ReadAcl,
    ReadCurrentUserPrivilegeSet,
    ReadFreeBusy,
    ScheduleDeliver,
    ScheduleSend,
}

impl Privilege {
    /// The element as written in a multistatus (`D:` is DAV:, `C:` is CalDAV).
    pub fn prefixed(self) -> &'static str {
        match self {
            Privilege::Read => "<D:read/>",
            Privilege::Write => "<D:write/>",
            Privilege::WriteProperties => "<D:write-properties/>",
            Privilege::WriteContent => "<D:write-content/>",
            Privilege::WriteAcl => "<D:write-acl/>",
            Privilege::Bind => "<D:bind/>",
            Privilege::Unbind => "<D:unbind/>",
            Privilege::ReadAcl => "<D:read-acl/>",
            Privilege::ReadCurrentUserPrivilegeSet => "<D:read-current-user-privilege-set/>",
            Privilege::ReadFreeBusy => "<C:read-free-busy/>",
            Privilege::ScheduleDeliver => "<C:schedule-deliver/>",
            Privilege::ScheduleSend => "<C:schedule-send/>",
        }
    }

    /// The element on its own, where only `D:` is declared (an error body).
    pub fn standalone(self) -> &'static str {
        match self {
            Privilege::ReadFreeBusy => {
                "<C:read-free-busy xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>"
            }
            Privilege::ScheduleDeliver => {
                "<C:schedule-deliver xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>"
            }
            Privilege::ScheduleSend => {
                "<C:schedule-send xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>"
            }
            other => other.prefixed(),
        }
    }
}

/// `DAV:` preconditions and postconditions (RFC 4918 16, RFC 3744 7.1.1, RFC 6578 3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DavCondition {
    PropfindFiniteDepth,
    CannotModifyProtectedProperty,
    ValidSyncToken,
    NumberOfMatchesWithinLimits,
    NeedPrivileges {
        href: String,
        privilege: Privilege,
    },
    ResourceMustBeNull,
    ValidResourcetype,
    /// RFC 3253 3.6: the REPORT is not one this resource answers.
    SupportedReport,
    /// RFC 6578 3.3: an infinite sync-level here is not supported.
    SyncTraversalSupported,
}

/// A typed condition: its namespace, element name and pre-rendered children (already escaped
/// XML). The only way to build a [`Condition`], so every condition the server sends is a case
/// of a closed enum (`DavCondition` here, `caldav::CalCondition` for RFC 4791 and 6638).
pub trait Precondition {
    fn element(self) -> (&'static str, &'static str, String);
}

/// A condition element, rendered inside `<D:error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    ns: &'static str,
    name: &'static str,
    body: String,
}

impl Condition {
    pub fn ns(&self) -> &'static str {
        self.ns
    }
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<P: Precondition> From<P> for Condition {
    fn from(p: P) -> Self {
        let (ns, name, body) = p.element();
        Condition { ns, name, body }
    }
}

impl Precondition for DavCondition {
    fn element(self) -> (&'static str, &'static str, String) {
        let (name, body) = match self {
            DavCondition::PropfindFiniteDepth => ("propfind-finite-depth", String::new()),
            DavCondition::CannotModifyProtectedProperty => {
                ("cannot-modify-protected-property", String::new())
            }
            DavCondition::ValidSyncToken => ("valid-sync-token", String::new()),
            DavCondition::NumberOfMatchesWithinLimits => {
                ("number-of-matches-within-limits", String::new())
            }
            DavCondition::NeedPrivileges { href, privilege } => (
                "need-privileges",
                format!(
                    "<D:resource><D:href>{}</D:href><D:privilege>{}</D:privilege></D:resource>",
                    escape(&href),
                    privilege.standalone()
                ),
            ),
            DavCondition::ResourceMustBeNull => ("resource-must-be-null", String::new()),
            DavCondition::ValidResourcetype => ("valid-resourcetype", String::new()),
            DavCondition::SupportedReport => ("supported-report", String::new()),
            DavCondition::SyncTraversalSupported => ("sync-traversal-supported", String::new()),
        };
        (NS_DAV, name, body)
    }
}

/// A protocol-level failure: a status, an optional condition element and a human message.
/// Turning one into a response has no side effects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct DavError {
    pub status: u16,
    pub condition: Option<Condition>,
    pub message: String,
}

impl DavError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        DavError {
            status,
            condition: None,
            message: message.into(),
        }
    }
    pub fn with(status: u16, condition: impl Into<Condition>, message: impl Into<String>) -> Self {
        DavError {
            status,
            condition: Some(condition.into()),
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        DavError::new(400, message)
    }
    pub fn not_found() -> Self {
        DavError::new(404, "no such resource")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        DavError::new(403, message)
    }

    /// The `<D:error>` body (RFC 4918 16), with the message in a Convene element so clients that
    /// only look for the condition are not confused.
    pub fn body(&self) -> String {
        let mut s =
            String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"");
        if let Some(c) = &self.condition {
            match prefix_for(c.ns) {
                Some("D") => {
                    let _ = write!(s, "><D:{}", c.name);
                }
                _ => {
                    let _ = write!(s, "><E:{} xmlns:E=\"{}\"", c.name, c.ns);
                }
            }
            let prefix = if c.ns == NS_DAV { "D" } else { "E" };
            if c.body.is_empty() {
                s.push_str("/>");
            } else {
                let _ = write!(s, ">{}</{prefix}:{}>", c.body, c.name);
            }
        } else {
            s.push('>');
        }
        let _ = writeln!(
            s,
            "<M:message xmlns:M=\"{NS_CONVENE}\">{}</M:message></D:error>",
            escape(&self.message)
        );
        s
    }
}

impl From<XmlError> for DavError {
    fn from(e: XmlError) -> Self {
        DavError::bad_request(e.to_string())
    }
}

pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Append `s` as XML character data. Only `<`, `>` and `&` are escaped: quotes need no escape
/// outside attributes, so an ETag or an href is copied as it is, which is most of a report.
pub fn push_text(out: &mut String, s: &str) {
    if memchr::memchr3(b'<', b'>', b'&', s.as_bytes()).is_some() {
        out.push_str(&quick_xml::escape::partial_escape(s));
    } else {
        out.push_str(s);
    }
}

/// Path characters that stay literal in hrefs we write; everything else, `@` included, is
/// percent-encoded (RFC 3986 2.1) so every client parses the same path back.
const HREF_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, HREF_ENCODE).to_string()
}

/// `encode_path`, appended to `out` (a report writes one per member: no string of its own).
pub fn push_encoded_path(out: &mut String, path: &str) {
    out.extend(utf8_percent_encode(path, HREF_ENCODE));
}

/// Percent-decode a request path into its segments. `..`, `.` and embedded NULs are refused.
pub fn decode_segments(path: &str) -> Result<Vec<String>, DavError> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        out.push(decode_segment(raw)?);
    }
    Ok(out)
}

/// Percent-decode one non-empty path segment, with the checks of `decode_segments`.
pub fn decode_segment(raw: &str) -> Result<String, DavError> {
    let seg = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| DavError::bad_request("path is not valid UTF-8"))?;
    if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') || seg.contains('/') {
        return Err(DavError::bad_request("invalid path segment"));
    }
    Ok(seg.into_owned())
}

/// Reduce an href (absolute URL or absolute path) from a request body or `Destination` header
/// to its path.
pub fn href_path(href: &str) -> &str {
    let h = href.trim();
    if let Some(rest) = h
        .strip_prefix("http://")
        .or_else(|| h.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        h
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// PROPFIND body (RFC 4918 9.1, 14.20). An empty body means allprop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropfindRequest {
    AllProp { include: Vec<PropertyName> },
    PropName,
    Prop(Vec<PropertyName>),
}

pub fn parse_propfind(body: &[u8], limits: XmlLimits) -> Result<PropfindRequest, DavError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropfindRequest::AllProp { include: vec![] });
    }
    let root = xml::parse(body, limits)?;
    if !root.is(NS_DAV, "propfind") {
        return Err(DavError::bad_request("expected DAV:propfind"));
    }
    let mut result = None;
    let mut include = vec![];
    for c in &root.children {
        if c.ns != NS_DAV {
            continue;
        }
        let kind = match c.local.as_str() {
            "allprop" => PropfindRequest::AllProp { include: vec![] },
            "propname" => PropfindRequest::PropName,
            "prop" => PropfindRequest::Prop(prop_names(c)),
            "include" => {
                include = prop_names(c);
                continue;
            }
            _ => continue,
        };
        // RFC 4918 14.20: one of propname, allprop or prop, not two.
        if result.replace(kind).is_some() {
            return Err(DavError::bad_request(
                "DAV:propfind takes one of prop, allprop or propname",
            ));
        }
    }
    match result {
        Some(PropfindRequest::AllProp { .. }) => Ok(PropfindRequest::AllProp { include }),
        Some(r) => Ok(r),
        None => Err(DavError::bad_request(
            "DAV:propfind needs one of prop, allprop or propname",
        )),
    }
}

pub fn prop_names(prop: &Element) -> Vec<PropertyName> {
    prop.children.iter().map(PropertyName::of).collect()
}

/// One PROPPATCH instruction, in document order (RFC 4918 9.2: applied in order, atomically).
#[derive(Debug, Clone)]
pub enum PatchOp {
    /// The parsed element (for typed values) and its standalone bytes (for dead storage).
    Set(Element, Vec<u8>),
    Remove(PropertyName),
}

impl PatchOp {
    pub fn name(&self) -> PropertyName {
        match self {
            PatchOp::Set(el, _) => PropertyName::of(el),
            PatchOp::Remove(n) => n.clone(),
        }
    }
}

fn collect_ops(root: &Element, body: &[u8]) -> Vec<PatchOp> {
    let mut ops = vec![];
    for c in &root.children {
        if c.ns != NS_DAV {
            continue;
        }
        let set = match c.local.as_str() {
            "set" => true,
            "remove" => false,
            _ => continue,
        };
        for prop in c.children_named(NS_DAV, "prop") {
            for p in &prop.children {
                if set {
                    ops.push(PatchOp::Set(p.clone(), p.standalone(body)));
                } else {
                    ops.push(PatchOp::Remove(PropertyName::of(p)));
                }
            }
        }
    }
    ops
}

pub fn parse_proppatch(body: &[u8], limits: XmlLimits) -> Result<Vec<PatchOp>, DavError> {
    let root = xml::parse(body, limits)?;
    if !root.is(NS_DAV, "propertyupdate") {
        return Err(DavError::bad_request("expected DAV:propertyupdate"));
    }
    let ops = collect_ops(&root, body);
    if ops.is_empty() {
        return Err(DavError::bad_request(
            "DAV:propertyupdate has no set or remove",
        ));
    }
    Ok(ops)
}

/// Extended MKCOL (RFC 5689 5.1) and MKCALENDAR (RFC 4791 5.3.1) bodies: a root element
/// holding `DAV:set` instructions. Returns the root's name and the set operations.
pub fn parse_mkcol_body(
    body: &[u8],
    limits: XmlLimits,
) -> Result<(PropertyName, Vec<PatchOp>), DavError> {
    let root = xml::parse(body, limits)?;
    let ops = collect_ops(&root, body);
    Ok((PropertyName::of(&root), ops))
}

/// `DAV:sync-collection` REPORT body (RFC 6578 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCollection {
    pub token: Option<String>,
    pub level_infinite: bool,
    pub limit: Option<usize>,
    pub props: Vec<PropertyName>,
}

pub fn parse_sync_collection(root: &Element) -> Result<SyncCollection, DavError> {
    let token = root
        .child(NS_DAV, "sync-token")
        .map(|t| t.text.trim().to_string())
        .filter(|t| !t.is_empty());
    let level_infinite = match root.child(NS_DAV, "sync-level").map(|l| l.text.trim()) {
        Some("1") | None => false,
        Some(l) if l.eq_ignore_ascii_case("infinite") => true,
        Some(other) => {
            return Err(DavError::bad_request(format!(
                "invalid sync-level '{other}'"
            )));
        }
    };
    let limit = match root
        .child(NS_DAV, "limit")
        .and_then(|l| l.child(NS_DAV, "nresults"))
    {
        Some(n) => Some(
            n.text
                .trim()
                .parse::<usize>()
                .map_err(|_| DavError::bad_request("DAV:nresults is not a number"))?,
        ),
        None => None,
    };
    let props = root
        .child(NS_DAV, "prop")
        .map(prop_names)
        .unwrap_or_default();
    Ok(SyncCollection {
        token,
        level_infinite,
        limit,
        props,
    })
}

// ---------------------------------------------------------------------------------------------
// Conditional headers (RFC 7232 3.1, 3.2)

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    Any,
    List(Vec<String>),
}

impl EtagMatch {
    pub fn parse(value: &str) -> EtagMatch {
        let v = value.trim();
        if v == "*" {
            return EtagMatch::Any;
        }
        EtagMatch::List(
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/").to_string())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    /// Does a resource with this quoted ETag (or none) match?
    pub fn matches(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (EtagMatch::Any, Some(_)) => true,
            (EtagMatch::List(l), Some(c)) => l.iter().any(|t| t == c),
            (_, None) => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multistatus writer (RFC 4918 13)

/// A multistatus body built response by response. Each property value is pre-rendered XML
/// using the root prefixes or declaring its own namespaces.
pub struct Multistatus {
    buf: String,
}

impl Default for Multistatus {
    fn default() -> Self {
        Self::new()
    }
}

impl Multistatus {
    pub fn new() -> Self {
        let mut buf = String::with_capacity(4096);
        buf.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus");
        buf.push_str(&root_namespace_decls());
        buf.push('>');
        Multistatus { buf }
    }

    pub fn propstat_response(
        &mut self,
        href: &str,
        found: &[String],
        missing: &[(u16, Vec<String>)],
    ) {
        self.propstat_response_described(href, found, missing, None);
    }

    /// A response with propstats and, when given, a human-readable description.
    pub fn propstat_response_described(
        &mut self,
        href: &str,
        found: &[String],
        missing: &[(u16, Vec<String>)],
        description: Option<&str>,
    ) {
        let _ = write!(self.buf, "<D:response><D:href>{}</D:href>", escape(href));
        if !found.is_empty() {
            write_propstat(&mut self.buf, 200, found);
        }
        for (status, props) in missing {
            if !props.is_empty() {
                write_propstat(&mut self.buf, *status, props);
            }
        }
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            let _ = write!(
                self.buf,
                "<D:responsedescription>{}</D:responsedescription>",
                escape(d)
            );
        }
        self.buf.push_str("</D:response>");
    }

    /// A response whose found properties are already XML, written one after another (a
    /// report renders them into one string per member, not one string per property).
    pub fn propstat_response_xml(
        &mut self,
        href: &str,
        found: &str,
        missing: &[(u16, Vec<String>)],
    ) {
        self.buf.push_str("<D:response><D:href>");
        push_text(&mut self.buf, href);
        self.buf.push_str("</D:href>");
        if !found.is_empty() {
            self.buf.push_str("<D:propstat><D:prop>");
            self.buf.push_str(found);
            self.buf
                .push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        for (status, props) in missing {
            if !props.is_empty() {
                write_propstat(&mut self.buf, *status, props);
            }
        }
        self.buf.push_str("</D:response>");
    }

    pub fn status_response(&mut self, href: &str, status: u16, error: Option<&DavError>) {
        let _ = write!(
            self.buf,
            "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 {} {}</D:status>",
            escape(href),
            status,
            reason(status)
        );
        if let Some(e) = error {
            if let Some(c) = &e.condition {
                let _ = write!(
                    self.buf,
                    "<D:error><E:{} xmlns:E=\"{}\">{}</E:{}></D:error>",
                    c.name, c.ns, c.body, c.name
                );
            }
            let _ = write!(
                self.buf,
                "<D:responsedescription>{}</D:responsedescription>",
                escape(&e.message)
            );
        }
        self.buf.push_str("</D:response>");
    }

    /// Take what has been written so far, leaving the writer empty: a streamed multistatus
    /// sends the head and then each batch of responses as it is written.
    pub fn take_chunk(&mut self) -> String {
        std::mem::take(&mut self.buf)
    }

    /// The closing tag of a streamed multistatus (no sync token).
    pub fn tail() -> &'static str {
        "</D:multistatus>"
    }

    pub fn raw(&mut self, xml: &str) {
        self.buf.push_str(xml);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn finish(mut self, sync_token: Option<&str>) -> String {
        if let Some(t) = sync_token {
            let _ = write!(self.buf, "<D:sync-token>{}</D:sync-token>", escape(t));
        }
        self.buf.push_str("</D:multistatus>\n");
        self.buf
    }
}

/// `xmlns` declarations for the prefixes pre-rendered properties use.
pub fn root_namespace_decls() -> String {
    let mut s = String::new();
    for (p, u) in ROOT_PREFIXES {
        let _ = write!(s, " xmlns:{p}=\"{u}\"");
    }
    s
}

/// One `DAV:propstat` element holding pre-rendered properties.
pub fn propstat_xml(status: u16, props: &[String]) -> String {
    let mut s = String::new();
    write_propstat(&mut s, status, props);
    s
}

/// Append one propstat to `buf` (a multistatus is written in place, not from pieces).
fn write_propstat(buf: &mut String, status: u16, props: &[String]) {
    buf.push_str("<D:propstat><D:prop>");
    for p in props {
        buf.push_str(p);
    }
    let _ = write!(
        buf,
        "</D:prop><D:status>HTTP/1.1 {} {}</D:status></D:propstat>",
        status,
        reason(status)
    );
}

pub fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or(match status {
            507 => "Insufficient Storage",
            424 => "Failed Dependency",
            _ => "Unknown",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_at_and_spaces_and_decode_back() {
        let p = "/dav/calendars/a@b.c/my cal/ü.ics";
        let e = encode_path(p);
        assert_eq!(e, "/dav/calendars/a%40b.c/my%20cal/%C3%BC.ics");
        assert_eq!(
            decode_segments(&e).unwrap(),
            vec!["dav", "calendars", "a@b.c", "my cal", "ü.ics"]
        );
        assert!(decode_segments("/a/../b").is_err());
        assert!(decode_segments("/a/%2e%2e/b").is_err());
    }

    #[test]
    fn propfind_variants() {
        let l = XmlLimits::default();
        assert_eq!(
            parse_propfind(b"", l).unwrap(),
            PropfindRequest::AllProp { include: vec![] }
        );
        let r = parse_propfind(
            br#"<propfind xmlns="DAV:"><prop><getetag/><x:y xmlns:x="urn:x"/></prop></propfind>"#,
            l,
        )
        .unwrap();
        assert_eq!(
            r,
            PropfindRequest::Prop(vec![
                PropertyName::new(NS_DAV, "getetag"),
                PropertyName::new("urn:x", "y")
            ])
        );
        assert!(parse_propfind(b"<propfind xmlns=\"DAV:\"><foo/></propfind>", l).is_err());
        assert!(parse_propfind(b"<propfind xmlns=\"DAV:\"><prop>", l).is_err());
    }

    #[test]
    fn sync_collection_parses_limit_and_level() {
        let root = xml::parse(
            br#"<D:sync-collection xmlns:D="DAV:"><D:sync-token>t</D:sync-token><D:sync-level>1</D:sync-level><D:limit><D:nresults>5</D:nresults></D:limit><D:prop><D:getetag/></D:prop></D:sync-collection>"#,
            XmlLimits::default(),
        )
        .unwrap();
        let s = parse_sync_collection(&root).unwrap();
        assert_eq!(s.token.as_deref(), Some("t"));
        assert_eq!(s.limit, Some(5));
        assert!(!s.level_infinite);
    }

    #[test]
    fn error_body_names_condition() {
        let e = DavError::with(403, DavCondition::PropfindFiniteDepth, "no <infinity>");
        let b = e.body();
        assert!(b.contains("<D:propfind-finite-depth/>"));
        assert!(b.contains("no &lt;infinity&gt;"));
        xml::parse(b.as_bytes(), XmlLimits::default()).unwrap();
    }

    #[test]
    fn etag_match() {
        assert!(EtagMatch::parse("*").matches(Some("\"a\"")));
        assert!(!EtagMatch::parse("*").matches(None));
        assert!(EtagMatch::parse("\"x\", \"a\"").matches(Some("\"a\"")));
        assert!(!EtagMatch::parse("\"x\"").matches(Some("\"a\"")));
    }
}
