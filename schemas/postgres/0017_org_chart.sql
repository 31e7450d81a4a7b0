-- Convene's own org chart, the directory when no LDAP server is configured: departments (a
-- tree, each with an optional head), groups with their members, and each person's title,
-- department and manager. Memberships are copied into user_groups (sources 'directory' and
-- 'department') whenever this changes, as the LDAP refresh does from LDAP.
CREATE TABLE org_departments (
    name        TEXT PRIMARY KEY,
    parent      TEXT REFERENCES org_departments(name) ON DELETE SET NULL,
    description TEXT,
    head_id     BIGINT REFERENCES users(id) ON DELETE SET NULL
);

CREATE TABLE org_groups (
    name        TEXT PRIMARY KEY,
    description TEXT
);

CREATE TABLE org_group_members (
    group_name TEXT NOT NULL REFERENCES org_groups(name) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_id)
);

CREATE TABLE org_people (
    user_id    BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT,
    department TEXT REFERENCES org_departments(name) ON DELETE SET NULL,
    manager_id BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX org_people_department ON org_people(department);

-- Directory groups come from LDAP or from the tables above: one source name for both.
UPDATE user_groups SET source = 'directory' WHERE source = 'ldap';
