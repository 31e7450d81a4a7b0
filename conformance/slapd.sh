#!/usr/bin/env bash
# A throwaway OpenLDAP slapd on 127.0.0.1 for the LDAP tests, with a small sample
# organisation. Everything (config, database, pid, log) lives under DIR; Debian's system
# instance is never configured or started.
#
#   conformance/slapd.sh start DIR PORT   prints LDAP_URL=..., LDAP_PID=... on success
#   conformance/slapd.sh stop DIR         stops the slapd started in DIR (by its PID)
#
#   suffix   dc=example,dc=org
#   admin    cn=admin,dc=example,dc=org / admin-secret (tests change the directory with it)
#   service  cn=reader,ou=services,dc=example,dc=org / reader-secret (read-only search)
#   people   uid=NAME,ou=people,dc=example,dc=org / NAME-pass: carol, dave, erin, gina, hank,
#            ivan (SSHA), frank (ARGON2); mail NAME@example.org
#   groups   cn=sales, cn=engineering (groupOfNames)
#   departments  ou=departments: Engineering > Platform, Sales (organizationalUnit; seeAlso the
#            head). People carry departmentNumber (the department's ou), title and manager;
#            carol has a jpegPhoto, hank a labeledURI avatar.
#   TLS      a throwaway CA signs the server's certificate for 127.0.0.1, so StartTLS works;
#            start prints LDAP_CA=DIR/ca.pem (the CA a client must be given).
set -euo pipefail

SUFFIX="dc=example,dc=org"

install_slapd() {
  local missing=()
  for p in slapd ldap-utils; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing slapd and ldap-utils from Debian" >&2
  # No system instance: no configuration, and no service started by the package scripts.
  local prc=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; made=1; fi
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [ "$made" = 1 ]; then rm -f "$prc"; fi
}

start() {
  local dir="$1" port="$2"
  install_slapd
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  rm -rf "$dir/db" "$dir/slapd.d"
  mkdir -p "$dir/db" "$dir/slapd.d"
  local rootpw readerpw
  rootpw="$(slappasswd -h '{SSHA}' -s admin-secret)"
  # A CA and a server certificate for 127.0.0.1, valid for a day.
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=Convene test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 1 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
  readerpw="$(slappasswd -h '{SSHA}' -s reader-secret)"
  cat >"$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload argon2
pidfile $dir/slapd.pid
loglevel none
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key

database config
access to * by * none

database mdb
maxsize 104857600
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $rootpw
directory $dir/db
index objectClass,uid,mail,departmentNumber eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="cn=reader,ou=services,$SUFFIX" read by self read by * none
EOF
  {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n' "$SUFFIX"
    for ou in people groups services departments; do
      printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$SUFFIX" "$ou"
    done
    printf 'dn: cn=reader,ou=services,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: %s\n\n' "$SUFFIX" "$readerpw"
    printf 'dn: ou=Engineering,ou=departments,%s\nobjectClass: organizationalUnit\nou: Engineering\ndescription: Builds the product\nseeAlso: uid=carol,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX"
    printf 'dn: ou=Platform,ou=Engineering,ou=departments,%s\nobjectClass: organizationalUnit\nou: Platform\ndescription: Servers and storage\nseeAlso: uid=frank,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX"
    printf 'dn: ou=Sales,ou=departments,%s\nobjectClass: organizationalUnit\nou: Sales\ndescription: Sells it\nseeAlso: uid=dave,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX"
    local uid given sn dept title manager pw
    while read -r uid given sn dept title manager; do
      if [ "$uid" = frank ]; then
        pw="$(slappasswd -o module-load=argon2 -h '{ARGON2}' -s "$uid-pass")"
      else
        pw="$(slappasswd -h '{SSHA}' -s "$uid-pass")"
      fi
      printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s %s\nsn: %s\ngivenName: %s\ndisplayName: %s %s\nmail: %s@example.org\nuserPassword: %s\ndepartmentNumber: %s\ntitle: %s\n' \
        "$uid" "$SUFFIX" "$uid" "$given" "$sn" "$sn" "$given" "$given" "$sn" "$uid" "$pw" "$dept" "${title//_/ }"
      [ "$manager" = - ] || printf 'manager: uid=%s,ou=people,%s\n' "$manager" "$SUFFIX"
      # A tiny JPEG for carol (the avatar test).
      # An avatar URL for hank (the avatar_url_attribute test).
      [ "$uid" = hank ] && printf 'labeledURI: https://avatars.example.org/hank.png Hank\n'
      [ "$uid" = carol ] && printf 'jpegPhoto:: %s\n' '/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA='
      printf '\n'
    done <<'PEOPLE'
carol Carol Clark Engineering Head_of_Engineering -
dave Dave Davis Sales Head_of_Sales -
erin Erin Evans Sales Account_Manager dave
frank Frank Fischer Platform Platform_Lead carol
gina Gina Green Platform Engineer frank
hank Hank Hill Sales Account_Manager dave
ivan Ivan Ivanov Engineering Engineer carol
PEOPLE
    printf 'dn: cn=sales,ou=groups,%s\nobjectClass: groupOfNames\ncn: sales\nmember: uid=dave,ou=people,%s\n\n' "$SUFFIX" "$SUFFIX"
    printf 'dn: cn=engineering,ou=groups,%s\nobjectClass: groupOfNames\ncn: engineering\nmember: uid=carol,ou=people,%s\n' "$SUFFIX" "$SUFFIX"
  } >"$dir/data.ldif"
  # Bulk-load offline, then turn slapd.conf into cn=config (slaptest needs the database).
  slapadd -q -f "$dir/slapd.conf" -b "$SUFFIX" -l "$dir/data.ldif" >&2
  slaptest -Q -f "$dir/slapd.conf" -F "$dir/slapd.d" >&2
  local url="ldap://127.0.0.1:$port"
  # -d 0: stay in the foreground, so the PID is the one we started.
  /usr/sbin/slapd -d 0 -F "$dir/slapd.d" -h "$url/" >"$dir/slapd.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/slapd.launcher.pid"
  for _ in $(seq 1 200); do
    if ldapsearch -x -H "$url" -D "cn=reader,ou=services,$SUFFIX" -w reader-secret \
      -b "$SUFFIX" -s base -LLL dn >/dev/null 2>&1; then
      echo "LDAP_URL=$url"
      echo "LDAP_PID=$pid"
      echo "LDAP_CA=$dir/ca.pem"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "slapd exited; log:" >&2
      cat "$dir/slapd.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "slapd did not answer within 10 s" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

stop() {
  local dir="$1" pid
  pid="$(cat "$dir/slapd.launcher.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/slapd.launcher.pid"
}

case "${1:-}" in
  start) start "${2:?DIR}" "${3:?PORT}" ;;
  stop) stop "${2:?DIR}" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
