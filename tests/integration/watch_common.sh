# Shared by the srvocsp watch shell tests (sourced): a test PKI, an
# `openssl ocsp` responder, nginx and HAProxy on 127.0.0.1, always stopped.
# Needs CLI, MKPKI, LOBIND set and a NAME for the temporary folder.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/peers.sh"
export PATH=$PATH:/usr/sbin

need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
    done
}

DIR=$(mktemp -d "${TMPDIR:-/tmp}/srvocsp-$NAME-XXXXXX")
chmod 755 "$DIR"
RESPONDER_PID= PIDS=() NGINX_PREFIXES=()
cleanup() {
    stop_pid "$RESPONDER_PID"
    for p in "${PIDS[@]}"; do
        kill -CONT "$p" 2>/dev/null # a paused responder
        stop_pid "$p"
    done
    for ng in "${NGINX_PREFIXES[@]}"; do
        [ -f "$ng/nginx.pid" ] && kill "$(cat "$ng/nginx.pid")" 2>/dev/null
    done
    [ -n "${SRVOCSP_KEEP_TMP:-}" ] && { echo "kept $DIR"; return; }
    rm -rf "$DIR"
}
trap cleanup EXIT

. "$(dirname "${BASH_SOURCE[0]}")/../support/checks.sh"
wait_for() { # SECONDS COMMAND...: until the command succeeds
    local n=$(( $1 * 20 )); shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}

P=$DIR/pki
mkdir -p "$P"
RPORT=$("$MKPKI" --free-port)
"$MKPKI" "$P" "http://127.0.0.1:$RPORT/" --responses || exit 1

# responder SIGNER MINUTES: (re)starts the responder on RPORT.
responder() {
    stop_pid "$RESPONDER_PID"
    start_responder "$P" "$RPORT" "$1" "$2" || exit 1
}
# set_status SERIAL V|R|-: what the responder says after its restart (- : unknown)
set_status() {
    awk -F'\t' -v OFS='\t' -v s="$1" -v st="$2" \
        '$4 == s { if (st == "-") next; $1 = st; $3 = (st == "R" ? "251231000000Z,keyCompromise" : "") } { print }' \
        "$P/index.txt" >"$P/index.tmp" && mv "$P/index.tmp" "$P/index.txt"
}
# offline_response CERT MINUTES OUT: a response signed now by the CA, valid MINUTES.
offline_response() {
    openssl ocsp -issuer "$P/ca.pem" -cert "$1" -no_nonce -reqout "$DIR/req.der" >/dev/null 2>&1 &&
    openssl ocsp -index "$P/index.txt" -rsigner "$P/ca.pem" -rkey "$P/ca.key" -CA "$P/ca.pem" \
        -reqin "$DIR/req.der" -respout "$3" -nmin "$2" >/dev/null 2>&1
}

staple() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$P/root.pem" 2>&1; }
has_status() { staple "$1" | grep -q "Cert Status: $2"; }
no_staple() { staple "$1" | grep -q "OCSP response: no response sent"; }
json_field() { # FILE FIELD: the first value of "FIELD" in a status file
    grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2- | tr -d '"'
}
metrics() { curl -s "http://127.0.0.1:$1/metrics"; }

# nginx_conf PREFIX PORT CERTDIR STAPLING: a server block for CERTDIR/site.pem;
# STAPLING is "file" (ssl_stapling_file) or "snippet" (include the
# snippet srvocsp watch --nginx-snippets maintains).
nginx_conf() {
    local ng=$1 port=$2 certs=$3 how=$4 stap
    mkdir -p "$ng/logs" "$ng/tmp"
    if [ "$how" = file ]; then
        stap="ssl_stapling on; ssl_stapling_file $certs/site.pem.ocsp;"
    else
        stap="include $certs/site.pem.stapling.conf;"
    fi
    cat >"$ng/nginx.conf" <<EOF
user root root;
worker_processes 1;
error_log $ng/logs/error.log;
pid $ng/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $ng/tmp; proxy_temp_path $ng/tmp; fastcgi_temp_path $ng/tmp;
    uwsgi_temp_path $ng/tmp; scgi_temp_path $ng/tmp;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $certs/site.pem;
        ssl_certificate_key $certs/site.key;
        $stap
        location / { return 200 "ok\n"; }
    }
}
EOF
    NGINX_PREFIXES+=("$ng")
}
nginx_start() { nginx -p "$1" -c "$1/nginx.conf" -g "daemon on;" 2>>"$1/logs/start.log"; }
nginx_reload_cmd() { echo "nginx -p $1 -c $1/nginx.conf -s reload"; }

# haproxy_conf FILE PORT SOCKET CERT
haproxy_conf() {
    cat >"$1" <<EOF
global
    stats socket $3 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:$2 ssl crt $4
    http-request return status 200 content-type text/plain string ok
EOF
}
