//! Composition root: command line, configuration (flags, environment, TOML file), wiring of the
//! store, authenticator and router, and graceful shutdown on SIGINT/SIGTERM.
//!
//! Must never: hold protocol or storage logic of its own, or print a secret.

use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::auth::{LocalAuthenticator, hash_password};
use crate::caldav::{DavSettings, home_href};
use crate::calendar::DEFAULT_INDEX_HORIZON_DAYS;
use crate::dav::XmlLimits;
use crate::store::{
    AppPasswordStore, DelegateStore, FeedStore, NewUser, ResourceKind, ResourceReader,
    ResourceWriter, SessionStore, Store, StoreError, UserStore,
};
use crate::web::{AppState, router};

#[derive(Debug, Parser)]
#[command(name = "convene", version, about = "Convene CalDAV server")]
pub struct Cli {
    /// TOML configuration file (every option is documented in README.md).
    #[arg(long, global = true, env = "CONVENE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded SQLite store.
    #[arg(long, global = true, env = "CONVENE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) to use instead of the embedded store.
    #[arg(long, global = true, env = "CONVENE_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage local users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage a user's read-only ICS subscription feeds (secret URLs for Outlook and others).
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Import an .ics file into a user's calendar: one object per UID, a line of progress, and
    /// a summary of what was skipped and why.
    Import {
        user: String,
        /// The calendar's name in the user's home (for example `calendar`).
        calendar: String,
        /// The .ics file (`-` for standard input).
        file: PathBuf,
    },
    /// Export a user's calendar as one .ics document to standard output.
    Export { user: String, calendar: String },
    /// Manage delegates: who may read, or read and write, a user's calendars and schedule as
    /// them (the same groups Apple Calendar's Delegation tab edits).
    #[command(subcommand)]
    Delegate(DelegateCommand),
    /// Manage a user's app passwords (one per calendar client, revocable alone).
    #[command(subcommand, name = "app-password")]
    AppPassword(AppPasswordCommand),
    /// Manage Convene's own org chart (groups, departments, managers) when no LDAP
    /// directory is configured.
    #[command(subcommand)]
    Org(org_cli::OrgCommand),
    /// The credential vault: check the key-encryption key, or re-wrap every data key under
    /// the first key of the key file (`rotate`).
    #[command(subcommand)]
    Vault(VaultCommand),
    /// The business systems of the SSO bridge: list them (the configuration's `[[systems]]`
    /// and those registered here, checked), register one, or remove one with its bindings.
    Systems {
        #[command(subcommand)]
        command: Option<SystemsCommand>,
    },
}

// Parsed once per process: the size of the `Add` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SystemsCommand {
    /// List every registered system (the default).
    List,
    /// Register a system (or replace one registered here); the server picks it up at its next
    /// start. Systems whose login carries a secret (`header`, forward-auth) belong in the
    /// configuration file.
    Add {
        /// Lowercase letters, digits and '-'.
        name: String,
        #[arg(long)]
        label: String,
        /// Where the system is (`imap://HOST:PORT` for IMAP).
        #[arg(long)]
        url: String,
        /// basic, form or imap.
        #[arg(long)]
        login: String,
        /// The exact origins credentials may go to (default: the url's).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Who may use it (default: everyone).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long = "department")]
        departments: Vec<String>,
        #[arg(long)]
        icon: Option<String>,
        /// Form logins: the login page's path.
        #[arg(long)]
        login_path: Option<String>,
        /// Form logins: the cookie that shows a login succeeded.
        #[arg(long)]
        success_cookie: Option<String>,
    },
    /// Remove a system registered here, erasing every binding to it and every secret for it.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Open the vault with the configured key (a wrong key is an error naming the key ids).
    Check,
    /// Re-wrap every data key under the current (first) key; older keys may leave the key
    /// file afterwards.
    Rotate,
    /// Print a new key-file line `ID KEY` (wrapped by the `[vault.transit]` KMS when one is
    /// configured: `ID vault:v1:…`), to put first in the key file before `rotate`.
    NewKey { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Create one; the password is printed once and never stored.
    Add {
        user: String,
        /// What it is for, for example "Phone".
        name: String,
        /// `caldav` (default: calendars only) or `all` (also the account APIs).
        #[arg(long, default_value = "caldav")]
        scope: String,
        /// Expire after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List a user's app passwords (never the passwords).
    List { user: String },
    /// Revoke one: it stops working at once.
    Revoke { user: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum DelegateCommand {
    /// Let DELEGATE act for OWNER (read-only unless --write).
    Add {
        owner: String,
        delegate: String,
        #[arg(long)]
        write: bool,
    },
    /// Stop DELEGATE acting for OWNER.
    Remove { owner: String, delegate: String },
    /// List OWNER's delegates.
    List { owner: String },
}

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Publish a calendar; prints the feed's path once (the token is not kept in clear).
    Add {
        user: String,
        calendar: String,
        #[arg(long)]
        label: Option<String>,
        /// What every reader sees: `full` (CONFIDENTIAL and PRIVATE events still reduced by
        /// the privacy rule), `titles` (times and summaries) or `busy` (times only).
        #[arg(long, default_value = "full", value_parser = parse_detail)]
        detail: crate::ical::privacy::Detail,
    },
    /// List a user's feeds.
    List { user: String },
    /// Revoke a feed: its URL stops working at once.
    Revoke { user: String, id: i64 },
}

fn parse_detail(s: &str) -> Result<crate::ical::privacy::Detail, String> {
    crate::ical::privacy::Detail::parse(s)
        .ok_or_else(|| format!("'{s}' is not one of full, titles, busy"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONVENE_LISTEN")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users.
    List,
    /// Disable an account: every login (passwords, app passwords, web sessions) is refused
    /// at once; the data stays.
    Disable { name: String },
    /// Enable a disabled account again.
    Enable { name: String },
    /// Change a user's password (read from standard input).
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user and all their data.
    Remove {
        name: String,
        /// Confirm that the user's calendars are to be deleted.
        #[arg(long)]
        yes: bool,
    },
}

pub mod listener;
mod org_cli;
pub mod tasks;

/// The configuration file. Command-line flags and environment variables override it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub max_body_bytes: usize,
    pub max_resource_size: usize,
    pub xml_max_depth: usize,
    pub xml_max_elements: usize,
    pub max_props_per_request: usize,
    pub auth_cache_seconds: u64,
    pub shutdown_grace_seconds: u64,
    pub index_horizon_days: i64,
    pub max_instances: usize,
    /// Rows (members plus time-range index rows) of collection listings kept in memory over
    /// all collections; 0 turns the cache off. About 70 bytes a row.
    pub listing_cache_rows: usize,
    /// The SMTP relay for iMIP invitations to people outside this server (none: not sent).
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// The server key app passwords are hashed under, 64 hex characters. Without it, a key
    /// is generated once into `DATA_DIR/secret.key`. Several instances must share one.
    pub secret_key: Option<String>,
    /// An LDAP directory to log people in against (their local account is made on first
    /// login).
    pub ldap: Option<crate::directory::LdapConfig>,
    /// An OpenID Connect provider for the web sign-in (`/login`).
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// How long a web session lasts, in hours.
    pub session_hours: u64,
    /// The password checks logins use, in order: `local` (argon2id passwords stored here) and
    /// `ldap` (a bind as the person). App passwords always work.
    pub password_backends: Vec<crate::auth::PasswordBackend>,
    /// Mark cookies Secure even without `X-Forwarded-Proto: https` (set it when Convene
    /// itself or every proxy in front of it speaks only HTTPS).
    pub secure_cookies: bool,
    /// Schedule sharing (delegated entries).
    pub sharing: SharingSettings,
    /// Accounts that may edit Convene's own org chart (groups, departments, managers)
    /// through the JSON API; the CLI always may.
    pub admins: Vec<String>,
    /// The credential vault (`[vault] key_file`); also on with `CONVENE_VAULT_KEY` set.
    pub vault: Option<crate::vault::VaultConfig>,
    /// The business systems of the single-sign-on bridge (`[[systems]]`).
    pub systems: Vec<crate::bridge::systems::SystemConfig>,
    /// The login proxy (`[bridge]`).
    pub bridge: BridgeSettings,
    /// Most connections open at once (further ones wait in the backlog); also kept below the
    /// descriptor limit.
    pub max_connections: usize,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout_seconds: u64,
    /// The proxies whose `X-Forwarded-Proto` is believed (by default a proxy on this host).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `[bridge]`: the login proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// Where each system is served signed in, a host per system:
    /// `https://{system}.apps.example.org` (a wildcard DNS name and certificate pointing at
    /// Convene). Without it there is no login proxy, and the launcher links to the systems.
    pub apps_url: Option<String>,
    /// The portal's address, where the system hosts send people to sign in (default: the
    /// public URL).
    pub portal_url: Option<String>,
    /// PEM certificates of the organisation's own CA, trusted (beside the public web's roots)
    /// when the bridge speaks TLS to a business system: the login proxy, logins, `imaps`.
    pub ca_file: Option<std::path::PathBuf>,
    /// How often the registrations made with `convene systems` are read again (seconds).
    pub reload_seconds: u64,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            apps_url: None,
            portal_url: None,
            ca_file: None,
            reload_seconds: 30,
        }
    }
}

/// `[sharing]`: delegated entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharingSettings {
    /// The server's public base URL, for the avatar links in copies; default
    /// `http://LISTEN`.
    pub public_url: Option<String>,
    /// What recipients see of CONFIDENTIAL events: `full`, `time-and-summary` or `busy`.
    pub confidential: crate::ical::delegated::Detail,
    /// What recipients see of PRIVATE events.
    pub private: crate::ical::delegated::Detail,
    /// How often the worker looks without being woken, in seconds (other instances' writes,
    /// directory changes).
    pub interval_seconds: u64,
}

impl Default for SharingSettings {
    fn default() -> Self {
        let p = crate::ical::delegated::Privacy::default();
        SharingSettings {
            public_url: None,
            confidential: p.confidential,
            private: p.private,
            interval_seconds: 5,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            data_dir: PathBuf::from("convene-data"),
            database_url: None,
            max_body_bytes: 20 * 1024 * 1024,
            max_resource_size: 10 * 1024 * 1024,
            xml_max_depth: 64,
            xml_max_elements: 50_000,
            max_props_per_request: 1000,
            auth_cache_seconds: 300,
            shutdown_grace_seconds: 30,
            index_horizon_days: DEFAULT_INDEX_HORIZON_DAYS,
            max_instances: 20_000,
            listing_cache_rows: crate::store::listing::DEFAULT_BUDGET_ROWS,
            smtp: None,
            secret_key: None,
            ldap: None,
            oidc: None,
            session_hours: 12,
            password_backends: vec![
                crate::auth::PasswordBackend::Local,
                crate::auth::PasswordBackend::Ldap,
            ],
            secure_cookies: false,
            sharing: SharingSettings::default(),
            admins: vec![],
            vault: None,
            systems: vec![],
            bridge: BridgeSettings::default(),
            max_connections: 4096,
            idle_timeout_seconds: 120,
            trusted_proxies: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read configuration {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {source}")]
    ConfigParse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Config {
    pub fn load(cli: &Cli) -> Result<Config, AppError> {
        let mut cfg = match &cli.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| AppError::ConfigRead {
                        path: path.clone(),
                        source,
                    })?;
                toml::from_str(&text).map_err(|source| AppError::ConfigParse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        if let Some(d) = &cli.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(u) = &cli.database_url {
            cfg.database_url = Some(u.clone());
        }
        if let Command::Serve(s) = &cli.command
            && let Some(l) = s.listen
        {
            cfg.listen = l;
        }
        Ok(cfg)
    }

    /// The store's URL. `create`: a missing SQLite store is made; otherwise (a command that
    /// only reads) its absence is an error naming where it was looked for.
    pub fn store_url(&self, create: bool) -> Result<String, AppError> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        let named = |e: std::io::Error, what: &std::path::Path| {
            AppError::Usage(format!("cannot use {}: {e}", what.display()))
        };
        if !create && !self.data_dir.join("convene.db").exists() {
            // A command that only reads must not leave an empty store behind it.
            let shown = std::path::absolute(&self.data_dir).unwrap_or(self.data_dir.clone());
            return Err(AppError::Usage(format!(
                "no Convene data in {} (set --data-dir or CONVENE_DATA_DIR to the server's)",
                shown.display()
            )));
        }
        create_private_dir(&self.data_dir).map_err(|e| named(e, &self.data_dir))?;
        let path = self.data_dir.join("convene.db");
        // Readable by the server's user only: SQLite gives its -wal and -shm files the mode of
        // the database file, so creating that one 0600 covers the three.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| named(e, &path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| named(e, &path))?;
        }
        Ok(format!("sqlite://{}", path.display()))
    }

    /// The app-password key: configured, or read from (created in) the data directory.
    pub fn server_key(&self) -> Result<crate::auth::ServerKey, AppError> {
        if let Some(hex) = &self.secret_key {
            return crate::auth::ServerKey::from_hex(hex)
                .ok_or_else(|| AppError::Usage("secret_key must be 64 hex characters".into()));
        }
        if self.database_url.is_some() && self.data_dir.is_relative() {
            // Several instances share one database and must share one key; a key made in a
            // directory relative to wherever the process was started would silently change
            // (and invalidate every app password) on the next start from elsewhere.
            return Err(AppError::Usage(
                "with database_url, set secret_key (64 hex characters, the same on every \
                 instance) or an absolute --data-dir holding secret.key"
                    .into(),
            ));
        }
        create_private_dir(&self.data_dir)?;
        let path = self.data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => crate::auth::ServerKey::from_hex(&text).ok_or_else(|| {
                AppError::Usage(format!(
                    "{} does not hold a 64-hex-character key",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = crate::auth::ServerKey::random();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&path)?;
                f.write_all(key.to_hex().as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn dav_settings(&self) -> DavSettings {
        DavSettings {
            calendar: crate::calendar::Limits {
                max_resource_size: self.max_resource_size,
                index_horizon_days: self.index_horizon_days,
                max_instances: self.max_instances,
            },
            xml: XmlLimits {
                max_depth: self.xml_max_depth,
                max_elements: self.xml_max_elements,
            },
            max_props_per_request: self.max_props_per_request,
            privacy: crate::ical::privacy::Privacy {
                confidential: self.sharing.confidential,
                private: self.sharing.private,
            },
        }
    }
}

fn read_password() -> Result<String, AppError> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    let pw = s.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(AppError::Usage(
            "password on standard input is empty".into(),
        ));
    }
    crate::auth::check_new_password(&pw).map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(pw)
}

/// A user name must be usable in a URL path segment and an LDAP-style login: no slashes,
/// control characters or surrounding whitespace.
fn validate_user_name(name: &str) -> Result<(), AppError> {
    if crate::auth::valid_user_name(name) {
        Ok(())
    } else {
        Err(AppError::Usage(format!(
            "invalid user name '{name}': use 1-128 characters without '/', ':' or control characters"
        )))
    }
}

async fn set_disabled(
    store: &Store,
    out: &mut impl Write,
    name: &str,
    disable: bool,
) -> Result<(), AppError> {
    let user = store
        .user_by_name(name)
        .await?
        .ok_or_else(|| AppError::Usage(format!("no such user '{name}'")))?;
    store.set_disabled(user.id, disable).await?;
    if disable {
        // Sessions would refuse a disabled user anyway; this ends them for good.
        store.delete_sessions_of(user.id).await?;
    }
    writeln!(
        out,
        "{} {name}",
        if disable { "disabled" } else { "enabled" }
    )?;
    Ok(())
}

async fn user_command(store: &Store, cmd: UserCommand) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match cmd {
        UserCommand::Add {
            name,
            email,
            display_name,
            ..
        } => {
            validate_user_name(&name)?;
            if let Some(e) = &email
                && (!e.contains('@') || e.contains(char::is_whitespace))
            {
                return Err(AppError::Usage(format!("invalid email address '{e}'")));
            }
            let pw = read_password()?;
            let hash = hash_password(&pw).map_err(|e| AppError::Usage(e.to_string()))?;
            match store
                .create_user(NewUser {
                    name: name.clone(),
                    email,
                    display_name,
                    password_hash: Some(hash),
                })
                .await
            {
                Ok(_) => writeln!(out, "added user {name}")?,
                Err(StoreError::AlreadyExists) => {
                    return Err(AppError::Usage(format!("user '{name}' already exists")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}{}",
                    u.name,
                    u.email.as_deref().unwrap_or("-"),
                    u.display_name.as_deref().unwrap_or("-"),
                    if u.disabled { "\tdisabled" } else { "" }
                )?;
            }
        }
        UserCommand::Passwd { name, .. } => {
            let user = store
                .user_by_name(&name)
                .await?
                .ok_or_else(|| AppError::Usage(format!("no such user '{name}'")))?;
            let pw = read_password()?;
            let hash = hash_password(&pw).map_err(|e| AppError::Usage(e.to_string()))?;
            store.set_password(user.id, &hash).await?;
            writeln!(out, "password changed for {name}")?;
        }
        UserCommand::Disable { name } => set_disabled(store, &mut out, &name, true).await?,
        UserCommand::Enable { name } => set_disabled(store, &mut out, &name, false).await?,
        UserCommand::Remove { name, yes } => {
            let user = store
                .user_by_name(&name)
                .await?
                .ok_or_else(|| AppError::Usage(format!("no such user '{name}'")))?;
            if !yes {
                return Err(AppError::Usage(format!(
                    "removing '{name}' deletes all their calendars; run again with --yes to confirm"
                )));
            }
            store.delete_user(user.id).await?;
            writeln!(out, "removed user {name} and their data")?;
        }
    }
    Ok(())
}

async fn named_user(store: &Store, name: &str) -> Result<crate::store::User, AppError> {
    store
        .user_by_name(name)
        .await?
        .ok_or_else(|| AppError::Usage(format!("no such user '{name}'")))
}

/// The calendar `name` in `user`'s home (the home is created on first use).
async fn named_calendar(
    store: &Store,
    user: &crate::store::User,
    name: &str,
) -> Result<crate::store::Resource, AppError> {
    store
        .ensure_home(user.id, &crate::caldav::default_collections())
        .await?;
    let mut chain = store.lookup_path(user.id, &[name.to_string()]).await?;
    match chain.pop() {
        Some(c) if chain.len() == 1 && c.kind == ResourceKind::Calendar => Ok(c),
        _ => Err(AppError::Usage(format!(
            "'{}' has no calendar named '{name}'",
            user.name
        ))),
    }
}

async fn app_password_command(
    store: &Store,
    cfg: &Config,
    cmd: AppPasswordCommand,
) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match cmd {
        AppPasswordCommand::Add {
            user,
            name,
            scope,
            expires_days,
        } => {
            let u = named_user(store, &user).await?;
            let scope = crate::auth::Scope::parse(&scope)
                .ok_or_else(|| AppError::Usage("scope must be caldav or all".into()))?;
            let (pw, ap) = crate::auth::app_password::create(
                store,
                &cfg.server_key()?,
                &u,
                &name,
                scope,
                expires_days,
                crate::clock::Clock::now(&crate::clock::SystemClock),
            )
            .await
            .map_err(|e| AppError::Usage(e.to_string()))?;
            writeln!(
                out,
                "app password {} \"{}\" for {user}: {pw}\n(shown only now; use it with the user name {user})",
                ap.id, ap.name
            )?;
        }
        AppPasswordCommand::List { user } => {
            let u = named_user(store, &user).await?;
            for ap in store.app_passwords_of(u.id).await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\tlast used {}\texpires {}",
                    ap.id,
                    ap.name,
                    ap.scope,
                    ap.last_used_at.map_or("never".into(), shown_time),
                    ap.expires_at.map_or("never".into(), shown_time)
                )?;
            }
        }
        AppPasswordCommand::Revoke { user, id } => {
            let u = named_user(store, &user).await?;
            if !store.revoke_app_password(u.id, id).await? {
                return Err(AppError::Usage(format!("{user} has no app password {id}")));
            }
            writeln!(out, "revoked app password {id}")?;
        }
    }
    Ok(())
}

async fn delegate_command(store: &Store, cmd: DelegateCommand) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match cmd {
        DelegateCommand::Add {
            owner,
            delegate,
            write,
        } => {
            let o = named_user(store, &owner).await?;
            let d = named_user(store, &delegate).await?;
            if o.id == d.id {
                return Err(AppError::Usage(
                    "a user cannot be their own delegate".into(),
                ));
            }
            let current = store.delegates_of(o.id).await?;
            let mut group: Vec<_> = current
                .iter()
                .filter(|(u, w)| *w == write && u.id != d.id)
                .map(|(u, _)| u.id)
                .collect();
            group.push(d.id);
            store.set_delegates(o.id, write, &group).await?;
            let level = if write { "read-write" } else { "read-only" };
            writeln!(out, "{delegate} is now a {level} delegate of {owner}")?;
        }
        DelegateCommand::Remove { owner, delegate } => {
            let o = named_user(store, &owner).await?;
            let d = named_user(store, &delegate).await?;
            let current = store.delegates_of(o.id).await?;
            if !current.iter().any(|(u, _)| u.id == d.id) {
                return Err(AppError::Usage(format!(
                    "{delegate} is not a delegate of {owner}"
                )));
            }
            for write in [false, true] {
                let group: Vec<_> = current
                    .iter()
                    .filter(|(u, w)| *w == write && u.id != d.id)
                    .map(|(u, _)| u.id)
                    .collect();
                store.set_delegates(o.id, write, &group).await?;
            }
            writeln!(out, "{delegate} no longer acts for {owner}")?;
        }
        DelegateCommand::List { owner } => {
            let o = named_user(store, &owner).await?;
            for (u, write) in store.delegates_of(o.id).await? {
                writeln!(
                    out,
                    "{}\t{}",
                    u.name,
                    if write { "read-write" } else { "read-only" }
                )?;
            }
        }
    }
    Ok(())
}

async fn feed_command(store: &Store, cmd: FeedCommand) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match cmd {
        FeedCommand::Add {
            user,
            calendar,
            label,
            detail,
        } => {
            let u = named_user(store, &user).await?;
            let cal = named_calendar(store, &u, &calendar).await?;
            let label = label.unwrap_or_else(|| calendar.clone());
            let (f, token) = crate::feed::create(store, &u, &cal, &label, detail).await?;
            writeln!(
                out,
                "feed {} for {user}/{calendar}: {}\n(the path is shown only now; prefix it with the server's public URL)",
                f.id,
                crate::feed::feed_path(&token)
            )?;
        }
        FeedCommand::List { user } => {
            let u = named_user(store, &user).await?;
            for f in store.feeds_of(u.id).await? {
                let cal = store.resource(f.calendar).await?.map(|c| c.name);
                writeln!(
                    out,
                    "{}\t{}\t{}\tlast used {}",
                    f.id,
                    cal.as_deref().unwrap_or("-"),
                    f.label,
                    f.last_used_at.map_or("never".into(), shown_time)
                )?;
            }
        }
        FeedCommand::Revoke { user, id } => {
            let u = named_user(store, &user).await?;
            if !store.revoke_feed(u.id, id).await? {
                return Err(AppError::Usage(format!("{user} has no feed {id}")));
            }
            writeln!(out, "revoked feed {id}")?;
        }
    }
    Ok(())
}

async fn import_command(
    store: &Store,
    cfg: &Config,
    user: &str,
    calendar: &str,
    file: &Path,
) -> Result<(), AppError> {
    let u = named_user(store, user).await?;
    let cal = named_calendar(store, &u, calendar).await?;
    let data = if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)?;
        buf
    } else {
        std::fs::read(file)?
    };
    let limits = cfg.dav_settings().calendar;
    // A data load: no scheduling, and no worker runs in this process to be told.
    let calendars = crate::calendar::Calendars {
        store,
        user: &u,
        limits: &limits,
        mailer: None,
        directory: None,
        clock: &crate::clock::SystemClock,
        hooks: &crate::calendar::NoHooks,
    };
    let mut progress = |done: usize, total: usize| {
        if done.is_multiple_of(100) || done == total {
            // Progress is for the person at the terminal: stderr, not the log.
            let _ = write!(std::io::stderr().lock(), "\rimporting {done}/{total}");
        }
    };
    let report = calendars
        .import(&cal, &data, &mut progress)
        .await
        .map_err(|e| AppError::Usage(format!("import failed: {e}")))?;
    let _ = writeln!(std::io::stderr().lock());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {} new, replaced {}, skipped {}",
        report.imported,
        report.replaced,
        report.skipped.len()
    )?;
    for s in &report.skipped {
        writeln!(out, "skipped {}: {}", s.what, s.reason)?;
    }
    Ok(())
}

async fn export_command(store: &Store, user: &str, calendar: &str) -> Result<(), AppError> {
    let u = named_user(store, user).await?;
    let cal = named_calendar(store, &u, calendar).await?;
    let body = crate::feed::render(store, &cal, None).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    Ok(())
}

/// Wait for SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// returned future is first polled: a signal that arrives after start-up but before the
/// server loop runs must still shut down cleanly rather than kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}

/// The data directory, created if missing, and kept to the server's user (0700).
/// A directory that already exists is the operator's and keeps its mode.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// The background tasks of a serving process, each with the supervisor's stop signal: the
/// sharing worker, the iMIP outbox (with a relay), the directory refresh and the session purge.
fn start_workers(
    cfg: &Config,
    store: &Store,
    sharing: &crate::share::Sharing,
    mailer: Option<&crate::mail::Mailer>,
    org: &crate::org::OrgChart,
    clock: &crate::clock::SharedClock,
) -> tasks::Supervisor {
    let mut tasks = tasks::Supervisor::new();
    {
        let sharing = sharing.clone();
        tasks.spawn("sharing", move |stop| sharing.run(stop));
    }
    if let Some(m) = mailer {
        // Queued iMIP mail goes out from here, this instance's and any other's.
        let (store, m, settings, clock) = (
            store.clone(),
            m.clone(),
            cfg.dav_settings().calendar,
            clock.clone(),
        );
        tasks.spawn("outbox", move |stop| {
            crate::calendar::outbox::run(store, m, settings, clock, Duration::from_secs(5), stop)
        });
    }
    {
        // The org chart is copied onto accounts at start and every refresh interval (LDAP's
        // read again), so group and department shares follow their members.
        let org = org.clone();
        let sharing = sharing.clone();
        tasks.spawn("directory refresh", move |mut stop| async move {
            let mut tick = tokio::time::interval(org.refresh_interval());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                match org.refresh().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(accounts = n, "directory memberships updated");
                        sharing.kick();
                    }
                    Err(e) => tracing::warn!(error = %e, "copying directory memberships failed"),
                }
            }
        });
    }
    {
        // Expired sessions are refused on lookup; this only keeps the table small.
        let (store, clock) = (store.clone(), clock.clone());
        tasks.spawn("session purge", move |mut stop| async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = store.purge_sessions(clock.now()).await {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
        });
    }
    tasks
}

/// Say where the server listens and, on a fresh install, how to begin.
fn announce(addr: SocketAddr, backend: &str, no_users: bool) {
    tracing::info!(%addr, backend, "convene listening");
    if no_users {
        tracing::info!(
            "no users yet: add one with `convene user add NAME --password-stdin --email NAME@example.org` \
             (password on standard input), then give clients the URL http://{addr}/ \
             (discovery at /.well-known/caldav; calendars at http://{addr}{})",
            home_href("NAME")
        );
    } else {
        tracing::info!(
            "client URL: http://{addr}/ (each user's calendars at /dav/calendars/NAME/)"
        );
    }
}

/// The credential vault, when configured (`[vault]` or `CONVENE_VAULT_KEY`): a key that does
/// not open it is a usage error, so the server does not start under it.
async fn open_vault(
    cfg: &Config,
    store: &Store,
) -> Result<Option<crate::bridge::Credentials>, AppError> {
    let env = std::env::var("CONVENE_VAULT_KEY").ok();
    if cfg.vault.is_none() && env.is_none() {
        return Ok(None);
    }
    let vault_cfg = cfg.vault.clone().unwrap_or_default();
    let kms = transit(&vault_cfg)?;
    let keys = crate::vault::Keyring::load(&vault_cfg, env.as_deref(), kms.as_ref())
        .await
        .map_err(|e| AppError::Usage(format!("vault: {e}")))?;
    crate::bridge::Credentials::open(store.clone(), keys)
        .await
        .map(Some)
        .map_err(|e| AppError::Usage(format!("vault: {e}")))
}

/// The KMS that holds the KEKs wrapped (`[vault.transit]`), when one is configured.
fn transit(
    vault_cfg: &crate::vault::VaultConfig,
) -> Result<Option<crate::vault::transit::Transit>, AppError> {
    vault_cfg
        .transit
        .as_ref()
        .map(|t| {
            crate::vault::transit::Transit::new(
                t,
                std::env::var("CONVENE_TRANSIT_TOKEN").ok().as_deref(),
            )
        })
        .transpose()
        .map_err(|e| AppError::Usage(format!("vault: {e}")))
}

/// `convene vault new-key ID`: a fresh KEK as a key-file line, wrapped by the configured KMS
/// when there is one (then the line holds no key at all).
async fn vault_new_key(cfg: &Config, id: &str) -> Result<(), AppError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(AppError::Usage(
            "a key id is 1 to 64 printable characters".into(),
        ));
    }
    let key = crate::crypto::Key::random();
    let value = match transit(&cfg.vault.clone().unwrap_or_default())? {
        Some(kms) => kms
            .wrap(&key)
            .await
            .map_err(|e| AppError::Usage(format!("vault: {e}")))?,
        None => hex::encode(key.expose()),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{id} {value}")?;
    Ok(())
}

async fn vault_command(store: &Store, cfg: &Config, cmd: VaultCommand) -> Result<(), AppError> {
    if let VaultCommand::NewKey { id } = &cmd {
        return vault_new_key(cfg, id).await;
    }
    let mut out = std::io::stdout().lock();
    let Some(vault) = open_vault(cfg, store).await? else {
        return Err(AppError::Usage(
            "no vault is configured: set [vault] key_file or CONVENE_VAULT_KEY".into(),
        ));
    };
    match cmd {
        VaultCommand::Check => writeln!(out, "the vault opens with this key")?,
        VaultCommand::NewKey { .. } => {}
        VaultCommand::Rotate => {
            let n = vault
                .rotate()
                .await
                .map_err(|e| AppError::Usage(format!("vault: {e}")))?;
            writeln!(out, "re-wrapped {n} data keys under the current key")?;
        }
    }
    Ok(())
}

/// The registered business systems (the configuration's, and the CLI's when there is a
/// store), checked: a bad entry is a usage error naming it.
async fn registry(
    cfg: &Config,
    store: Option<&Store>,
) -> Result<crate::bridge::systems::Registry, AppError> {
    match store {
        Some(store) => crate::bridge::registry(store, &cfg.systems).await,
        None => crate::bridge::systems::Registry::new(&cfg.systems),
    }
    .map_err(|e| AppError::Usage(format!("[[systems]]: {e}")))
}

async fn systems_command(
    cfg: &Config,
    store: Option<&Store>,
    cmd: Option<SystemsCommand>,
) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    let need_store =
        || store.ok_or_else(|| AppError::Usage("no store to register systems in".into()));
    match cmd {
        None | Some(SystemsCommand::List) => {}
        Some(SystemsCommand::Remove { name }) => {
            let gone = crate::bridge::unregister(need_store()?, &name)
                .await
                .map_err(|e| AppError::Usage(format!("bridge: {e}")))?;
            if !gone {
                return Err(AppError::Usage(format!(
                    "no system {name:?} was registered with the CLI"
                )));
            }
            writeln!(out, "removed {name}, with its bindings and secrets")?;
            return Ok(());
        }
        Some(SystemsCommand::Add {
            name,
            label,
            url,
            login,
            origins,
            groups,
            departments,
            icon,
            login_path,
            success_cookie,
        }) => {
            let login: crate::bridge::systems::LoginMethod =
                serde_json::from_value(serde_json::Value::String(login.clone())).map_err(|_| {
                    AppError::Usage(format!("--login {login:?}: basic, form or imap"))
                })?;
            let form = (login == crate::bridge::systems::LoginMethod::Form).then(|| {
                crate::bridge::systems::FormLogin {
                    login_path,
                    success_cookie,
                    ..Default::default()
                }
            });
            let entry = crate::bridge::systems::SystemConfig {
                name: name.clone(),
                label,
                icon,
                url,
                origins,
                login,
                groups,
                departments,
                forward_auth_secret: None,
                form,
                header: None,
            };
            crate::bridge::register(
                need_store()?,
                &cfg.systems,
                entry,
                crate::clock::system().now(),
            )
            .await
            .map_err(AppError::Usage)?;
            writeln!(
                out,
                "registered {name}; the server picks it up at its next start"
            )?;
            return Ok(());
        }
    }
    for s in registry(cfg, store).await?.all() {
        let c = &s.cfg;
        let audience = if c.groups.is_empty() && c.departments.is_empty() {
            "everyone".to_string()
        } else {
            c.groups
                .iter()
                .map(|g| format!("group:{g}"))
                .chain(c.departments.iter().map(|d| format!("department:{d}")))
                .collect::<Vec<_>>()
                .join(",")
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            c.name,
            c.login.as_str(),
            s.origins.join(","),
            audience,
            c.label
        )?;
    }
    Ok(())
}

/// The org chart: the LDAP directory's when one is configured, else Convene's own.
pub fn org_chart(
    store: &Store,
    directory: Option<&crate::directory::LdapDirectory>,
    clock: &crate::clock::SharedClock,
) -> crate::org::OrgChart {
    match directory {
        Some(d) => crate::org::OrgChart::ldap(store.clone(), d.clone(), clock.clone()),
        None => crate::org::OrgChart::local(store.clone(), clock.clone()),
    }
}

/// The mail relay and the directory, when configured; a bad section is a usage error.
fn outside_services(
    cfg: &Config,
) -> Result<
    (
        Option<crate::mail::Mailer>,
        Option<crate::directory::LdapDirectory>,
    ),
    AppError,
> {
    let mailer = match &cfg.smtp {
        Some(smtp) => Some(
            crate::mail::Mailer::new(smtp).map_err(|e| AppError::Usage(format!("[smtp]: {e}")))?,
        ),
        None => None,
    };
    let directory = match &cfg.ldap {
        Some(l) => Some(
            crate::directory::LdapDirectory::new(l.clone())
                .map_err(|e| AppError::Usage(format!("[ldap]: {e}")))?,
        ),
        None => None,
    };
    Ok((mailer, directory))
}

async fn serve(cfg: Config, store: Store) -> Result<(), AppError> {
    // Before anything is announced, so an early SIGTERM is a clean stop.
    let shutdown = shutdown_signal();
    let users = store.list_users().await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| AppError::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener.local_addr()?;
    // Descriptors for the store, files and the directory stay free beside the connections.
    let descriptors = listener::raise_descriptor_limit().unwrap_or(1024);
    let max_connections = cfg
        .max_connections
        .min(usize::try_from(descriptors.saturating_sub(128)).unwrap_or(usize::MAX))
        .max(16);
    let listener = axum::serve::ListenerExt::tap_io(
        listener::BoundedListener::new(
            listener,
            max_connections,
            Duration::from_secs(cfg.idle_timeout_seconds.max(1)),
        ),
        |_| {},
    );
    announce(addr, store.backend(), users.is_empty());
    if cfg.database_url.is_none() {
        let data = std::path::absolute(&cfg.data_dir).unwrap_or(cfg.data_dir.clone());
        tracing::info!(data = %data.display(), "data directory");
    }
    let (mailer, directory) = outside_services(&cfg)?;
    let vault = open_vault(&cfg, &store).await?.map(Arc::new);
    let systems = Arc::new(crate::bridge::systems::LiveRegistry::new(
        registry(&cfg, Some(&store)).await?,
    ));
    // A system removed from the configuration takes its people's credentials with it.
    for name in crate::bridge::forget_unregistered(&store, &systems.snapshot())
        .await
        .map_err(|e| AppError::Usage(format!("bridge: {e}")))?
    {
        tracing::info!(system = %name, "a system no longer registered: its bindings and secrets erased");
    }
    let clock = crate::clock::system();
    let org = org_chart(&store, directory.as_ref(), &clock);
    let sharing = crate::share::Sharing::new(
        store.clone(),
        org.clone(),
        crate::share::SharingConfig {
            public_url: cfg
                .sharing
                .public_url
                .clone()
                .unwrap_or_else(|| default_public_url(addr)),
            privacy: crate::ical::delegated::Privacy {
                confidential: cfg.sharing.confidential,
                private: cfg.sharing.private,
            },
            interval: Duration::from_secs(cfg.sharing.interval_seconds.clamp(1, 3600)),
            index_horizon_days: cfg.index_horizon_days,
            max_instances: cfg.max_instances,
            home_defaults: crate::caldav::default_collections(),
            clock: clock.clone(),
        },
    );
    let mut tasks = start_workers(&cfg, &store, &sharing, mailer.as_ref(), &org, &clock);
    {
        // Systems registered or removed with the CLI (on any instance's store) take effect
        // within `[bridge] reload_seconds`, without a restart.
        let (store, live, configured) = (store.clone(), systems.clone(), cfg.systems.clone());
        let every = Duration::from_secs(cfg.bridge.reload_seconds.clamp(1, 3600));
        tasks.spawn("systems reload", move |mut stop| async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                match crate::bridge::registry(&store, &configured).await {
                    Ok(r) => {
                        if live.replace(r) {
                            tracing::info!("business systems reloaded");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reloading the business systems failed; the last good registry stays"),
                }
            }
        });
    }
    let oidc = match &cfg.oidc {
        Some(o) => Some(
            crate::auth::oidc::OidcClient::new(o.clone())
                .map_err(|e| AppError::Usage(format!("[oidc]: {e}")))?,
        ),
        None => None,
    };
    let key = cfg.server_key()?;
    let apps = cfg
        .bridge
        .apps_url
        .as_deref()
        .map(crate::bridge::systems::AppHosts::parse)
        .transpose()
        .map_err(|e| AppError::Usage(format!("[bridge] {e}")))?;
    let handoffs = Arc::new(crate::bridge::handoff::Handoffs::new(&key));
    let extra_roots = match &cfg.bridge.ca_file {
        Some(f) => crate::proxy::tls::extra_roots(f)
            .map_err(|e| AppError::Usage(format!("[bridge] ca_file: {e}")))?,
        None => vec![],
    };
    let tls = crate::proxy::tls::connector(&extra_roots)
        .map_err(|e| AppError::Usage(format!("[bridge] TLS: {e}")))?;
    let client = crate::proxy::http_client(Duration::from_secs(10), &extra_roots)
        .map_err(|e| AppError::Usage(format!("HTTP client: {e}")))?;
    let gateway = match &apps {
        Some(hosts) => Some(Arc::new(crate::proxy::gateway::Gateway::new(
            crate::proxy::gateway::GatewayParts {
                store: store.clone(),
                registry: systems.clone(),
                hosts: hosts.clone(),
                portal: cfg
                    .bridge
                    .portal_url
                    .clone()
                    .or_else(|| cfg.sharing.public_url.clone())
                    .unwrap_or_else(|| default_public_url(addr)),
                handoffs: handoffs.clone(),
                vault: vault.clone(),
                clock: clock.clone(),
            },
            Duration::from_secs(10),
            client.clone(),
            tls.clone(),
        ))),
        None => None,
    };
    let verifier = Arc::new(crate::proxy::LoginVerifier::new(
        client,
        Duration::from_secs(10),
        tls,
    ));
    let session_seconds = (cfg.session_hours.clamp(1, 24 * 90) * 3600) as i64;
    let state = Arc::new(AppState {
        flows: Default::default(),
        sessions: crate::web::session::Sessions::new(&key, session_seconds, cfg.secure_cookies)
            .with_clock(clock.clone()),
        session_seconds,
        oidc,
        directory: directory.clone(),
        org,
        admins: cfg.admins.clone(),
        vault,
        systems,
        verifier: verifier.clone(),
        mail: verifier,
        unread: Default::default(),
        forward_grants: Default::default(),
        apps,
        handoffs,
        auth: {
            let a =
                LocalAuthenticator::new(store.clone(), Duration::from_secs(cfg.auth_cache_seconds))
                    .with_key(key)
                    .with_backends(cfg.password_backends.clone())
                    .with_clock(clock.clone());
            match directory {
                Some(d) => a.with_ldap(d),
                None => a,
            }
        },
        limiter: crate::auth::limit::LoginLimiter::new(crate::auth::limit::Limits::default()),
        store: store.clone(),
        dav: cfg.dav_settings(),
        max_body_bytes: cfg.max_body_bytes,
        mailer,
        sharing,
        clock: clock.clone(),
        trusted_proxies: cfg.trusted_proxies.clone(),
    });
    let app = match gateway {
        Some(g) => crate::proxy::gateway::front(g, router(state)),
        None => router(state),
    };
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    // Client addresses feed the login rate limits.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    })
    .into_future();
    tokio::pin!(server);
    let grace = Duration::from_secs(cfg.shutdown_grace_seconds);
    // In-flight requests get `shutdown_grace_seconds` to finish; a client that holds a
    // connection open longer is cut off rather than keeping the process alive.
    tokio::select! {
        r = &mut server => r?,
        _ = async {
            let _ = stopping_rx.changed().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    // The workers stop before the store closes under them.
    tasks.shutdown(Duration::from_secs(10)).await;
    store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A time as the CLI shows it: UTC, to the second (`2026-12-06 17:45:00Z`).
fn shown_time(epoch: i64) -> String {
    match jiff::Timestamp::from_second(epoch) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        Err(_) => epoch.to_string(),
    }
}

/// The public URL when `[sharing] public_url` is not set: the listen address, or, when that is
/// every interface (`0.0.0.0`, `::`), which no client can reach, `localhost` on its port, with
/// a warning that names the setting.
fn default_public_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let url = format!("http://localhost:{}", addr.port());
        tracing::warn!(
            %url,
            "[sharing] public_url is not set and the server listens on every interface: links in shared entries (avatars) use {url}; set public_url to the address clients use"
        );
        return url;
    }
    format!("http://{addr}")
}

/// A database URL as it may be shown: without the password, if it has one.
fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

pub async fn run(cli: Cli) -> Result<(), AppError> {
    let cfg = Config::load(&cli)?;
    if let Command::Systems { command } = cli.command {
        // Listing needs no store: without one, the configuration's systems alone.
        let listing = matches!(command, None | Some(SystemsCommand::List));
        let store = match cfg.store_url(!listing) {
            Ok(url) => Some(Store::open(&url).await.map_err(|e| {
                AppError::Usage(format!("cannot open the database {}: {e}", shown_url(&url)))
            })?),
            Err(_) if listing => None,
            Err(e) => return Err(e),
        };
        let r = systems_command(&cfg, store.as_ref(), command).await;
        if let Some(s) = store {
            s.close().await;
        }
        return r;
    }
    let read_only = matches!(
        cli.command,
        Command::User(UserCommand::List)
            | Command::Feed(FeedCommand::List { .. })
            | Command::AppPassword(AppPasswordCommand::List { .. })
            | Command::Delegate(DelegateCommand::List { .. })
            | Command::Export { .. }
            | Command::Org(org_cli::OrgCommand::Show)
    );
    let url = cfg.store_url(!read_only)?;
    let store = Store::open(&url)
        .await
        .map_err(|e| AppError::Usage(format!("cannot open the database {}: {e}", shown_url(&url))))?
        .with_listing_budget(cfg.listing_cache_rows);
    match cli.command {
        Command::Serve(_) => serve(cfg, store).await,
        Command::User(cmd) => {
            let r = user_command(&store, cmd).await;
            store.close().await;
            r
        }
        Command::Feed(cmd) => {
            let r = feed_command(&store, cmd).await;
            store.close().await;
            r
        }
        Command::Delegate(cmd) => {
            let r = delegate_command(&store, cmd).await;
            store.close().await;
            r
        }
        Command::AppPassword(cmd) => {
            let r = app_password_command(&store, &cfg, cmd).await;
            store.close().await;
            r
        }
        Command::Import {
            user,
            calendar,
            file,
        } => {
            let r = import_command(&store, &cfg, &user, &calendar, &file).await;
            store.close().await;
            r
        }
        Command::Export { user, calendar } => {
            let r = export_command(&store, &user, &calendar).await;
            store.close().await;
            r
        }
        Command::Systems { .. } => Ok(()),
        Command::Vault(cmd) => {
            let r = vault_command(&store, &cfg, cmd).await;
            store.close().await;
            r
        }
        Command::Org(cmd) => {
            let (_, directory) = outside_services(&cfg)?;
            let org = org_chart(&store, directory.as_ref(), &crate::clock::system());
            let r = org_cli::org_command(&org, cmd).await;
            store.close().await;
            r
        }
    }
}

/// Used by tests and tools that need the default data file path.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("convene.db")
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn a_shown_database_url_has_no_password() {
        assert_eq!(
            super::shown_url("postgres://app:s3cret@db:5432/convene"),
            "postgres://app@db:5432/convene"
        );
        assert_eq!(super::shown_url("sqlite:///var/x.db"), "sqlite:///var/x.db");
    }

    #[test]
    fn an_unspecified_listen_address_is_no_public_url() {
        let any: std::net::SocketAddr = "0.0.0.0:8008".parse().unwrap();
        assert_eq!(super::default_public_url(any), "http://localhost:8008");
        let v6: std::net::SocketAddr = "[::]:8008".parse().unwrap();
        assert_eq!(super::default_public_url(v6), "http://localhost:8008");
        let one: std::net::SocketAddr = "192.0.2.7:8008".parse().unwrap();
        assert_eq!(super::default_public_url(one), "http://192.0.2.7:8008");
    }

    #[test]
    fn the_cli_shows_times_as_dates() {
        assert_eq!(super::shown_time(1_709_210_096), "2024-02-29 12:34:56Z");
    }
}
