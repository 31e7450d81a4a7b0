//! The business-system registry: what an admin registers (`[[systems]]` in the configuration),
//! checked whole at start, and which systems each person may use. A system names the exact
//! origins the bridge may send its credentials to; nothing is ever sent anywhere else.
//!
//! Must never: accept an origin with a path, query, user info or a scheme other than http(s),
//! or a system whose address is outside its own origins.

use serde::{Deserialize, Serialize};

/// How the bridge signs a person into a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMethod {
    /// HTTP Basic credentials injected on the way (nginx `auth_basic`, Radicale).
    Basic,
    /// The system's own login form replayed (its hidden CSRF fields kept).
    Form,
    /// A trusted identity header with a shared secret.
    Header,
    /// IMAP with the vaulted password (the mail reminder's unread count).
    Imap,
}

impl LoginMethod {
    /// Whether a person binds an account of their own (Basic and form logins); a header
    /// login signs them in as their Convene account.
    pub fn takes_binding(self) -> bool {
        matches!(
            self,
            LoginMethod::Basic | LoginMethod::Form | LoginMethod::Imap
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Basic => "basic",
            LoginMethod::Form => "form",
            LoginMethod::Header => "header",
            LoginMethod::Imap => "imap",
        }
    }
}

/// How a form login is replayed (`[systems.form]`); every field has a default that suits
/// a plain login page.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FormLogin {
    /// The login page, a path on the system's origin (default: the path of `url`).
    #[serde(default)]
    pub login_path: Option<String>,
    /// The user-name field (default: the text or email input of the form with the password
    /// field).
    #[serde(default)]
    pub username_field: Option<String>,
    /// The password field (default: the form's password input).
    #[serde(default)]
    pub password_field: Option<String>,
    /// A cookie the system sets only when a login succeeded (default: any redirect away from
    /// the login page is success, the login form coming back is failure).
    #[serde(default)]
    pub success_cookie: Option<String>,
}

/// The identity header a system trusts from the bridge (`[systems.header]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderLogin {
    /// The header that names the person (default `Remote-User`).
    #[serde(default = "default_identity_header")]
    pub name: String,
    /// The header that carries the shared secret (default `X-Convene-Secret`).
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
    /// The shared secret the system checks, at least 32 characters.
    pub secret: String,
}

fn default_identity_header() -> String {
    "Remote-User".into()
}

fn default_secret_header() -> String {
    "X-Convene-Secret".into()
}

impl std::fmt::Debug for HeaderLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderLogin")
            .field("name", &self.name)
            .field("secret_header", &self.secret_header)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One `[[systems]]` entry (or one registered with `convene systems add`, kept as JSON
/// without its secrets).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// A short name: lowercase letters, digits and `-` (it appears in URLs).
    pub name: String,
    /// What people see.
    pub label: String,
    /// An icon URL for the launcher.
    #[serde(default)]
    pub icon: Option<String>,
    /// Where the system is, for example `https://hr.example.org/` (for IMAP, `imap://` or
    /// `imaps://` host and port).
    pub url: String,
    /// The exact origins (`scheme://host[:port]`) credentials may go to; by default the
    /// origin of `url` alone.
    #[serde(default)]
    pub origins: Vec<String>,
    pub login: LoginMethod,
    /// Who may use it: everyone (the default), or the members of these groups and
    /// departments (a department with those below it).
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub departments: Vec<String>,
    /// The secret a reverse proxy in front of the system (nginx `auth_request`, Traefik
    /// ForwardAuth, Caddy `forward_auth`) sends in `X-Convene-Forward-Secret` to ask Convene
    /// who may in and with which credential; at least 32 characters. Without it, forward-auth
    /// is off for this system.
    #[serde(default, skip_serializing)]
    pub forward_auth_secret: Option<String>,
    /// For `login = "form"`: how the login page is replayed.
    #[serde(default)]
    pub form: Option<FormLogin>,
    /// For `login = "header"`: the identity header and its shared secret.
    #[serde(default, skip_serializing)]
    pub header: Option<HeaderLogin>,
}

/// Every field but the secrets, which show as `<redacted>`.
impl std::fmt::Debug for SystemConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemConfig")
            .field("name", &self.name)
            .field("label", &self.label)
            .field("icon", &self.icon)
            .field("url", &self.url)
            .field("origins", &self.origins)
            .field("login", &self.login)
            .field("groups", &self.groups)
            .field("departments", &self.departments)
            .field(
                "forward_auth_secret",
                &self.forward_auth_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("form", &self.form)
            .field("header", &self.header)
            .finish()
    }
}

impl SystemConfig {
    /// Whether `given` is this system's forward-auth secret (compared in constant time).
    pub fn forward_secret_is(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.forward_auth_secret
            .as_deref()
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(given.as_bytes())))
    }
}

/// A registered system, checked.
#[derive(Debug, Clone)]
pub struct System {
    pub cfg: SystemConfig,
    /// The origins, normalised (lowercase scheme and host, no default port).
    pub origins: Vec<String>,
}

/// Every registered system.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    systems: Vec<System>,
}

/// The origin of an absolute URL, normalised; `None` for anything that is not one of the
/// allowed schemes, or carries user info.
fn origin_of(url: &str, schemes: &[&str]) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        "imap" => ":143",
        _ => ":993",
    };
    let authority = authority
        .strip_suffix(default_port)
        .unwrap_or(&authority)
        .to_string();
    Some(format!("{scheme}://{authority}"))
}

fn check(cfg: &SystemConfig) -> Result<System, String> {
    let n = &cfg.name;
    let named = |m: &str| format!("system {n:?}: {m}");
    if n.is_empty()
        || n.len() > 40
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(named("a name is 1 to 40 lowercase letters, digits and '-'"));
    }
    if cfg.label.trim().is_empty() || cfg.label.chars().any(char::is_control) {
        return Err(named("needs a label"));
    }
    let schemes: &[&str] = if cfg.login == LoginMethod::Imap {
        &["imap", "imaps"]
    } else {
        &["http", "https"]
    };
    let own = origin_of(&cfg.url, schemes).ok_or_else(|| {
        named(&format!(
            "url must be {}://HOST[:PORT]/...",
            schemes.join(" or ")
        ))
    })?;
    if cfg.login == LoginMethod::Imap {
        let host = own
            .split_once("://")
            .map(|(_, a)| a.rsplit_once(':').map_or(a, |(h, _)| h))
            .unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !own.starts_with("imaps://") {
            return Err(named(
                "imap:// sends the password in clear: only to a loopback address",
            ));
        }
    }
    let mut origins = vec![];
    for o in &cfg.origins {
        // Only scheme and authority: nothing after them but one optional '/'.
        let bare = o
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.trim_end_matches('/').contains(['/', '?', '#']));
        let norm = origin_of(o, schemes)
            .filter(|_| bare)
            .ok_or_else(|| named(&format!("origin {o:?} is not scheme://host[:port]")))?;
        origins.push(norm);
    }
    if origins.is_empty() {
        origins.push(own.clone());
    } else if !origins.contains(&own) {
        return Err(named(&format!(
            "its url's origin {own} is not among its origins"
        )));
    }
    if cfg
        .forward_auth_secret
        .as_ref()
        .is_some_and(|f| f.chars().count() < 32 || f.chars().any(|c| c.is_control()))
    {
        return Err(named("forward_auth_secret needs at least 32 characters"));
    }
    if cfg.login == LoginMethod::Imap && cfg.forward_auth_secret.is_some() {
        return Err(named(
            "forward_auth_secret is for web systems: no proxy fronts an IMAP server",
        ));
    }
    match (cfg.login, &cfg.header, &cfg.form) {
        (LoginMethod::Header, None, _) => {
            return Err(named(
                "login = \"header\" needs [systems.header] with its secret",
            ));
        }
        (LoginMethod::Header, Some(h), _) => {
            if h.secret.chars().count() < 32 || h.secret.chars().any(char::is_control) {
                return Err(named("the header secret needs at least 32 characters"));
            }
            for n in [&h.name, &h.secret_header] {
                if http_token(n).is_none() {
                    return Err(named(&format!("{n:?} is not a header name")));
                }
            }
        }
        (_, Some(_), _) => return Err(named("[systems.header] is only for login = \"header\"")),
        _ => {}
    }
    match (cfg.login, &cfg.form) {
        (LoginMethod::Form, Some(f))
            if f.login_path
                .as_deref()
                .is_some_and(|p| !p.starts_with('/') || p.starts_with("//")) =>
        {
            return Err(named(
                "form.login_path must be a path on the system's origin",
            ));
        }
        (LoginMethod::Form, _) => {}
        (_, Some(_)) => return Err(named("[systems.form] is only for login = \"form\"")),
        _ => {}
    }
    if let Some(icon) = &cfg.icon
        && origin_of(icon, &["http", "https"]).is_none()
        && !icon.starts_with('/')
    {
        return Err(named(
            "icon must be an http(s) URL or a path on this server",
        ));
    }
    Ok(System {
        cfg: cfg.clone(),
        origins,
    })
}

/// A header name as HTTP allows it (RFC 9110 token characters), lowercased.
fn http_token(n: &str) -> Option<String> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then(|| n.to_ascii_lowercase())
}

impl Registry {
    /// Check every entry; the first problem, naming the system, is the error.
    pub fn new(entries: &[SystemConfig]) -> Result<Registry, String> {
        let mut systems: Vec<System> = vec![];
        for e in entries {
            let s = check(e)?;
            if systems.iter().any(|x| x.cfg.name == s.cfg.name) {
                return Err(format!("system {:?} is registered twice", s.cfg.name));
            }
            systems.push(s);
        }
        Ok(Registry { systems })
    }

    pub fn all(&self) -> &[System] {
        &self.systems
    }

    pub fn get(&self, name: &str) -> Option<&System> {
        self.systems.iter().find(|s| s.cfg.name == name)
    }

    /// Every entry as registered, secrets left out: equal for equal registries.
    fn fingerprint(&self) -> String {
        let entries: Vec<&SystemConfig> = self.systems.iter().map(|s| &s.cfg).collect();
        serde_json::to_string(&entries).unwrap_or_default()
    }

    /// The systems someone in these groups and departments may use.
    pub fn visible_to<'a>(&'a self, groups: &'a [String]) -> impl Iterator<Item = &'a System> + 'a {
        self.systems.iter().filter(move |s| s.allows(groups))
    }
}

/// The registry in force. Each request reads it whole (a snapshot, so one request sees one
/// registry); `replace` swaps in a new one when the registrations change (`convene systems
/// add` or `remove`, on this instance's store or any other's).
#[derive(Debug)]
pub struct LiveRegistry(std::sync::RwLock<std::sync::Arc<Registry>>);

impl LiveRegistry {
    pub fn new(registry: Registry) -> LiveRegistry {
        LiveRegistry(std::sync::RwLock::new(std::sync::Arc::new(registry)))
    }

    /// The registry as it is now.
    pub fn snapshot(&self) -> std::sync::Arc<Registry> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The system `name` as registered now.
    pub fn get(&self, name: &str) -> Option<System> {
        self.snapshot().get(name).cloned()
    }

    /// Put `registry` in force; whether anything a person or the proxy sees changed.
    pub fn replace(&self, registry: Registry) -> bool {
        let fresh = std::sync::Arc::new(registry);
        let mut cur = match self.0.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = cur.fingerprint() != fresh.fingerprint();
        if changed {
            *cur = fresh;
        }
        changed
    }
}

/// Where the login proxy serves each system: a host per system, from a template such as
/// `https://{system}.apps.example.org` (`[bridge] apps_url`). A host of its own keeps every
/// system's cookies and scripts apart from the portal's and from each other's, and lets apps
/// that use absolute paths (Django admin) work unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHosts {
    scheme: String,
    /// The host after `{system}.`, lowercase.
    suffix: String,
    /// `:PORT`, or empty for the scheme's default.
    port: String,
}

impl AppHosts {
    /// Parse the template: `http(s)://{system}.DOMAIN[:PORT]`, nothing after it.
    pub fn parse(template: &str) -> Result<AppHosts, String> {
        let bad = || {
            format!(
                "apps_url {template:?} must be http(s)://{{system}}.DOMAIN[:PORT], with nothing after it"
            )
        };
        let origin =
            origin_of(&template.replace("{system}", "x"), &["http", "https"]).ok_or_else(bad)?;
        let (scheme, rest) = template.split_once("://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let host_port = rest.strip_prefix("{system}.").ok_or_else(bad)?;
        if host_port.contains(['/', '?', '#', '{', '}', '@']) {
            return Err(bad());
        }
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
        let authority = authority.strip_prefix("x.").ok_or_else(bad)?;
        let (suffix, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, format!(":{p}")),
            _ => (authority, String::new()),
        };
        if suffix.is_empty() || !suffix.contains(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        Ok(AppHosts {
            scheme: scheme.to_ascii_lowercase(),
            suffix: suffix.to_string(),
            port,
        })
    }

    /// Whether the system hosts are served over HTTPS (their cookies are then Secure).
    pub fn secure(&self) -> bool {
        self.scheme == "https"
    }

    /// The origin a system is served at.
    pub fn origin(&self, system: &str) -> String {
        format!("{}://{system}.{}{}", self.scheme, self.suffix, self.port)
    }

    /// The system a request's `Host` names, if it is one of the system hosts (the port is
    /// not compared: a proxy in front may change it).
    pub fn system_of_host<'r>(&self, registry: &'r Registry, host: &str) -> Option<&'r System> {
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let name = host
            .to_ascii_lowercase()
            .strip_suffix(&self.suffix)?
            .strip_suffix('.')?
            .to_string();
        registry.get(&name)
    }
}

impl System {
    /// Whether someone whose groups and departments (as recorded on their account) are
    /// `memberships` may use it.
    pub fn allows(&self, memberships: &[String]) -> bool {
        let c = &self.cfg;
        (c.groups.is_empty() && c.departments.is_empty())
            || c.groups
                .iter()
                .chain(&c.departments)
                .any(|g| memberships.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(name: &str, url: &str, origins: &[&str]) -> SystemConfig {
        SystemConfig {
            name: name.into(),
            label: "HR".into(),
            icon: None,
            url: url.into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            login: LoginMethod::Basic,
            groups: vec![],
            departments: vec![],
            forward_auth_secret: None,
            form: None,
            header: None,
        }
    }

    #[test]
    fn app_hosts() {
        let r = Registry::new(&[sys("hr", "https://hr.internal/", &[])]).expect("ok");
        let h = AppHosts::parse("https://{system}.Apps.example.org").expect("ok");
        assert_eq!(h.origin("hr"), "https://hr.apps.example.org");
        assert!(h.secure());
        assert_eq!(
            h.system_of_host(&r, "HR.apps.example.org:443")
                .map(|s| s.cfg.name.as_str()),
            Some("hr")
        );
        assert!(h.system_of_host(&r, "apps.example.org").is_none());
        assert!(h.system_of_host(&r, "wiki.apps.example.org").is_none());
        assert!(h.system_of_host(&r, "hr.apps.example.org.evil").is_none());
        assert!(h.system_of_host(&r, "x.hr.apps.example.org").is_none());
        let l = AppHosts::parse("http://{system}.apps.localhost:8008/").expect("ok");
        assert_eq!(l.origin("hr"), "http://hr.apps.localhost:8008");
        for bad in [
            "https://apps.example.org",
            "https://{system}.apps.example.org/path",
            "ftp://{system}.apps.example.org",
            "https://x{system}.apps.example.org",
        ] {
            assert!(AppHosts::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forward_auth_is_for_web_systems() {
        let mut c = sys("mail", "imaps://mail.example.org:993", &[]);
        c.login = LoginMethod::Imap;
        assert!(Registry::new(std::slice::from_ref(&c)).is_ok());
        c.forward_auth_secret = Some("forward-secret-forward-secret-1234".into());
        let e = Registry::new(&[c]).err().unwrap_or_default();
        assert!(e.contains("forward_auth_secret is for web systems"), "{e}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let mut c = sys("wiki", "https://wiki.example.org/", &[]);
        c.forward_auth_secret = Some("forward-secret-forward-secret-1234".into());
        c.login = LoginMethod::Header;
        c.header = Some(HeaderLogin {
            name: "Remote-User".into(),
            secret_header: "X-Convene-Secret".into(),
            secret: "header-secret-header-secret-12345".into(),
        });
        let shown = format!("{:?}", Registry::new(&[c]).expect("ok"));
        assert!(!shown.contains("forward-secret"), "{shown}");
        assert!(!shown.contains("header-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn origins_are_exact_and_checked() {
        let r = Registry::new(&[sys("hr", "HTTPS://HR.example.org:443/app/", &[])]).expect("ok");
        assert_eq!(
            r.get("hr").expect("hr").origins,
            vec!["https://hr.example.org"]
        );
        let r = Registry::new(&[sys(
            "wiki",
            "http://127.0.0.1:8080/",
            &["http://127.0.0.1:8080", "https://sso.example.org"],
        )])
        .expect("ok");
        assert_eq!(r.get("wiki").expect("wiki").origins.len(), 2);
        for (bad, why) in [
            (sys("HR", "https://hr.example.org/", &[]), "lowercase"),
            (sys("hr", "ftp://hr.example.org/", &[]), "url must be"),
            (
                sys("hr", "https://user@hr.example.org/", &[]),
                "url must be",
            ),
            (
                sys(
                    "hr",
                    "https://hr.example.org/",
                    &["https://other.example.org"],
                ),
                "not among its origins",
            ),
            (
                sys(
                    "hr",
                    "https://hr.example.org/",
                    &["https://hr.example.org/path"],
                ),
                "is not scheme://host",
            ),
        ] {
            let e = Registry::new(&[bad]).expect_err(why);
            assert!(e.contains(why), "{e}");
        }
        let twice = Registry::new(&[
            sys("hr", "https://a.example.org/", &[]),
            sys("hr", "https://b.example.org/", &[]),
        ]);
        assert!(twice.expect_err("twice").contains("twice"));
    }

    #[test]
    fn plain_imap_only_to_loopback() {
        let mut m = sys("mail", "imap://127.0.0.1:1143", &[]);
        m.login = LoginMethod::Imap;
        assert!(Registry::new(&[m.clone()]).is_ok());
        m.url = "imap://mail.example.org".into();
        let e = Registry::new(&[m.clone()]).expect_err("clear text");
        assert!(e.contains("only to a loopback address"), "{e}");
        m.url = "imaps://mail.example.org".into();
        assert!(Registry::new(&[m]).is_ok(), "TLS to anywhere");
    }

    #[test]
    fn audiences() {
        let mut eng = sys("ci", "https://ci.example.org/", &[]);
        eng.groups = vec!["eng".into()];
        let mut sales = sys("crm", "https://crm.example.org/", &[]);
        sales.departments = vec!["Sales".into()];
        let all = sys("wiki", "https://wiki.example.org/", &[]);
        let r = Registry::new(&[eng, sales, all]).expect("ok");
        let names =
            |m: &[String]| -> Vec<String> { r.visible_to(m).map(|s| s.cfg.name.clone()).collect() };
        assert_eq!(names(&["eng".into()]), vec!["ci", "wiki"]);
        assert_eq!(names(&["Sales".into()]), vec!["crm", "wiki"]);
        assert_eq!(names(&[]), vec!["wiki"]);
    }
}
