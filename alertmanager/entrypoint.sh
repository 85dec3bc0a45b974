#!/bin/sh
# Start Alertmanager with its notification destinations taken from the environment.
#
# Alertmanager never expands environment variables in its config. This script (POSIX sh; runs
# under the busybox shell of the official image) renders a copy of the config given with
# --config.file into $RUNTIME, writes the secrets next to it, and execs Alertmanager on the copy:
#
#   ALERT_EMAIL, SMTP_FROM, ALERT_ESCALATION_EMAIL -> $RUNTIME/destinations.tmpl (redefines the
#                                                     llm.email.* templates of templates/llm.tmpl)
#   SLACK_WEBHOOK_URL  or SLACK_WEBHOOK_URL_FILE   -> $RUNTIME/slack_webhook_url  (slack_api_url_file)
#   SMTP_PASSWORD      or SMTP_PASSWORD_FILE       -> $RUNTIME/smtp_auth_password (smtp_auth_password_file)
#   SMTP_SMARTHOST, SMTP_USERNAME, SMTP_REQUIRE_TLS,
#   ALERT_WEBHOOK_URL                              -> substituted into the rendered copy
#
# Unset variables keep the shipped defaults. SMTP_REQUIRE_TLS defaults to true when
# SMTP_USERNAME is set (credentials only travel over TLS). Values are checked against a strict
# character set; secrets are never printed. Edits to the mounted config need a container restart
# (a reload re-reads the rendered copy).
#
# Compose: entrypoint: ["/bin/sh", "/etc/alertmanager/entrypoint.sh"], command: the usual flags.
set -eu

RUNTIME="${LLM_ALERTMANAGER_RUNTIME_DIR:-/tmp/llm-alertmanager}"
ALERTMANAGER_BIN="${ALERTMANAGER_BIN:-/bin/alertmanager}"
# Must match alertmanager.yml: the directory its *_file settings and runtime templates name, and
# the placeholder webhook URL.
SHIPPED_RUNTIME=/tmp/llm-alertmanager
SHIPPED_WEBHOOK_URL=http://127.0.0.1:5001/llm-alerts

fail() {
    echo "entrypoint: $*" >&2
    exit 64
}

# value NAME: $NAME, else the contents of the file named by $NAME_FILE, else empty.
value() {
    eval "v=\${$1:-}"
    eval "f=\${$1_FILE:-}"
    if [ -z "$v" ] && [ -n "$f" ]; then
        [ -r "$f" ] || fail "$1_FILE names an unreadable file"
        v=$(cat "$f")
    fi
    printf '%s' "$v"
}

# Escape a value for the replacement side of a sed s|...|...| command.
sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# --- find the config among the arguments and point Alertmanager at the rendered copy ---
rendered="$RUNTIME/alertmanager.yml"
config=/etc/alertmanager/alertmanager.yml
found=0
expect=0
for arg do
    shift
    if [ "$expect" = 1 ]; then
        config=$arg
        arg=$rendered
        expect=0
    else
        case "$arg" in
            --config.file=*) config=${arg#--config.file=}; arg="--config.file=$rendered"; found=1 ;;
            --config.file) expect=1; found=1 ;;
        esac
    fi
    set -- "$@" "$arg"
done
[ "$found" = 1 ] || set -- "$@" "--config.file=$rendered"
[ -r "$config" ] || fail "cannot read the Alertmanager config $config"
srcdir=$(cd "$(dirname "$config")" && pwd)

umask 077
mkdir -p "$RUNTIME"
rm -f "$RUNTIME/destinations.tmpl" "$RUNTIME/slack_webhook_url" "$RUNTIME/smtp_auth_password"

# --- email addresses: a template file loaded after templates/llm.tmpl ---
tmpl="$RUNTIME/destinations.tmpl.new"
: > "$tmpl"
for pair in ALERT_EMAIL:llm.email.to SMTP_FROM:llm.email.from \
            ALERT_ESCALATION_EMAIL:llm.email.escalation_to; do
    name=${pair%%:*}
    addr=$(value "$name")
    [ -n "$addr" ] || continue
    case "$addr" in
        *[!A-Za-z0-9@._%+,\<\>\ -]* | *\<*\<* ) fail "$name must be a list of email addresses" ;;
        *@*) ;;
        *) fail "$name must contain an email address" ;;
    esac
    printf '{{ define "%s" }}%s{{ end }}\n' "${pair#*:}" "$addr" >> "$tmpl"
done
mv "$tmpl" "$RUNTIME/destinations.tmpl"

# --- secrets: files read through *_file ---
slack=$(value SLACK_WEBHOOK_URL)
if [ -n "$slack" ]; then
    case "$slack" in
        *[!A-Za-z0-9._~:/?#@\$\&\(\)*+,\;=%-]*) fail "SLACK_WEBHOOK_URL contains unexpected characters" ;;
        https://* | http://*) printf '%s' "$slack" > "$RUNTIME/slack_webhook_url" ;;
        *) fail "SLACK_WEBHOOK_URL must be an http(s) URL" ;;
    esac
fi
password=$(value SMTP_PASSWORD)
[ -z "$password" ] || printf '%s' "$password" > "$RUNTIME/smtp_auth_password"

# --- non-secret settings: a sed script that renders the copy ---
script="$RUNTIME/render.sed"
{
    printf 's|%s|%s|g\n' "$SHIPPED_RUNTIME" "$(sed_escape "$RUNTIME")"
    printf 's|^\\(  - \\)templates/|\\1%s/templates/|\n' "$(sed_escape "$srcdir")"
} > "$script"

smarthost=${SMTP_SMARTHOST:-}
if [ -n "$smarthost" ]; then
    case "$smarthost" in
        *[!A-Za-z0-9._:\[\]-]* | *: | :*) fail "SMTP_SMARTHOST must be host:port" ;;
        *:*) ;;
        *) fail "SMTP_SMARTHOST must be host:port" ;;
    esac
    printf 's|^\\(  smtp_smarthost: \\).*|\\1"%s"|\n' "$(sed_escape "$smarthost")" >> "$script"
fi
username=${SMTP_USERNAME:-}
require_tls=${SMTP_REQUIRE_TLS:-}
if [ -n "$username" ]; then
    case "$username" in
        *[!A-Za-z0-9@._%+-]*) fail "SMTP_USERNAME contains unexpected characters" ;;
    esac
    printf 's|^  # smtp_auth_username: .*|  smtp_auth_username: "%s"|\n' "$(sed_escape "$username")" >> "$script"
    require_tls=${require_tls:-true}
fi
if [ -n "$require_tls" ]; then
    case "$require_tls" in
        true | false) ;;
        *) fail "SMTP_REQUIRE_TLS must be true or false" ;;
    esac
    printf 's|^\\(  smtp_require_tls: \\).*|\\1%s|\n' "$require_tls" >> "$script"
fi
webhook=${ALERT_WEBHOOK_URL:-}
if [ -n "$webhook" ]; then
    case "$webhook" in
        *[!A-Za-z0-9._~:/?#@\$\&\(\)*+,\;=%-]*) fail "ALERT_WEBHOOK_URL contains unexpected characters" ;;
        https://* | http://*) ;;
        *) fail "ALERT_WEBHOOK_URL must be an http(s) URL" ;;
    esac
    pattern=$(printf '%s' "$SHIPPED_WEBHOOK_URL" | sed -e 's/[.]/\\./g')
    printf 's|%s|%s|g\n' "$pattern" "$(sed_escape "$webhook")" >> "$script"
fi

sed -f "$script" "$config" > "$rendered.new"
mv "$rendered.new" "$rendered"

exec "$ALERTMANAGER_BIN" "$@"
