#!/usr/bin/env bash
# The README's promise on a fresh Debian 12 machine, proved end to end (issue 22). Root only; not run by CI
# (about an hour on 2 shared cores, most of it the whole suite). Usage:
#   scripts/fresh_debian_check.sh [DIR]     # DIR: a new Debian 12 root, default /var/tmp/lms-bridge-deb12
# What it does, printing the time of each step:
#   1. debootstrap --variant=minbase bookworm DIR, and a clone of this checkout's HEAD in DIR/root/lms-bridge
#   2. DIR runs in its own network namespace (veth + nftables masquerade for the package registries only), so
#      the machine's own PostgreSQL, Redis and RabbitMQ on 127.0.0.1 are out of reach: the set-up must
#      install and start its own
#   3. the README's first command (scripts/demo.sh) until it prints the HR page's URL; Debian's Chromium in DIR
#      renders the page, the demo login signs in; SIGTERM; nothing of the demo is left running
#   4. the README's second command (scripts/setup.sh --test && .venv/bin/python -m pytest), the whole suite
#   5. scripts/wheel_check.sh: the wheel in a clean venv, init and demo --no-web from an empty folder
#   6. deploy/nginx-lms-bridge.conf (only its certificate paths changed) with a self-signed certificate in front
#      of `lms-bridge serve-web --allow-remote` on the demo's data; a login through https://127.0.0.1/
# Commands in DIR run with `env -i` (PATH, HOME). Where this machine reaches the internet through an
# intercepting TLS proxy, its CA bundle is copied to DIR/etc/ssl/host-ca.crt and passed as PIP_CERT,
# SSL_CERT_FILE and REQUESTS_CA_BUNDLE: the machine's network needs it, lms-bridge does not.
# DIR is left in place (unmounted, its processes stopped, the namespace deleted) for inspection.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fresh_debian_check: run as root (debootstrap, chroot, network namespaces)" >&2; exit 2; }
checkout=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/var/tmp/lms-bridge-deb12}
[ ! -e "$root" ] || { echo "fresh_debian_check: $root exists; give a new folder (a fresh machine each time)" >&2; exit 2; }
ns=lmsb-deb12
logs=$root.logs
mkdir -p "$logs"
timings=()
ca_env=()
forward=$(cat /proc/sys/net/ipv4/ip_forward)
took() { timings+=("$(printf '%-58s %5d s  %s' "$1" "$2" "$3")"); echo "fresh: $1: $3 in $2 s"; }

in_root() {  # run a command in DIR: own network namespace, a clean environment
  ip netns exec "$ns" chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root "${ca_env[@]}" bash -c "$1"
}
root_pids() {  # the processes running inside DIR
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  return 0
}
teardown() {
  local pids
  pids=$(root_pids)
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  sleep 3
  pids=$(root_pids)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  for m in dev/shm dev/pts dev sys proc; do umount "$root/$m" 2>/dev/null || true; done
  nft delete table ip "$ns" 2>/dev/null || true
  ip netns delete "$ns" 2>/dev/null || true
  echo "$forward" > /proc/sys/net/ipv4/ip_forward
}
trap teardown EXIT

# 1. A fresh Debian 12 root with a checkout (the checkout is what a user has; git is not needed inside).
for tool in debootstrap nft; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap nftables
done
started=$SECONDS
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian > "$logs/debootstrap.log" 2>&1
git clone -q "$checkout" "$root/root/lms-bridge"
# What the Debian installer writes and a bare debootstrap lacks: the machine's name resolves (RabbitMQ's node).
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$(hostname)" > "$root/etc/hosts"
cp /etc/resolv.conf "$root/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/host-ca.crt"
  ca_env=(PIP_CERT=/etc/ssl/host-ca.crt SSL_CERT_FILE=/etc/ssl/host-ca.crt REQUESTS_CA_BUNDLE=/etc/ssl/host-ca.crt)
fi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
took "1. debootstrap bookworm (minbase) + checkout" $((SECONDS - started)) "ok"

# 2. Its own network: loopback of its own, the registries through NAT.
uplink=$(ip route show default | awk '{print $5; exit}')
ip netns add "$ns"
ip link add "$ns-h" type veth peer name "$ns-c"
ip link set "$ns-c" netns "$ns"
ip addr add 10.212.0.1/30 dev "$ns-h"
ip link set "$ns-h" up
ip -n "$ns" addr add 10.212.0.2/30 dev "$ns-c"
ip -n "$ns" link set "$ns-c" up
ip -n "$ns" link set lo up
ip -n "$ns" route add default via 10.212.0.1
echo 1 > /proc/sys/net/ipv4/ip_forward
nft add table ip "$ns"
nft add chain ip "$ns" post '{ type nat hook postrouting priority srcnat; }'
nft add rule ip "$ns" post ip saddr 10.212.0.0/30 oifname "$uplink" masquerade
for port in 5432 6379 5672; do
  if ip netns exec "$ns" timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    echo "fresh_debian_check: 127.0.0.1:$port answers inside the namespace; it is not a fresh machine" >&2; exit 1
  fi
done
took "2. own network namespace, NAT to the registries" 0 "ok: nothing answers on 127.0.0.1:5432, 6379, 5672"

# 3. The README's first command, until the HR page's URL; a browser in DIR renders it; SIGTERM; clean-up.
started=$SECONDS
ip netns exec "$ns" chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root "${ca_env[@]}" bash -c 'cd /root/lms-bridge && exec scripts/demo.sh' > "$logs/demo.log" 2>&1 &
demo=$!
until grep -q "^Open http" "$logs/demo.log"; do
  kill -0 "$demo" 2>/dev/null || { tail -30 "$logs/demo.log"; echo "fresh_debian_check: the demo stopped" >&2; exit 1; }
  sleep 2
done
took "3. README command 1 (scripts/demo.sh) until the HR page" $((SECONDS - started)) "$(grep '^Open http' "$logs/demo.log")"
url=$(grep -o '^Open http://[0-9.:]*/' "$logs/demo.log" | cut -d' ' -f2)
password=$(grep -o 'with password [^ ]*' "$logs/demo.log" | awk '{print $3}')
# The browser is installed for this check and purged again, so that the second command installs its own.
in_root 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'
in_root "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir=\$(mktemp -d) --dump-dom ${url}login 2>/dev/null" \
  > "$logs/hr-login.html"
grep -q 'id="login-form"' "$logs/hr-login.html"
cat > "$root/tmp/hr_login.py" <<'EOF'
"""Sign in to the HR page as a browser does (CSRF token, session cookie); print where it lands and its heading."""
import http.cookiejar, re, sys, urllib.parse, urllib.request
url, user, password = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
token = re.search(r'name="csrf_token" value="([^"]+)"', opener.open(url + "login").read().decode()).group(1)
form = {"csrf_token": token, "next": "/", "username": user, "password": password}
page = opener.open(url + "login", data=urllib.parse.urlencode(form).encode())
print(page.status, page.geturl(), re.search(r"<h1[^>]*>(.*?)</h1>", page.read().decode(), re.S).group(1).strip())
EOF
in_root "/root/lms-bridge/.venv/bin/python /tmp/hr_login.py $url demo $password" | tee "$logs/hr-signed-in.txt"
grep -q "Rekap JP" "$logs/hr-signed-in.txt"
in_root 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --autoremove chromium chromium-common >/dev/null;
  rm -rf /root/.config/chromium /root/.cache/chromium /tmp/hr_login.py'
kill -TERM "$demo"  # ip netns exec, chroot, env, bash and demo.sh all exec: $demo is lms-bridge demo itself
wait "$demo" || true
sleep 2
left=$(root_pids)
[ -z "$left" ] || { ps -o pid,args -p $left; echo "fresh_debian_check: the demo left processes" >&2; exit 1; }
[ ! -e "$root/root/lms-bridge/lms-bridge-demo" ] || { echo "fresh_debian_check: the demo left its folder" >&2; exit 1; }
grep -q "demo done" "$logs/demo.log"
echo "fresh: the demo stopped on SIGTERM and left no process and no folder"

# 4. The README's second command: the whole suite.
started=$SECONDS
if in_root 'cd /root/lms-bridge && scripts/setup.sh --test && .venv/bin/python -m pytest' > "$logs/suite.log" 2>&1; then
  result="passed: $(tail -1 "$logs/suite.log")"
else
  result="FAILED: $(tail -1 "$logs/suite.log") (see $logs/suite.log)"
fi
took "4. README command 2 (setup --test && pytest)" $((SECONDS - started)) "$result"

# 5. The installed product, as CI runs it.
started=$SECONDS
if in_root 'cd /root/lms-bridge && scripts/wheel_check.sh' > "$logs/wheel.log" 2>&1; then result=ok; else result="FAILED (see $logs/wheel.log)"; fi
took "5. scripts/wheel_check.sh (wheel, init, demo --no-web)" $((SECONDS - started)) "$result"

# 6. nginx in front of serve-web: the example config as it is, a self-signed certificate at its paths.
started=$SECONDS
cat > "$root/tmp/nginx_check.sh" <<'EOF'
set -euo pipefail
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl curl >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=jp.example.go.id \
  -keyout /etc/ssl/private/jp.example.go.id.key -out /etc/ssl/certs/jp.example.go.id.pem 2>/dev/null
cp /root/lms-bridge/deploy/nginx-lms-bridge.conf /etc/nginx/sites-available/lms-bridge
ln -sf /etc/nginx/sites-available/lms-bridge /etc/nginx/sites-enabled/lms-bridge
rm -f /etc/nginx/sites-enabled/default
nginx -t
nginx
# The demo's data, kept; the page as deploy/lms-bridge-web.service runs it (--allow-remote, nginx trusted).
/root/lms-bridge/.venv/bin/lms-bridge demo --no-web --keep --dir /root/nginx-demo >/root/nginx-demo.log 2>&1
printf '\n[web]\ntrusted_proxies = ["127.0.0.1"]\n' >> /root/nginx-demo/lms-bridge.toml
cd /root/nginx-demo
export LMS_BRIDGE_CONFIG=/root/nginx-demo/lms-bridge.toml LMS_BRIDGE_LRS_PASSWORD=unused
export LMS_BRIDGE_PSEUDONYM_KEY=demo-pseudonym-key-not-for-production LMS_BRIDGE_WEB_SECRET_KEY=$(openssl rand -hex 32)
PW=nginx-check-password /root/lms-bridge/.venv/bin/lms-bridge users add hr1 --password-env PW
/root/lms-bridge/.venv/bin/lms-bridge serve-web --port 8300 --allow-remote > /root/serve-web.log 2>&1 &
web=$!
for _ in $(seq 1 120); do curl -s -o /dev/null http://127.0.0.1:8300/login && break; sleep 1; done
curl -s -o /dev/null -w "http://127.0.0.1/login: %{http_code} -> %{redirect_url}\n" http://127.0.0.1/login
curl -s -o /dev/null -w "http://127.0.0.1:8300/login (not through nginx): %{http_code}\n" http://127.0.0.1:8300/login
jar=$(mktemp)
token=$(curl -sSfk -c "$jar" https://127.0.0.1/login | grep -o 'name="csrf_token" value="[^"]*"' | cut -d'"' -f4)
curl -sSk -b "$jar" -c "$jar" -o /dev/null -w "sign-in through nginx: %{http_code} -> %{redirect_url}\n" \
  --data-urlencode "csrf_token=$token" --data-urlencode next=/ --data-urlencode username=hr1 \
  --data-urlencode password=nginx-check-password https://127.0.0.1/login
curl -sSfk -b "$jar" https://127.0.0.1/compliance | grep -o '<h1>Rekap JP [0-9]*'
grep -q $'\tTRUE\t[0-9]*\tlms_bridge_session\t' "$jar" || { echo "the session cookie is not Secure"; exit 1; }
echo "the session cookie is Secure"
head=$(curl -sSkI https://127.0.0.1/login)
printf '%s\n' "$head" | grep -i -E '^(HTTP|strict-transport)'
printf '%s\n' "$head" | grep -q '^HTTP/2 200'
[ "$(printf '%s\n' "$head" | grep -ci '^strict-transport-security')" = 1 ]
kill "$web"; wait "$web" || true
nginx -s quit
EOF
if in_root 'bash /tmp/nginx_check.sh' > "$logs/nginx.log" 2>&1; then result=ok; else result="FAILED (see $logs/nginx.log)"; fi
cat "$logs/nginx.log"
took "6. nginx (the example config) + HTTPS sign-in through it" $((SECONDS - started)) "$result"

echo
echo "fresh_debian_check: $root (logs in $logs)"
printf '%s\n' "${timings[@]}"
