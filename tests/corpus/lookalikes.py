"""Benign look-alikes of the reverse shells: the admin and developer commands that share a payload's
tools or shape (issue 24). Kept apart from tests/corpus/benign.py so that its seeded draw, which other
tests pin, stays as it is. Sources: nc(1) of netcat-openbsd and nmap-ncat (`-z` port checks, `-l`
test listeners), ssh(1) (`-R`/`-L`/`-D` forwards), socat(1)'s EXAMPLES (proxies, port forwards, a
UNIX socket bridge), Python's http.server docs, the Debian/RHEL init scripts (`bash -c` in
ExecStart), Laravel's artisan and Composer docs, npm(1), and the documented install lines of
rustup, nvm, Docker's get.docker.com, Homebrew, k3s, oh-my-zsh, Deno, Bun, Poetry, pyenv, sdkman, fnm.

`events()` returns ECS process starts in the shape of benign.py's (the same `_event`).
"""

from __future__ import annotations

import itertools
import random
import shlex
from datetime import timedelta
from typing import Any

from corpus.benign import DEV, LOGIN, INIT, ROOT, SH, WWW, APP, T0, Proc, _event

__all__ = ["commands", "events"]

HOSTS = ["db-01.internal", "cache-02.internal", "api.example.com", "10.0.3.12", "172.16.8.40"]
PORTS = ["22", "80", "443", "3306", "5432", "6379", "8080", "9200"]

INSTALLERS = [
    "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh",
    "curl https://sh.rustup.rs -sSf | sh -s -- -y",
    "curl -o- https://raw.githubusercontent.com/nvm-sh/nvm/v0.39.7/install.sh | bash",
    "wget -qO- https://raw.githubusercontent.com/nvm-sh/nvm/v0.39.7/install.sh | bash",
    "curl -fsSL https://get.docker.com | sh",
    "curl -fsSL https://get.docker.com -o get-docker.sh && sh get-docker.sh",
    "/bin/bash -c \"$(curl -fsSL https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh)\"",
    "curl -sfL https://get.k3s.io | sh -",
    "curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC=server sh -s - --disable traefik",
    "sh -c \"$(curl -fsSL https://raw.githubusercontent.com/ohmyzsh/ohmyzsh/master/tools/install.sh)\"",
    "sh -c \"$(wget -O- https://raw.githubusercontent.com/ohmyzsh/ohmyzsh/master/tools/install.sh)\"",
    "curl -fsSL https://deno.land/install.sh | sh",
    "curl -fsSL https://bun.sh/install | bash",
    "curl -sSL https://install.python-poetry.org | python3 -",
    "curl https://pyenv.run | bash",
    "curl -s https://get.sdkman.io | bash",
    "curl -fsSL https://fnm.vercel.app/install | bash",
    "curl -fsSL https://tailscale.com/install.sh | sh",
    "curl -sL https://deb.nodesource.com/setup_20.x | sudo -E bash -",
    "curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash",
    "curl -sS https://getcomposer.org/installer | php",
    "curl -L https://github.com/docker/compose/releases/download/v2.24.5/docker-compose-linux-x86_64 -o /usr/local/bin/docker-compose && chmod +x /usr/local/bin/docker-compose",  # noqa: E501  a verbatim command line
]


def commands() -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """(command line, parent (exe, command line), user) of every look-alike."""
    out: list[tuple[str, tuple[str, str], tuple[str, str]]] = []
    dev = DEV[0]
    for h, p in itertools.product(HOSTS, PORTS):
        out += [(f"nc -z -w 2 {h} {p}", (SH, "/bin/sh /usr/local/bin/wait-for-it.sh"), ROOT),
                (f"nc -zv {h} {p}", LOGIN, dev),
                (f"timeout 1 bash -c 'cat < /dev/null > /dev/tcp/{h}/{p}'", (SH, "/bin/sh /entrypoint.sh"), ROOT),
                (f"ncat -z {h} {p}", LOGIN, dev)]
    for p in PORTS:
        out += [(f"ssh -N -R {p}:localhost:{p} bastion.internal", LOGIN, dev),
                (f"ssh -f -N -L {int(p) + 10000}:db-01.internal:{p} jump.internal", LOGIN, dev),
                (f"ssh -D {int(p) + 20000} -N proxy.internal", LOGIN, dev),
                (f"socat TCP-LISTEN:{int(p) + 10000},fork,reuseaddr TCP:db-01.internal:{p}", INIT, ROOT),
                (f"socat -d -d TCP4-LISTEN:{p},fork UNIX-CONNECT:/run/app/{p}.sock", INIT, ROOT),
                (f"socat - TCP:db-01.internal:{p}", LOGIN, dev),
                (f"python3 -m http.server {int(p) + 8000} --bind 127.0.0.1", LOGIN, dev),
                (f"python3 -m http.server {p} --directory /srv/www", LOGIN, dev),
                (f"nc -l {int(p) + 30000}", LOGIN, dev),
                (f"echo ok | nc -N db-01.internal {p}", LOGIN, dev)]
    for svc in ["nginx", "php8.2-fpm", "redis", "app-worker", "gunicorn", "node-app"]:
        out += [(f"/bin/bash -c 'source /etc/default/{svc}; exec /usr/sbin/{svc}'", INIT, ROOT),
                (f"bash -c 'exec 3>/var/run/{svc}.lock; flock -n 3 && /usr/local/bin/{svc}-reload'", INIT, ROOT),
                (f"sh -c 'test -x /usr/sbin/{svc} || exit 0; /usr/sbin/{svc} -t'", INIT, ROOT)]
    for cmd in ["migrate --force", "queue:work --sleep=3 --tries=3", "schedule:run", "config:cache",
                "route:cache", "view:clear", "storage:link", "horizon"]:
        out.append((f"php artisan {cmd}", (SH, "sh -c 'cd /var/www/app && php artisan schedule:run'"), WWW))
    for cmd in ["install --no-dev --optimize-autoloader", "dump-autoload -o", "update", "require guzzlehttp/guzzle",
                "audit", "validate --strict"]:
        out.append((f"composer {cmd}", LOGIN, APP))
    for cmd in ["ci", "install", "run build", "run test -- --watch=false", "audit --production", "exec -- eslint .",
                "start", "run migrate"]:
        out.append((f"npm {cmd}", LOGIN, APP))
    for line in INSTALLERS:
        out.append((line, LOGIN, dev))
    out += [("echo 'aGVsbG8K' | base64 -d", LOGIN, dev),
            ("base64 -d /tmp/secret.b64 > /etc/app/key.pem", LOGIN, ROOT),
            ("xxd -p /tmp/blob.bin | head", LOGIN, dev),
            ("printf '%s\\n' hello", LOGIN, dev),
            ("python3 -c 'import socket; print(socket.gethostname())'", LOGIN, dev),
            ("python3 -c 'import socket;s=socket.socket();s.settimeout(2);s.connect((\"db-01.internal\",5432));print(\"ok\")'",  # noqa: E501  a verbatim command line
             LOGIN, dev),
            ("perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(PeerAddr=>\"db-01.internal:5432\") ? \"up\" : \"down\"'",  # noqa: E501  a verbatim command line
             LOGIN, dev),
            ("php -r 'echo gethostname();'", LOGIN, dev),
            ("php -r '$f=@fsockopen(\"db-01.internal\",3306,$e,$s,2); echo $f ? \"ok\" : \"down\";'", LOGIN, dev),
            ("ruby -rsocket -e 'puts Socket.gethostname'", LOGIN, dev),
            ("node -e 'require(\"net\").connect(5432, \"db-01.internal\").on(\"connect\", () => process.exit(0))'",
             LOGIN, dev),
            ("node -e 'console.log(require(\"child_process\").execSync(\"git rev-parse HEAD\").toString())'",
             LOGIN, dev),
            ("awk -F: '{print $1}' /etc/passwd", LOGIN, dev),
            ("gawk 'BEGIN { print strftime() }'", LOGIN, dev),
            ("socat -u FILE:/var/log/syslog,seek-end=0,ignoreeof STDOUT", LOGIN, ROOT),
            ("socat EXEC:'mysqldump app' TCP:backup.internal:9000", (SH, "/bin/sh /etc/cron.daily/db-ship"), ROOT),
            ("ncat -l 8443 --ssl --keep-open -c 'cat /srv/status.txt'", INIT, ROOT),
            ("rcat listen 9999", LOGIN, dev),
            ("go run ./cmd/server", LOGIN, dev),
            ("jrunscript -e 'print(java.lang.System.getProperty(\"java.version\"))'", LOGIN, dev),
            ("pwsh -c 'Test-Connection -TargetName db-01.internal -TcpPort 5432'", LOGIN, dev)]
    return out


def events(seed: int = 24) -> list[dict[str, Any]]:
    """Every look-alike as an ECS process start, a few seconds apart."""
    rnd = random.Random(seed)
    out, ts = [], T0 - timedelta(days=1)
    for i, (cmd, parent, user) in enumerate(commands()):
        first = shlex.split(cmd)[0] if cmd[0] not in "/" else cmd.split()[0]
        exe = first if first.startswith("/") else f"/usr/bin/{first}"
        ts += timedelta(seconds=rnd.randint(1, 30))
        out.append(_event(i, ts, "web-01", Proc(cmd, exe, parent, user, "/root" if user == ROOT else "/srv"), rnd))
    return out
