//! The organisation's directory over LDAP (RFC 4511, 4513): verifying a person's password by
//! binding as them, after finding their entry with a read-only service account, and reading
//! the attributes Convene provisions a user from (uid, mail, display name).
//!
//! Must never: put an unescaped client string into a filter (LDAP injection), bind with an
//! empty password (RFC 4513 5.1.2: many servers take it as an anonymous success), log a
//! password, or keep a connection bound as a user.

use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use serde::Deserialize;

/// The `[ldap]` section of the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS (rustls, system roots).
    #[serde(default)]
    pub starttls: bool,
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
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("LDAP server unavailable or failing: {0}")]
    Ldap(#[from] ldap3::LdapError),
    #[error("the directory service account was refused")]
    ServiceBind,
}

/// A person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub dn: String,
    pub uid: String,
    pub mail: Option<String>,
    pub display_name: Option<String>,
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
}

impl LdapDirectory {
    pub fn new(cfg: LdapConfig) -> LdapDirectory {
        LdapDirectory { cfg }
    }

    pub fn recheck(&self) -> Duration {
        Duration::from_secs(self.cfg.recheck_seconds)
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.cfg.timeout_seconds))
            .set_starttls(self.cfg.starttls);
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

    fn person_of(&self, e: SearchEntry) -> Option<Person> {
        let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
        Some(Person {
            uid: first(&self.cfg.uid_attribute)?,
            mail: first(&self.cfg.mail_attribute),
            display_name: first(&self.cfg.name_attribute),
            dn: e.dn.clone(),
        })
    }

    /// The people the person filter narrowed by `extra` finds, as the service account.
    /// `extra` is ours: every client string in it is already escaped.
    async fn people(&self, extra: &str) -> Result<Vec<Person>, DirectoryError> {
        // The configured person filter matching anyone (a literal `*`, ours, not the
        // client's), narrowed by `extra`.
        let base_filter = self.cfg.user_filter.replace("{username}", "*");
        let filter = format!("(&{base_filter}{extra})");
        let mut ldap = self.service().await?;
        let attrs = vec![
            self.cfg.uid_attribute.as_str(),
            self.cfg.mail_attribute.as_str(),
            self.cfg.name_attribute.as_str(),
        ];
        let (entries, _) = ldap
            .search(&self.cfg.user_base, Scope::Subtree, &filter, attrs)
            .await?
            .success()?;
        let _ = ldap.unbind().await;
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
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
        let mut ldap = self.service().await?;
        let (entries, _) = ldap
            .search(
                base,
                Scope::Subtree,
                &self.cfg.group_filter,
                vec!["cn", "description", "member"],
            )
            .await?
            .success()?;
        let _ = ldap.unbind().await;
        let uid_prefix = format!("{}=", self.cfg.uid_attribute.to_lowercase());
        let people_suffix = format!(",{}", self.cfg.user_base.to_lowercase());
        let mut groups: Vec<Group> = entries
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|e| {
                let first = |a: &str| e.attrs.get(a).and_then(|v| v.first()).cloned();
                let mut members: Vec<String> = e
                    .attrs
                    .get("member")
                    .into_iter()
                    .flatten()
                    .filter_map(|dn| {
                        let lower = dn.to_lowercase();
                        let rdn = lower.strip_suffix(&people_suffix)?;
                        let value = rdn.strip_prefix(&uid_prefix)?;
                        // The value's own case, from the original DN.
                        Some(dn[uid_prefix.len()..uid_prefix.len() + value.len()].to_string())
                    })
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
