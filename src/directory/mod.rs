//! The organisation's directory over LDAP (RFC 4511, 4513): verifying a person's password by
//! binding as them, after finding their entry with a read-only service account, and reading
//! the attributes Convene provisions a user from (uid, mail, display name), and the org chart
//! (title, department, manager, photo; groups; the department tree). The org chart is read
//! whole into a `Snapshot` that is reused for `refresh_seconds`, so browsing and share rules
//! do not query LDAP per request, and changes in the directory show within that interval.
//!
//! TLS (ldaps or StartTLS) is rustls, with the system roots or the CA in `ca_file`.
//!
//! Must never: put an unescaped client string into a filter (LDAP injection), bind with an
//! empty password (RFC 4513 5.1.2: many servers take it as an anonymous success), log a
//! password, or keep a connection bound as a user.

pub mod avatar;

use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use serde::Deserialize;

/// The `[ldap]` section of the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS (rustls).
    #[serde(default)]
    pub starttls: bool,
    /// The CA (PEM) that signs the server's certificate, for ldaps or StartTLS; without it,
    /// the system roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The read-only service account that finds people.
    pub bind_dn: String,
    pub bind_password: String,
    /// Where people are, for example `ou=people,dc=example,dc=org`.
    pub user_base: String,
    /// `{username}` is replaced by the escaped login name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    #[serde(default = "default_uid")]
    pub uid_attribute: String,
    #[serde(default = "default_mail")]
    pub mail_attribute: String,
    #[serde(default = "default_name")]
    pub name_attribute: String,
    #[serde(default = "default_title")]
    pub title_attribute: String,
    /// Names the person's department (the department entry's `ou`).
    #[serde(default = "default_department")]
    pub department_attribute: String,
    /// The DN of the person's manager.
    #[serde(default = "default_manager")]
    pub manager_attribute: String,
    #[serde(default = "default_photo")]
    pub photo_attribute: String,
    /// An attribute holding an avatar URL (for example `labeledURI`), used when set instead
    /// of the photo.
    #[serde(default)]
    pub avatar_url_attribute: Option<String>,
    /// Where the department tree is (organizational units, nested), for example
    /// `ou=departments,dc=example,dc=org`.
    #[serde(default)]
    pub department_base: Option<String>,
    #[serde(default = "default_department_filter")]
    pub department_filter: String,
    /// How long the org chart (people, groups, departments) is reused before it is read again.
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Where groups are (groupOfNames), for example `ou=groups,dc=example,dc=org`.
    #[serde(default)]
    pub group_base: Option<String>,
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// How long a person's presence in the directory is trusted before it is checked again
    /// for logins that do not bind (app passwords, cached binds): someone removed from the
    /// directory loses access within this time. 0 checks on every request.
    #[serde(default = "default_recheck")]
    pub recheck_seconds: u64,
}

fn default_user_filter() -> String {
    "(&(objectClass=inetOrgPerson)(uid={username}))".into()
}
fn default_uid() -> String {
    "uid".into()
}
fn default_mail() -> String {
    "mail".into()
}
fn default_name() -> String {
    "displayName".into()
}
fn default_title() -> String {
    "title".into()
}
fn default_department() -> String {
    "departmentNumber".into()
}
fn default_manager() -> String {
    "manager".into()
}
fn default_photo() -> String {
    "jpegPhoto".into()
}
fn default_department_filter() -> String {
    "(objectClass=organizationalUnit)".into()
}
fn default_refresh() -> u64 {
    300
}
fn default_timeout() -> u64 {
    10
}
fn default_group_filter() -> String {
    "(objectClass=groupOfNames)".into()
}
fn default_recheck() -> u64 {
    30
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("user_base", &self.user_base)
            .field("user_filter", &self.user_filter)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("LDAP server unavailable or failing: {0}")]
    Ldap(#[from] ldap3::LdapError),
    #[error("the directory service account was refused")]
    ServiceBind,
    #[error("ca_file {0}: {1}")]
    Ca(String, String),
}

/// A person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub dn: String,
    pub uid: String,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    /// The manager's uid (from their DN, when it is under the people base).
    pub manager: Option<String>,
    /// An avatar URL from the directory (`avatar_url_attribute`), http(s) only.
    pub avatar_url: Option<String>,
}

/// A department, a node of the org tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub name: String,
    /// The department it belongs to, `None` at the top.
    pub parent: Option<String>,
    pub description: Option<String>,
    /// The head's uid (`seeAlso`), when it names a person.
    pub head: Option<String>,
}

/// The org chart as read at one time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
    pub departments: Vec<Department>,
}

impl Snapshot {
    /// The department and every department above it, nearest first (bounded: a cycle in the
    /// directory cannot loop).
    pub fn department_chain(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Some(name.to_string());
        while let Some(n) = cur {
            if out.contains(&n) || out.len() > 64 {
                break;
            }
            cur = self
                .departments
                .iter()
                .find(|d| d.name == n)
                .and_then(|d| d.parent.clone());
            out.push(n);
        }
        out
    }

    /// The groups and departments (with those above it) `uid` belongs to.
    pub fn memberships(&self, uid: &str) -> (Vec<String>, Vec<String>) {
        let groups = self
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == uid))
            .map(|g| g.name.clone())
            .collect();
        let departments = self
            .people
            .iter()
            .find(|p| p.uid == uid)
            .and_then(|p| p.department.as_deref())
            .map(|d| self.department_chain(d))
            .unwrap_or_default();
        (groups, departments)
    }
}

/// The RDNs of a DN, outermost last, with `\,` escapes kept inside their RDN.
fn rdns(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// The value of `attr=value` when `dn` is exactly that RDN directly under `base` (caseless).
fn rdn_value_under(dn: &str, attr: &str, base: &str) -> Option<String> {
    let parts = rdns(dn);
    let (first, rest) = parts.split_first()?;
    if !rest.join(",").eq_ignore_ascii_case(&rdns(base).join(",")) {
        return None;
    }
    let (a, v) = first.split_once('=')?;
    a.trim()
        .eq_ignore_ascii_case(attr)
        .then(|| v.trim().to_string())
}

/// A group and the uids of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub members: Vec<String>,
}

/// The filter that finds `username`, every special character escaped (RFC 4515).
pub fn user_filter(template: &str, username: &str) -> String {
    template.replace("{username}", &ldap_escape(username))
}

#[derive(Clone)]
pub struct LdapDirectory {
    cfg: LdapConfig,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    snapshot: std::sync::Arc<tokio::sync::Mutex<Option<Cached>>>,
}

/// The org chart and when it was read.
type Cached = (std::time::Instant, std::sync::Arc<Snapshot>);

/// A rustls client configuration that trusts the CA certificates in `path` (PEM).
fn tls_with_ca(path: &std::path::Path) -> Result<rustls::ClientConfig, DirectoryError> {
    let err = |m: String| DirectoryError::Ca(path.display().to_string(), m);
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice()).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(&certs);
    if added == 0 {
        return Err(err("no certificate in it".into()));
    }
    Ok(rustls::ClientConfig::builder()
        .with_safe_defaults()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl LdapDirectory {
    pub fn new(cfg: LdapConfig) -> Result<LdapDirectory, DirectoryError> {
        let tls = match &cfg.ca_file {
            Some(p) => Some(std::sync::Arc::new(tls_with_ca(p)?)),
            None => None,
        };
        Ok(LdapDirectory {
            cfg,
            tls,
            snapshot: Default::default(),
        })
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.refresh_seconds.max(1))
    }

    pub fn recheck(&self) -> Duration {
        Duration::from_secs(self.cfg.recheck_seconds)
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.cfg.timeout_seconds))
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A connection bound as the read-only service account.
    async fn service(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut ldap = self.connect().await?;
        let bound = ldap
            .simple_bind(&self.cfg.bind_dn, &self.cfg.bind_password)
            .await?;
        if bound.rc != 0 {
            let _ = ldap.unbind().await;
            return Err(DirectoryError::ServiceBind);
        }
        Ok(ldap)
    }

    /// Every entry under `base` matching `filter`, with `attrs`, as the service account.
    async fn search_all(
        &self,
        base: &str,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut ldap = self.service().await?;
        let (entries, _) = ldap
            .search(base, Scope::Subtree, filter, attrs)
            .await?
            .success()?;
        let _ = ldap.unbind().await;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    fn person_of(&self, e: SearchEntry) -> Option<Person> {
        let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
        Some(Person {
            uid: first(&self.cfg.uid_attribute)?,
            mail: first(&self.cfg.mail_attribute),
            display_name: first(&self.cfg.name_attribute),
            title: first(&self.cfg.title_attribute),
            department: first(&self.cfg.department_attribute),
            manager: first(&self.cfg.manager_attribute).and_then(|dn| self.uid_of_dn(&dn)),
            avatar_url: self
                .cfg
                .avatar_url_attribute
                .as_deref()
                .and_then(first)
                // labeledURI is "URL label".
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
                .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
            dn: e.dn.clone(),
        })
    }

    /// The uid of a person's DN (`uid=NAME,<people base>`), if it is one.
    fn uid_of_dn(&self, dn: &str) -> Option<String> {
        rdn_value_under(dn, &self.cfg.uid_attribute, &self.cfg.user_base)
    }

    /// The people the person filter narrowed by `extra` finds, as the service account.
    /// `extra` is ours: every client string in it is already escaped.
    async fn people(&self, extra: &str) -> Result<Vec<Person>, DirectoryError> {
        // The configured person filter matching anyone (a literal `*`, ours, not the
        // client's), narrowed by `extra`.
        let base_filter = self.cfg.user_filter.replace("{username}", "*");
        let filter = format!("(&{base_filter}{extra})");
        let mut attrs = vec![
            self.cfg.uid_attribute.as_str(),
            self.cfg.mail_attribute.as_str(),
            self.cfg.name_attribute.as_str(),
            self.cfg.title_attribute.as_str(),
            self.cfg.department_attribute.as_str(),
            self.cfg.manager_attribute.as_str(),
        ];
        if let Some(a) = &self.cfg.avatar_url_attribute {
            attrs.push(a.as_str());
        }
        Ok(self
            .search_all(&self.cfg.user_base, &filter, attrs)
            .await?
            .into_iter()
            .filter_map(|e| self.person_of(e))
            .collect())
    }

    /// Exactly one person, or nobody: an ambiguous name or mail matches no one.
    fn only(mut people: Vec<Person>) -> Option<Person> {
        (people.len() == 1).then(|| people.remove(0))
    }

    /// People whose uid, name or mail contains `query` (caseless), at most `limit`.
    pub async fn search_people(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Person>, DirectoryError> {
        let q = ldap_escape(query.trim());
        let mut people = self
            .people(&format!(
                "(|({uid}=*{q}*)(cn=*{q}*)({mail}=*{q}*)({name}=*{q}*))",
                uid = self.cfg.uid_attribute,
                mail = self.cfg.mail_attribute,
                name = self.cfg.name_attribute
            ))
            .await?;
        people.sort_by(|a, b| a.uid.cmp(&b.uid));
        people.truncate(limit);
        Ok(people)
    }

    /// Every group under `group_base`, with its members' uids (members outside the people
    /// base, or nested groups, are left out).
    pub async fn groups(&self) -> Result<Vec<Group>, DirectoryError> {
        let Some(base) = &self.cfg.group_base else {
            return Ok(vec![]);
        };
        let entries = self
            .search_all(
                base,
                &self.cfg.group_filter,
                vec!["cn", "description", "member"],
            )
            .await?;
        let mut groups: Vec<Group> = entries
            .into_iter()
            .filter_map(|e| {
                let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
                let mut members: Vec<String> = e
                    .attrs
                    .get("member")
                    .into_iter()
                    .flatten()
                    .filter_map(|dn| self.uid_of_dn(dn))
                    .collect();
                members.sort();
                Some(Group {
                    name: first("cn")?,
                    description: first("description"),
                    members,
                })
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// The department tree under `department_base` (empty without one).
    pub async fn departments(&self) -> Result<Vec<Department>, DirectoryError> {
        let Some(base) = &self.cfg.department_base else {
            return Ok(vec![]);
        };
        let entries = self
            .search_all(
                base,
                &self.cfg.department_filter,
                vec!["ou", "description", "seeAlso"],
            )
            .await?;
        let base_rdns = rdns(base).join(",").to_lowercase();
        let mut out: Vec<Department> = entries
            .into_iter()
            .filter(|e| rdns(&e.dn).join(",").to_lowercase() != base_rdns)
            .filter_map(|e| {
                let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
                let parts = rdns(&e.dn);
                let parent_dn = parts.get(1..).map(|p| p.join(",")).unwrap_or_default();
                let parent = (parent_dn.to_lowercase() != base_rdns)
                    .then(|| {
                        let p = rdns(&parent_dn);
                        p.first()?
                            .split_once('=')
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .flatten();
                Some(Department {
                    name: first("ou")?,
                    parent,
                    description: first("description"),
                    head: first("seeAlso").and_then(|dn| self.uid_of_dn(&dn)),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The org chart, read again when older than `refresh_seconds` (one reader at a time;
    /// the others wait for its answer).
    pub async fn snapshot(&self) -> Result<std::sync::Arc<Snapshot>, DirectoryError> {
        let mut slot = self.snapshot.lock().await;
        if let Some((at, s)) = slot.as_ref()
            && at.elapsed() < self.refresh_interval()
        {
            return Ok(s.clone());
        }
        let fresh = std::sync::Arc::new(self.read_snapshot().await?);
        *slot = Some((std::time::Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Forget the org chart read last, so the next `snapshot` reads it again.
    pub async fn forget_snapshot(&self) {
        *self.snapshot.lock().await = None;
    }

    async fn read_snapshot(&self) -> Result<Snapshot, DirectoryError> {
        let mut people = self.people("").await?;
        people.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(Snapshot {
            people,
            groups: self.groups().await?,
            departments: self.departments().await?,
        })
    }

    /// A person's photo (`photo_attribute`, JPEG), read when asked for: photos are too big
    /// to keep for everyone.
    pub async fn photo(&self, uid: &str) -> Result<Option<Vec<u8>>, DirectoryError> {
        let filter = user_filter(&self.cfg.user_filter, uid);
        let base_filter = format!(
            "(&{}{filter})",
            self.cfg.user_filter.replace("{username}", "*")
        );
        let entries = self
            .search_all(
                &self.cfg.user_base,
                &base_filter,
                vec![self.cfg.photo_attribute.as_str()],
            )
            .await?;
        let mut entries = entries.into_iter();
        let (Some(e), None) = (entries.next(), entries.next()) else {
            return Ok(None);
        };
        Ok(e.bin_attrs
            .get(&self.cfg.photo_attribute)
            .and_then(|v| v.first())
            .cloned())
    }

    /// The one person whose mail is `mail` (caseless in LDAP's usual mail matching rule).
    pub async fn find_by_mail(&self, mail: &str) -> Result<Option<Person>, DirectoryError> {
        let extra = format!("({}={})", self.cfg.mail_attribute, ldap_escape(mail.trim()));
        Ok(Self::only(self.people(&extra).await?))
    }

    /// The one person `username` names (the configured person filter), as the service
    /// account.
    pub async fn find(&self, username: &str) -> Result<Option<Person>, DirectoryError> {
        let filter = user_filter(&self.cfg.user_filter, username);
        Ok(Self::only(self.people(&format!("(|{filter})")).await?))
    }

    /// `Some(person)` when `password` is theirs: found by the service account, then a bind
    /// as their DN succeeds. An empty password is refused without asking the server.
    pub async fn verify(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Person>, DirectoryError> {
        if password.is_empty() || username.is_empty() {
            return Ok(None);
        }
        let Some(person) = self.find(username).await? else {
            return Ok(None);
        };
        let mut ldap = self.connect().await?;
        let res = ldap.simple_bind(&person.dn, password).await?;
        let _ = ldap.unbind().await;
        Ok((res.rc == 0).then_some(person))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_parsing() {
        assert_eq!(
            rdns("uid=a\\,b,ou=people, dc=x"),
            vec!["uid=a\\,b", "ou=people", "dc=x"]
        );
        assert_eq!(
            rdn_value_under(
                "UID=Carol,OU=People,dc=example,dc=org",
                "uid",
                "ou=people,dc=example,dc=org"
            ),
            Some("Carol".into())
        );
        assert_eq!(
            rdn_value_under(
                "uid=x,ou=other,dc=example,dc=org",
                "uid",
                "ou=people,dc=example,dc=org"
            ),
            None
        );
    }

    #[test]
    fn department_chain_is_bounded() {
        let d = |n: &str, p: Option<&str>| Department {
            name: n.into(),
            parent: p.map(Into::into),
            description: None,
            head: None,
        };
        let s = Snapshot {
            people: vec![],
            groups: vec![],
            departments: vec![
                d("Platform", Some("Engineering")),
                d("Engineering", None),
                d("A", Some("B")),
                d("B", Some("A")),
            ],
        };
        assert_eq!(
            s.department_chain("Platform"),
            vec!["Platform", "Engineering"]
        );
        assert_eq!(s.department_chain("A"), vec!["A", "B"]);
    }

    #[test]
    fn filters_escape_injection() {
        let f = user_filter("(uid={username})", "carol)(uid=*");
        assert_eq!(f, "(uid=carol\\29\\28uid=\\2a)");
        assert_eq!(user_filter("(uid={username})", "*"), "(uid=\\2a)");
        assert_eq!(
            user_filter("(uid={username})", "a\\b\0"),
            "(uid=a\\5cb\\00)"
        );
    }
}
