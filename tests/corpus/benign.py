"""A benign corpus: ECS process starts of ordinary admin and web-application activity.

What the public rule collections must stay quiet on (docs/noise.md). Each category below builds one
process start: the command line, the executable, the parent that really starts it (cron's
`/bin/sh -c`, dpkg running a maintainer script, php-fpm's `sh -c` for exec(), a CI runner's step
script) and the user it runs as (euid 33 www-data for web-server children, 0 for cron and dpkg).
Command lines are modelled on real ones; each category names its sources:

- Debian on this machine: /etc/crontab, /etc/cron.daily/{dpkg,man-db,apt-compat},
  /etc/cron.d/e2scrub_all, /var/lib/dpkg/info/*.postinst (systemctl daemon-reload,
  update-alternatives, ldconfig, dpkg-trigger), apt's own dpkg invocation (`--status-fd`);
  php8.2-common's /etc/cron.d/php (sessionclean), sysstat's /etc/cron.d/sysstat (debian-sa1),
  the logrotate.d files of nginx, apache2, rsyslog and php-fpm (their postrotate lines).
- man pages: apt-get(8), dpkg(1), dnf(8), rpm(8), pip(1), npm-ci(1), rsync(1), tar(1), logrotate(8),
  run-parts(8), systemd.service(5), gcc(1), make(1), convert(1), ffmpeg(1), wkhtmltopdf(1), sendmail(8).
- Tool documentation: PHP mail() (runs `sh -c "/usr/sbin/sendmail -t -i"`), PHP exec()/shell_exec()
  (through `/bin/sh -c`), Laravel's scheduler cron line, Nextcloud's cron.php, WP-CLI, Django
  `manage.py`, gunicorn/uwsgi workers, pm2, GitHub Actions runner (`bash --noprofile --norc -e -o
  pipefail` step scripts, actions/checkout's git commands), gitlab-runner's shell-detection script,
  the official Docker images' entrypoints (nginx, postgres, redis, php, mysql), Kubernetes components,
  NRPE/Nagios plugins, Zabbix agent user parameters, Telegraf, node_exporter, certbot, borg, restic, wait-for-it style
  `nc -z` port checks (nc(1) of netcat-openbsd and nmap-ncat).

Deterministic for a seed: `events(seed, count)`; `python tests/corpus/benign.py OUT [--count N]
[--seed S]` writes NDJSON. Every command line is distinct.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

__all__ = ["Proc", "CATEGORIES", "events", "main"]

SEED = 20261204
COUNT = 4000
T0 = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)


class Proc(NamedTuple):
    """One benign process start, before it becomes an ECS event."""
    command_line: str
    executable: str
    parent: tuple[str, str]  # (executable, command line)
    user: tuple[str, str]  # (name, id)
    cwd: str


ROOT = ("root", "0")
WWW = ("www-data", "33")
APACHE = ("apache", "48")  # RHEL's httpd user
APP = ("app", "1001")
NODE = ("node", "1000")
DEV = [("alice", "1000"), ("bob", "1002"), ("deploy", "1003")]
RUNNER = ("runner", "1001")  # GitHub Actions hosted runner
GITLAB = ("gitlab-runner", "999")
MONITOR = [("nagios", "111"), ("zabbix", "112"), ("telegraf", "998"), ("prometheus", "113")]
SH = "/bin/sh"
LOGIN = ("/bin/bash", "-bash")  # an interactive login shell (over ssh)
INIT = ("/usr/lib/systemd/systemd", "/sbin/init")
UNATTENDED = ("/usr/bin/python3", "/usr/bin/python3 /usr/bin/unattended-upgrade")


def _script(path: str, *args: str) -> tuple[str, str]:
    """A parent that is a shell running a script (a maintainer script, a cron.daily file)."""
    return (SH, " ".join([SH, path, *args]))

PKGS = ["nginx", "apache2", "php8.2-fpm", "php8.2-gd", "php8.2-mysql", "postgresql-15", "redis-server",
        "openssl", "libssl3", "curl", "git", "vim", "htop", "rsync", "ca-certificates", "tzdata", "python3-pip",
        "python3-venv", "nodejs", "docker-ce", "containerd.io", "certbot", "fail2ban", "logrotate", "cron",
        "sudo", "openssh-server", "unattended-upgrades", "imagemagick", "ffmpeg", "wkhtmltopdf", "libxml2",
        "zlib1g", "systemd", "bash", "coreutils", "libc6", "linux-image-amd64", "grub-pc", "rsyslog",
        "mariadb-server", "prometheus-node-exporter", "zabbix-agent", "sysstat", "jq", "unzip", "gnupg"]
RPMS = ["nginx", "httpd", "php-fpm", "postgresql-server", "redis", "openssl", "openssl-libs", "curl", "git",
        "kernel", "glibc", "systemd", "sudo", "openssh-server", "python3-pip", "nodejs", "podman", "chrony",
        "firewalld", "policycoreutils", "dnf-automatic", "tar", "bzip2", "ImageMagick", "zabbix-agent2"]
PYPKGS = ["django", "flask", "requests", "gunicorn", "uvicorn", "celery", "psycopg2-binary", "sqlalchemy",
          "pillow", "numpy", "pandas", "boto3", "pytest", "black", "ruff", "mypy", "pydantic", "redis", "lxml",
          "cryptography", "pyyaml", "jinja2", "click", "httpx", "fastapi", "wheel", "setuptools", "pip"]
NPMPKGS = ["express", "react", "next", "typescript", "webpack", "eslint", "prettier", "jest", "lodash", "axios",
           "sharp", "pm2", "nodemon", "vite", "esbuild", "dotenv", "pg", "mongoose", "socket.io", "node-gyp"]
SERVICES = ["nginx", "apache2", "php8.2-fpm", "postgresql", "redis-server", "ssh", "cron", "rsyslog", "docker",
            "containerd", "fail2ban", "prometheus-node-exporter", "zabbix-agent", "chrony", "gunicorn", "app-worker"]
APPS = ["shop", "blog", "crm", "wiki", "intranet", "billing", "api", "portal", "helpdesk", "cms"]
DBS = ["shop", "blog", "crm", "wiki", "billing", "accounts", "analytics", "sessions"]
HOSTS = [f"{role}-{i:02d}" for role in ("web", "app", "db", "ci", "backup", "mon") for i in range(1, 7)]
SRC = ["main", "utils", "parser", "server", "client", "config", "db", "cache", "auth", "log", "http", "queue"]
MEDIA = ["jpg", "png", "gif", "webp"]
VIDEO = ["mp4", "mov", "webm", "mkv"]


def _ver(r: random.Random) -> str:
    return f"{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 12)}-{r.randint(1, 4)}"


def _hex(r: random.Random, n: int = 8) -> str:
    return f"{r.getrandbits(4 * n):0{n}x}"


def _upload(r: random.Random, app: str, exts: list[str]) -> str:
    return f"/var/www/{app}/storage/uploads/{r.randint(2019, 2026)}/{r.randint(1, 12):02d}/{_hex(r)}.{r.choice(exts)}"


def _cron(line: str, user: tuple[str, str] = ROOT) -> Proc:
    """cron runs each crontab line as `/bin/sh -c LINE` (cron(8)); the shell is the process start."""
    return Proc(shlex.join([SH, "-c", line]), SH, ("/usr/sbin/cron", "/usr/sbin/cron -f -P"), user,
                "/root" if user == ROOT else "/var/www")


def apt_dpkg(r: random.Random) -> Proc:
    """apt-get(8), dpkg(1), apt's own dpkg call, maintainer scripts (/var/lib/dpkg/info/*.postinst)."""
    pkg, ver, svc = r.choice(PKGS), _ver(r), r.choice(SERVICES)
    deb = f"/var/cache/apt/archives/{pkg}_{ver}_amd64.deb"
    apt = ("/usr/bin/apt-get", f"apt-get install -y {pkg}")
    dpkg = ("/usr/bin/dpkg", "/usr/bin/dpkg --status-fd 37 --configure --pending")
    post = _script(f"/var/lib/dpkg/info/{pkg}.postinst", "configure", ver)
    choices: list[tuple[str, str, tuple[str, str]]] = [
        *[(line, "/usr/bin/" + line.split()[0], LOGIN) for line in (  # an admin at a root shell
            f"apt-get install -y --no-install-recommends {pkg}", f"apt-get -y --only-upgrade install {pkg}={ver}",
            f"apt-get -qq -y remove --purge {pkg}", f"apt-cache policy {pkg}", f"apt show {pkg}")],
        (f"/usr/bin/dpkg --status-fd 37 --no-triggers --unpack --auto-deconfigure {deb}", "/usr/bin/dpkg", apt),
        (f"/usr/bin/dpkg --status-fd 37 --configure {pkg}:amd64", "/usr/bin/dpkg", apt),
        (f"/bin/sh /var/lib/dpkg/info/{pkg}.postinst configure {ver}", SH, dpkg),
        (f"/bin/sh /var/lib/dpkg/info/{pkg}.prerm upgrade {ver}", SH, dpkg),
        (f"/bin/sh /var/lib/dpkg/info/{pkg}.preinst upgrade {ver}", SH, dpkg),
        (f"deb-systemd-helper unmask {svc}.service", "/usr/bin/deb-systemd-helper", post),
        (f"deb-systemd-invoke restart {svc}.service", "/usr/bin/deb-systemd-invoke", post),
        (f"dpkg-query -W -f=${{Version}} {pkg}", "/usr/bin/dpkg-query", UNATTENDED),
        (f"dpkg-trigger --no-await {pkg}-trigger", "/usr/bin/dpkg-trigger", post),
        (f"update-alternatives --quiet --install /usr/bin/{pkg} {pkg} /usr/bin/{pkg}.{r.randint(1, 9)} "
         f"{r.randint(10, 99)}",
         "/usr/bin/update-alternatives", post),
        (f"dpkg -l {pkg}", "/usr/bin/dpkg", LOGIN),
        (f"dpkg -L {pkg}", "/usr/bin/dpkg", LOGIN),
    ]
    cmd, exe, parent = r.choice(choices)
    return Proc(cmd, exe, parent, ROOT, "/root" if parent[0] == "/bin/bash" else "/")


def apt_fixed(r: random.Random) -> Proc:
    """The fixed lines of apt/dpkg housekeeping: apt.systemd.daily, cron.daily/dpkg, postinst helpers."""
    cmd, exe, parent = r.choice([
        ("/usr/lib/apt/apt.systemd.daily update", SH, INIT),
        ("/usr/lib/apt/apt.systemd.daily install", SH, INIT),
        ("apt-config shell RandomSleep APT::Periodic::RandomSleep", "/usr/bin/apt-config",
         _script("/usr/lib/apt/apt.systemd.daily", "update")),
        ("/usr/bin/unattended-upgrade", "/usr/bin/python3", _script("/usr/lib/apt/apt.systemd.daily", "install")),
        ("/usr/libexec/dpkg/dpkg-db-backup", SH, INIT),
        ("systemctl --system daemon-reload", "/usr/bin/systemctl",
         _script("/var/lib/dpkg/info/systemd.postinst", "configure")),
        ("ldconfig", "/sbin/ldconfig", ("/usr/bin/dpkg", "/usr/bin/dpkg --status-fd 37 --configure --pending")),
        ("update-ca-certificates --fresh", "/usr/sbin/update-ca-certificates",
         _script("/var/lib/dpkg/info/ca-certificates.postinst", "configure")),
        ("update-initramfs -u -k all", "/usr/sbin/update-initramfs",
         _script("/var/lib/dpkg/info/initramfs-tools.postinst", "configure")),
        ("/usr/bin/mandb --no-purge --quiet", "/usr/bin/mandb", INIT),
        ("apt-get update", "/usr/bin/apt-get", LOGIN),
        ("apt-get -y dist-upgrade", "/usr/bin/apt-get", LOGIN),
        ("apt-get autoremove -y", "/usr/bin/apt-get", LOGIN),
        ("/usr/lib/apt/methods/http", "/usr/lib/apt/methods/http", ("/usr/bin/apt-get", "apt-get update")),
        ("/usr/lib/apt/methods/gpgv", "/usr/lib/apt/methods/gpgv", ("/usr/bin/apt-get", "apt-get update")),
    ])
    return Proc(cmd, exe, parent, ROOT, "/")


def rpm_dnf(r: random.Random) -> Proc:
    """dnf(8), yum(8), rpm(8), dnf-automatic's timer."""
    pkg = r.choice(RPMS)
    cmd, exe = r.choice([
        (f"dnf -y install {pkg}", "/usr/bin/dnf-3"), (f"dnf -y upgrade {pkg}", "/usr/bin/dnf-3"),
        (f"yum -y update {pkg}", "/usr/bin/yum"), (f"yum info {pkg}", "/usr/bin/yum"),
        (f"rpm -q --qf %{{VERSION}}-%{{RELEASE}} {pkg}", "/usr/bin/rpm"), (f"rpm -V {pkg}", "/usr/bin/rpm"),
        (f"dnf repoquery --requires {pkg}", "/usr/bin/dnf-3"), (f"dnf -y remove {pkg}", "/usr/bin/dnf-3"),
        (f"rpm -qi {pkg}", "/usr/bin/rpm"), (f"dnf history list {pkg}", "/usr/bin/dnf-3"),
    ])
    return Proc(cmd, exe, LOGIN, ROOT, "/root")


def rpm_fixed(r: random.Random) -> Proc:
    cmd, exe = r.choice([("dnf makecache --timer", "/usr/bin/dnf-3"),
                         ("/usr/bin/dnf-automatic /etc/dnf/automatic.conf --timer", "/usr/bin/python3"),
                         ("rpm -qa", "/usr/bin/rpm"), ("dnf check-update -q", "/usr/bin/dnf-3")])
    return Proc(cmd, exe, ("/usr/lib/systemd/systemd", "/usr/lib/systemd/systemd --switched-root --system"), ROOT, "/")


def pip(r: random.Random) -> Proc:
    """pip(1) and venv, run by developers, Dockerfiles and deploy scripts."""
    pkg, app = r.choice(PYPKGS), r.choice(APPS)
    venv = f"/opt/{app}/venv"
    cmd, exe = r.choice([
        (f"{venv}/bin/pip install --no-cache-dir {pkg}=={r.randint(0, 5)}.{r.randint(0, 30)}.{r.randint(0, 9)}",
         f"{venv}/bin/python3"),
        (f"{venv}/bin/pip install -r /opt/{app}/requirements.txt", f"{venv}/bin/python3"),
        (f"python3 -m pip install --upgrade {pkg}", "/usr/bin/python3.11"),
        (f"pip3 install --user {pkg}", "/usr/bin/python3.11"),
        (f"python3 -m venv {venv}", "/usr/bin/python3.11"),
        (f"{venv}/bin/pip freeze --local", f"{venv}/bin/python3"),
        (f"{venv}/bin/pip download -d /tmp/wheels {pkg}", f"{venv}/bin/python3"),
        (f"{venv}/bin/pip wheel --no-deps -w /tmp/wheels /opt/{app}", f"{venv}/bin/python3"),
        (f"{venv}/bin/python -m pip check", f"{venv}/bin/python3"),
    ])
    user = r.choice([ROOT, APP, *DEV])
    return Proc(cmd, exe, LOGIN, user, f"/opt/{app}")


def npm(r: random.Random) -> Proc:
    """npm-ci(1), npm-run-script(1) (runs scripts through `sh -c`), yarn, npx, node-gyp."""
    pkg, app = r.choice(NPMPKGS), r.choice(APPS)
    cwd = f"/srv/{app}"
    npm_parent = ("/usr/bin/node", "npm run build")
    cmd, exe, parent = r.choice([
        *[(line, "/usr/bin/node", LOGIN) for line in (  # npm, npx and yarn are node scripts
            "npm ci --omit=dev", f"npm install --save {pkg}@^{r.randint(1, 20)}.{r.randint(0, 9)}.0",
            f"npm ls {pkg}", f"npx {pkg} --version", f"yarn add {pkg}")],
        (f"sh -c 'webpack --mode production --config webpack.{app}.js'", SH, npm_parent),
        (f"sh -c 'tsc -p tsconfig.{app}.json'", SH, npm_parent),
        (f"sh -c 'node scripts/postinstall-{app}.js'", SH, ("/usr/bin/node", "npm install")),
        (f"sh -c 'node-gyp rebuild --directory=node_modules/{pkg}'", SH, ("/usr/bin/node", "npm install")),
        (f"sh -c 'eslint src/{r.choice(SRC)}.ts'", SH, ("/usr/bin/node", "npm run lint")),
        (f"sh -c 'jest --ci --coverage src/{r.choice(SRC)}'", SH, ("/usr/bin/node", "npm test")),
        (f"node {cwd}/node_modules/.bin/next build", "/usr/bin/node", (SH, "sh -c 'next build'")),
    ])
    return Proc(cmd, exe, parent, r.choice([NODE, *DEV]), cwd)


def cron(r: random.Random) -> Proc:
    """Crontab lines: Debian /etc/crontab and cron.d files, Laravel, Nextcloud, WP-CLI, certbot, backups."""
    app, db = r.choice(APPS), r.choice(DBS)
    minute = r.randint(0, 59)
    lines: list[tuple[str, tuple[str, str]]] = [
        ("cd / && run-parts --report /etc/cron.hourly", ROOT),
        ("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }", ROOT),
        ("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }", ROOT),
        ("[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
         ROOT),
        ("command -v debian-sa1 > /dev/null && debian-sa1 1 1", ("sysstat", "0")),
        ("test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r", ROOT),
        (f"cd /var/www/{app} && php artisan schedule:run >> /dev/null 2>&1", WWW),
        (f"php -f /var/www/{app}/cron.php", WWW),
        (f"wp cron event run --due-now --path=/var/www/{app} --quiet", WWW),
        (f"/usr/bin/php /var/www/{app}/bin/console messenger:consume async --time-limit={minute * 60 + 60}", WWW),
        (f"/usr/local/bin/backup-{db}.sh > /var/log/backup-{db}.log 2>&1", ROOT),
        (f"/usr/bin/certbot -q renew --deploy-hook 'systemctl reload nginx' # {minute}", ROOT),
        (f"find /var/www/{app}/storage/framework/sessions -type f -mmin +{minute + 60} -delete", WWW),
        (f"/opt/{app}/venv/bin/python /opt/{app}/manage.py clearsessions", APP),
        (f"/opt/{app}/venv/bin/python /opt/{app}/manage.py send_queued_mail --limit {minute + 10}", APP),
        (f"flock -n /tmp/{app}-sync.lock /usr/local/bin/{app}-sync", ROOT),
        (f"pg_dump -Fc -f /var/backups/postgres/{db}-$(date +\\%F).dump {db}", ("postgres", "105")),
        (f"/usr/bin/mysqldump --single-transaction --routines {db} | gzip > /var/backups/mysql/{db}.sql.gz", ROOT),
        (f"curl -fsS -m 10 --retry 5 -o /dev/null https://hc-ping.com/{_hex(r, 8)}-{_hex(r, 4)}", ROOT),
        (f"/usr/sbin/ntpdate -s pool.ntp.org # {minute}", ROOT),
    ]
    line, user = r.choice(lines)
    return _cron(line, user)


def cron_children(r: random.Random) -> Proc:
    """What the cron lines run: run-parts(8) and the cron.daily scripts shipped by Debian packages."""
    cmd, exe, parent = r.choice([
        ("run-parts --report /etc/cron.daily", "/bin/run-parts", (SH, "/bin/sh -c test -x /usr/sbin/anacron")),
        ("/bin/sh /etc/cron.daily/apt-compat", SH, ("/bin/run-parts", "run-parts --report /etc/cron.daily")),
        ("/bin/sh /etc/cron.daily/dpkg", SH, ("/bin/run-parts", "run-parts --report /etc/cron.daily")),
        ("/bin/sh /etc/cron.daily/man-db", SH, ("/bin/run-parts", "run-parts --report /etc/cron.daily")),
        ("/bin/sh /etc/cron.daily/logrotate", SH, ("/bin/run-parts", "run-parts --report /etc/cron.daily")),
        ("/usr/sbin/logrotate /etc/logrotate.conf", "/usr/sbin/logrotate", _script("/etc/cron.daily/logrotate")),
        ("/usr/lib/php/sessionclean", SH, (SH, "/bin/sh -c /usr/lib/php/sessionclean")),
        ("/usr/lib/sysstat/debian-sa1 1 1", SH, (SH, "/bin/sh -c debian-sa1 1 1")),
        ("/usr/lib/sysstat/sadc -F -L -S DISK 1 1 /var/log/sysstat", "/usr/lib/sysstat/sadc",
         _script("/usr/lib/sysstat/debian-sa1", "1", "1")),
        ("start-stop-daemon --start --pidfile /dev/null --startas /usr/bin/mandb --oknodo --chuid man -- "
         "--no-purge --quiet",
         "/sbin/start-stop-daemon", _script("/etc/cron.daily/man-db")),
        ("find /var/cache/man -type f -name '*.gz' -atime +6 -print0", "/usr/bin/find",
         (SH, "/bin/sh -c find /var/cache/man")),
        ("xargs -r0 rm -f", "/usr/bin/xargs", (SH, "/bin/sh -c find /var/cache/man")),
        ("/usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron", SH, (SH, "/bin/sh -c e2scrub_all_cron")),
        ("/sbin/e2scrub_all -A -r", SH, (SH, "/bin/sh -c e2scrub_all")),
        ("eval $(apt-config shell RandomSleep APT::Periodic::RandomSleep)", SH, _script("/etc/cron.daily/apt-compat")),
    ])
    return Proc(cmd, exe, parent, ROOT, "/")


def logrotate(r: random.Random) -> Proc:
    """logrotate(8) and the postrotate scripts of nginx, apache2, rsyslog and php-fpm's logrotate.d files."""
    log = r.choice(["syslog", "auth.log", "kern.log", "nginx/access.log", "nginx/error.log", "apache2/access.log",
                    "apache2/error.log", "php8.2-fpm.log", "mysql/error.log", "postgresql/postgresql-15-main.log"])
    app = r.choice(APPS)
    post = ("/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf")
    cmd, exe = r.choice([
        (f"gzip /var/log/{log}.1", "/bin/gzip"),
        (f"/bin/gzip -9 /var/log/{app}/{app}.log.{r.randint(1, 14)}", "/bin/gzip"),
        ("/bin/sh -c 'invoke-rc.d rsyslog rotate > /dev/null'", SH),
        ("/usr/lib/rsyslog/rsyslog-rotate", SH),
        ("/bin/sh -c 'if [ -f /var/run/nginx.pid ]; then kill -USR1 `cat /var/run/nginx.pid`; fi'", SH),
        ("/bin/sh -c 'if invoke-rc.d apache2 status > /dev/null 2>&1; then invoke-rc.d apache2 reload > "
         "/dev/null 2>&1; fi'", SH),
        ("/bin/sh -c 'if [ -x /usr/lib/php/php8.2-fpm-reopenlogs ]; then /usr/lib/php/php8.2-fpm-reopenlogs; fi'", SH),
        (f"/bin/sh -c 'systemctl kill -s USR1 {app}.service'", SH),
        ("systemctl kill -s HUP rsyslog.service", "/usr/bin/systemctl"),
        (f"/usr/sbin/logrotate /etc/logrotate.d/{app}", "/usr/sbin/logrotate"),
    ])
    return Proc(cmd, exe, post, ROOT, "/")


def backup(r: random.Random) -> Proc:
    """rsync(1), tar(1), borg, restic, the database dumps their docs show."""
    d, db, host = r.choice(["etc", "srv", "var/www", "home", "opt",
                            "var/lib/docker/volumes"]), r.choice(DBS), r.choice(HOSTS)
    stamp = f"{r.randint(2025, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
    tag = d.replace("/", "_")
    script = ("/bin/bash", f"/bin/bash /usr/local/bin/backup-{tag}.sh")
    cmd, exe = r.choice([
        (f"rsync -aHAX --delete --numeric-ids /{d}/ backup@{host}.internal:/backups/{host}/{tag}/", "/usr/bin/rsync"),
        (f"rsync -az -e 'ssh -i /root/.ssh/backup_ed25519 -o BatchMode=yes' /{d}/ "
         f"backup@{host}.internal:/srv/backup/{tag}/", "/usr/bin/rsync"),
        (f"ssh -i /root/.ssh/backup_ed25519 -o BatchMode=yes -l backup {host}.internal rsync --server "
         f"-logDtprze.iLsfxCIvu --delete . /backups/{tag}/",
         "/usr/bin/ssh"),
        (f"tar -czf /var/backups/{tag}-{stamp}.tar.gz -C / {d}", "/bin/tar"),
        (f"tar --listed-incremental=/var/backups/{tag}.snar -czf /var/backups/{tag}-{stamp}-incr.tar.gz /{d}",
         "/bin/tar"),
        (f"tar -tzf /var/backups/{tag}-{stamp}.tar.gz", "/bin/tar"),
        (f"borg create --stats --compression lz4 ssh://borg@{host}.internal/./repo::{tag}-{stamp} /{d}",
         "/usr/bin/borg"),
        (f"borg prune --keep-daily 7 --keep-weekly 4 ssh://borg@{host}.internal/./repo --glob-archives '{tag}-*'",
         "/usr/bin/borg"),
        (f"restic -r sftp:backup@{host}.internal:/srv/restic backup /{d} --exclude-caches --tag {stamp}",
         "/usr/bin/restic"),
        (f"pg_dump -Fc -f /var/backups/postgres/{db}-{stamp}.dump {db}", "/usr/lib/postgresql/15/bin/pg_dump"),
        (f"mysqldump --single-transaction --quick --routines --result-file=/var/backups/mysql/{db}-{stamp}.sql {db}",
         "/usr/bin/mysqldump"),
        (f"find /var/backups -name '{tag}-*.tar.gz' -mtime +{r.randint(7, 60)} -delete", "/usr/bin/find"),
        (f"sha256sum /var/backups/{tag}-{stamp}.tar.gz", "/usr/bin/sha256sum"),
        (f"gpg --batch --yes --encrypt --recipient backup@{host}.internal /var/backups/{tag}-{stamp}.tar.gz",
         "/usr/bin/gpg"),
    ])
    return Proc(cmd, exe, script, ROOT, "/var/backups")


def systemd_unit(r: random.Random) -> Proc:
    """ExecStart / ExecStartPre / ExecReload lines of the Debian and upstream unit files (systemd.service(5))."""
    app = r.choice(APPS)
    port = r.randint(8000, 8099)
    cmd, exe, user = r.choice([
        ("/usr/sbin/nginx -g 'daemon on; master_process on;'", "/usr/sbin/nginx", ROOT),
        ("/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'", "/usr/sbin/nginx", ROOT),
        ("/usr/sbin/apachectl start", "/usr/sbin/apachectl", ROOT),
        ("/usr/sbin/apachectl graceful", "/usr/sbin/apachectl", ROOT),
        ("/usr/sbin/php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/php-fpm.conf", "/usr/sbin/php-fpm8.2", ROOT),
        ("/usr/lib/php/php-fpm-socket-helper install /run/php/php-fpm.sock /etc/php/8.2/fpm/pool.d/www.conf 82", SH,
         ROOT),
        ("/usr/sbin/sshd -D", "/usr/sbin/sshd", ROOT), ("/usr/sbin/cron -f -P", "/usr/sbin/cron", ROOT),
        ("/usr/sbin/rsyslogd -n -iNONE", "/usr/sbin/rsyslogd", ROOT),
        ("/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", "/usr/bin/dockerd", ROOT),
        ("/usr/bin/containerd", "/usr/bin/containerd", ROOT),
        ("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c "
         "config_file=/etc/postgresql/15/main/postgresql.conf",
         "/usr/lib/postgresql/15/bin/postgres", ("postgres", "105")),
        ("/usr/bin/redis-server 127.0.0.1:6379", "/usr/bin/redis-server", ("redis", "106")),
        ("/usr/sbin/chronyd -F 1", "/usr/sbin/chronyd", ("_chrony", "107")),
        ("/lib/systemd/systemd-timesyncd", "/lib/systemd/systemd-timesyncd", ("systemd-timesync", "997")),
        ("/usr/bin/python3 /usr/bin/fail2ban-server -xf start", "/usr/bin/python3.11", ROOT),
        (f"/opt/{app}/venv/bin/gunicorn --workers 4 --bind unix:/run/{app}/gunicorn.sock {app}.wsgi:application",
         f"/opt/{app}/venv/bin/python3", APP),
        (f"/usr/bin/uwsgi --ini /etc/uwsgi/apps-enabled/{app}.ini", "/usr/bin/uwsgi", WWW),
        (f"/opt/{app}/venv/bin/celery -A {app} worker --loglevel=INFO --concurrency=4", f"/opt/{app}/venv/bin/python3",
         APP),
        (f"/usr/bin/node /srv/{app}/dist/server.js --port {port}", "/usr/bin/node", NODE),
        (f"/usr/bin/java -Xms512m -Xmx2g -jar /opt/{app}/{app}.jar --server.port={port}",
         "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", APP),
        ("/usr/bin/certbot -q renew", "/usr/bin/python3.11", ROOT),
        ("/usr/sbin/logrotate /etc/logrotate.conf", "/usr/sbin/logrotate", ROOT),
        (f"/bin/kill -HUP {r.randint(300, 9000)}", "/bin/kill", ROOT),
    ])
    return Proc(cmd, exe, INIT, user, "/")


def monitoring(r: random.Random) -> Proc:
    """NRPE / Nagios plugins, Zabbix user parameters, Telegraf exec inputs, node_exporter's textfile scripts."""
    mount = r.choice(["/", "/var", "/srv", "/home", "/var/lib/docker", "/boot"])
    svc, host = r.choice(SERVICES), r.choice(HOSTS)
    agents = {"nagios": ("/usr/sbin/nrpe", "/usr/sbin/nrpe -c /etc/nagios/nrpe.cfg -f"),
              "zabbix": ("/usr/sbin/zabbix_agentd", "/usr/sbin/zabbix_agentd: collector [idle 1 sec]"),
              "telegraf": ("/usr/bin/telegraf", "/usr/bin/telegraf -config /etc/telegraf/telegraf.conf"),
              "prometheus": ("/usr/bin/prometheus-node-exporter", "/usr/bin/prometheus-node-exporter")}
    user = r.choice(MONITOR)
    w, c = r.randint(10, 30), r.randint(3, 9)
    cmd, exe = r.choice([
        (f"/usr/lib/nagios/plugins/check_disk -w {w}% -c {c}% -p {mount}", "/usr/lib/nagios/plugins/check_disk"),
        (f"/usr/lib/nagios/plugins/check_load -w {w / 10:.1f},{w / 12:.1f},{w / 15:.1f} -c "
         f"{w / 5:.1f},{w / 6:.1f},{w / 7:.1f}",
         "/usr/lib/nagios/plugins/check_load"),
        (f"/usr/lib/nagios/plugins/check_procs -w {w * 10} -c {w * 20}", "/usr/lib/nagios/plugins/check_procs"),
        (f"/usr/lib/nagios/plugins/check_http -H {host}.internal -u /health -w {c} -c {w}",
         "/usr/lib/nagios/plugins/check_http"),
        (f"/usr/lib/nagios/plugins/check_systemd_service {svc}.service",
         "/usr/lib/nagios/plugins/check_systemd_service"),
        (f"sh -c 'systemctl is-active {svc}.service'", SH),
        (f"sh -c 'ss -tan state established | grep -c :{r.choice([22, 80, 443, 5432, 6379])}'", SH),
        ("sh -c 'cat /proc/loadavg'", SH), ("sh -c 'free -b | awk \"/Mem/ {print \\$3}\"'", SH),
        (f"sh -c 'df -P {mount} | tail -1'", SH),
        (f"sh -c 'mysqladmin -u zabbix ping 2>/dev/null | grep -c alive' # {host}", SH),
        (f"iostat -dx {c} 2", "/usr/bin/iostat"), ("smartctl -H /dev/sda", "/usr/sbin/smartctl"),
        (f"/usr/share/prometheus-node-exporter-collectors/apt_info.py # {host}", "/usr/bin/python3.11"),
        (f"/usr/share/prometheus-node-exporter-collectors/smartmon.sh # {host}", "/bin/bash"),
        # a certificate-expiry check, as a script or as the usual one-liner (w picks one: no extra draw)
        [(f"/usr/local/bin/check_cert_expiry {host}.internal:443 {w}", "/usr/local/bin/check_cert_expiry"),
         (f"sh -c 'echo | openssl s_client -servername {host}.internal -connect {host}.internal:443 2>/dev/null"
          f" | openssl x509 -noout -checkend {w * 86400}'", SH)][w % 2],
        # a port check with netcat; on RHEL `nc` is nmap-ncat, so the file run is /usr/bin/ncat
        (f"nc -z -w {c} {host}.internal {r.choice([22, 80, 443, 3306, 5432, 6379])}", "/usr/bin/ncat"),
    ])
    return Proc(cmd, exe, agents[user[0]], user, "/")


PHP_PARENTS = [("/usr/sbin/php-fpm8.2", "php-fpm: pool www"), ("/usr/sbin/apache2", "/usr/sbin/apache2 -k start"),
               ("/usr/sbin/php-fpm8.1", "php-fpm: pool www")]


def php_child(r: random.Random) -> Proc:
    """PHP exec()/shell_exec()/mail() children of php-fpm or apache2 (mod_php), run as www-data:
    ImageMagick thumbnails, ffmpeg transcodes, git for the version footer, sendmail, wkhtmltopdf."""
    app = r.choice(APPS)
    img, vid = _upload(r, app, MEDIA), _upload(r, app, VIDEO)
    size = r.choice(["150x150", "300x300", "800x600", "1024x768", "1920x1080"])
    tmp = f"/tmp/php{_hex(r, 6)}"
    cmds = [
        f"convert {img} -auto-orient -resize {size} -quality 85 {img.rsplit('.', 1)[0]}-{size}.jpg",
        f"convert {img}[0] -thumbnail {size}^ -gravity center -extent {size} {img.rsplit('.', 1)[0]}-thumb.png",
        f"identify -format '%w %h %m' {img}",
        f"ffmpeg -y -i {vid} -vf scale=-2:{r.choice([360, 480, 720, 1080])} -c:v libx264 -preset fast -crf 23 "
        f"-c:a aac {vid.rsplit('.', 1)[0]}.mp4",
        f"ffmpeg -y -ss 00:00:0{r.randint(1, 9)} -i {vid} -frames:v 1 {vid.rsplit('.', 1)[0]}.jpg",
        f"ffprobe -v quiet -print_format json -show_format -show_streams {vid}",
        f"git -C /var/www/{app} rev-parse --short HEAD",
        f"git -C /var/www/{app} log -1 --format=%cd --date=iso",
        f"git -C /var/www/{app} describe --tags --always",
        "/usr/sbin/sendmail -t -i", f"/usr/sbin/sendmail -t -i -f noreply@{app}.example.com",
        f"wkhtmltopdf --quiet --page-size A4 --encoding utf-8 {tmp}.html "
        f"/var/www/{app}/storage/invoices/{r.randint(10000, 99999)}.pdf",
        f"pdftotext -layout {_upload(r, app, ['pdf'])} {tmp}.txt",
        f"gs -dBATCH -dNOPAUSE -dSAFER -sDEVICE=png16m -r{r.choice([72, 96, 150])} -sOutputFile={tmp}-%d.png "
        f"{_upload(r, app, ['pdf'])}",
        f"file -b --mime-type {tmp}", f"clamdscan --no-summary --fdpass {tmp}",
        f"unzip -o -q {_upload(r, app, ['zip'])} -d /var/www/{app}/storage/imports/{_hex(r, 6)}",
        f"jpegoptim --strip-all --max={r.randint(70, 90)} {img}", f"optipng -o2 {img.rsplit('.', 1)[0]}.png",
        f"libreoffice --headless --convert-to pdf --outdir /tmp {_upload(r, app, ['docx', 'odt', 'xlsx'])}",
        f"php /var/www/{app}/artisan queue:work --once --queue=default",
        f"locale -a # {app}",
    ]
    cmd = r.choice(cmds)
    parent = r.choice(PHP_PARENTS)
    # exec(), shell_exec() and mail() pass the command to /bin/sh -c (PHP manual); proc_open with an
    # array and pcntl_exec start it directly. Both are common.
    if r.random() < 0.6:
        return Proc(shlex.join(["sh", "-c", cmd]), SH, parent, WWW, f"/var/www/{app}/public")
    first = shlex.split(cmd)[0]
    return Proc(cmd, first if first.startswith("/") else f"/usr/bin/{first}", parent, WWW, f"/var/www/{app}/public")


def python_worker_child(r: random.Random) -> Proc:
    """subprocess children of gunicorn / uwsgi / celery workers: pdf rendering, git, pg_dump, thumbnails."""
    app = r.choice(APPS)
    parent, user = r.choice([
        (f"/opt/{app}/venv/bin/python3",
         f"/opt/{app}/venv/bin/python3 /opt/{app}/venv/bin/gunicorn {app}.wsgi:application"),
        ("/usr/bin/uwsgi", f"/usr/bin/uwsgi --ini /etc/uwsgi/apps-enabled/{app}.ini"),
        (f"/opt/{app}/venv/bin/python3", f"/opt/{app}/venv/bin/python3 /opt/{app}/venv/bin/celery -A {app} worker"),
    ]), r.choice([WWW, APP])
    rid = r.randint(1000, 999999)
    cmd, exe = r.choice([
        (f"wkhtmltopdf --quiet /tmp/tmp{_hex(r, 8)}.html /tmp/tmp{_hex(r, 8)}.pdf", "/usr/bin/wkhtmltopdf"),
        (f"git -C /opt/{app} rev-parse HEAD", "/usr/bin/git"),
        (f"pg_dump --data-only --table=report_{rid % 97} {app}", "/usr/lib/postgresql/15/bin/pg_dump"),
        (f"convert /opt/{app}/media/avatars/{rid}.png -resize 128x128 /opt/{app}/media/avatars/{rid}-128.png",
         "/usr/bin/convert"),
        (f"/opt/{app}/venv/bin/python /opt/{app}/manage.py export_report --id {rid}", f"/opt/{app}/venv/bin/python3"),
        (f"/bin/sh -c 'lpr -P office-{rid % 5} /tmp/label-{rid}.pdf'", SH),
        (f"/usr/sbin/sendmail -oi -t -f reports@{app}.example.com # {rid}", "/usr/sbin/sendmail"),
        (f"ffmpeg -hide_banner -i /opt/{app}/media/uploads/{rid}.mov -c:v libvpx-vp9 /opt/{app}/media/{rid}.webm",
         "/usr/bin/ffmpeg"),
        (f"gpg --batch --verify /opt/{app}/updates/{rid}.tar.gz.sig", "/usr/bin/gpg"),
        (f"tesseract /tmp/scan-{rid}.png /tmp/scan-{rid} -l eng", "/usr/bin/tesseract"),
    ])
    return Proc(cmd, exe, parent, user, f"/opt/{app}")


def node_child(r: random.Random) -> Proc:
    """Node.js servers and pm2 spawning npm scripts and tools (child_process.exec runs `/bin/sh -c`)."""
    app = r.choice(APPS)
    parent = r.choice([("/usr/bin/node", f"node /srv/{app}/dist/server.js"),
                       ("/usr/bin/node", "node /usr/lib/node_modules/pm2/lib/ProcessContainerFork.js")])
    job = r.randint(1, 99999)
    cmd = r.choice([
        f"/bin/sh -c 'npm run worker -- --job {job}'", "/bin/sh -c 'npm run build:css'",
        f"/bin/sh -c 'git rev-parse HEAD' # {app}", f"/bin/sh -c 'node scripts/migrate.js --to {job}'",
        f"/bin/sh -c 'convert /srv/{app}/uploads/{job}.png -resize 64x64 /srv/{app}/uploads/{job}-64.png'",
        f"/bin/sh -c 'ffmpeg -i /srv/{app}/uploads/{job}.webm -vn -acodec libmp3lame /srv/{app}/uploads/{job}.mp3'",
        f"/bin/sh -c 'pdftoppm -png -r 72 /srv/{app}/uploads/{job}.pdf /tmp/{job}'",
        f"/bin/sh -c 'sendmail -t < /tmp/mail-{job}.eml'",
    ])
    return Proc(cmd, SH, parent, NODE, f"/srv/{app}")


def ci(r: random.Random) -> Proc:
    """GitHub Actions runner step scripts and actions/checkout, gitlab-runner, make(1), gcc(1), docker."""
    repo, f = r.choice(APPS), r.choice(SRC)
    uid = f"{_hex(r, 8)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 12)}"
    gh_worker = ("/home/runner/actions-runner/bin/Runner.Worker",
                 "/home/runner/actions-runner/bin/Runner.Worker spawnclient 107 110")
    step = ("/usr/bin/bash", f"/usr/bin/bash --noprofile --norc -e -o pipefail /home/runner/work/_temp/{uid}.sh")
    gl = ("/usr/bin/gitlab-runner", "/usr/bin/gitlab-runner run --working-directory /home/gitlab-runner")
    make = ("/usr/bin/make", "make -j4")
    sha = _hex(r, 40)
    work = f"/home/runner/work/{repo}/{repo}"
    choices: list[tuple[str, str, tuple[str, str], tuple[str, str]]] = [
        (f"/usr/bin/bash --noprofile --norc -e -o pipefail /home/runner/work/_temp/{uid}.sh", "/usr/bin/bash",
         gh_worker, RUNNER),
        (f"/usr/bin/git -c protocol.version=2 fetch --no-tags --prune --no-recurse-submodules --depth=1 origin "
         f"+{sha}:refs/remotes/origin/main",
         "/usr/bin/git", ("/home/runner/runners/2.321.0/externals/node20/bin/node",
                          "/home/runner/runners/2.321.0/externals/node20/bin/node "
                          "/home/runner/work/_actions/actions/checkout/v4/dist/index.js"), RUNNER),
        (f"/usr/bin/git checkout --progress --force -B main refs/remotes/origin/main # {sha[:7]}", "/usr/bin/git",
         ("/home/runner/runners/2.321.0/externals/node20/bin/node",
          "node /home/runner/work/_actions/actions/checkout/v4/dist/index.js"), RUNNER),
        (f"/usr/bin/tar -xf /home/runner/work/_temp/{uid}/cache.tzst -P -C {work} --use-compress-program unzstd",
         "/usr/bin/tar",
         ("/home/runner/runners/2.321.0/externals/node20/bin/node",
          "node /home/runner/work/_actions/actions/cache/v4/dist/restore/index.js"), RUNNER),
        (f"docker build -t ghcr.io/example/{repo}:{sha[:7]} .", "/usr/bin/docker", step, RUNNER),
        (f"docker run --rm -v {work}:/src -w /src python:3.12 python -m pytest -q tests/test_{f}.py",
         "/usr/bin/docker", step, RUNNER),
        (f"make -j4 -C {work} {r.choice(['all', 'test', 'lint', 'dist', 'check'])}", "/usr/bin/make", step, RUNNER),
        (f"gcc -O2 -Wall -Wextra -fPIC -Iinclude -c src/{f}.c -o build/{f}.o", "/usr/bin/gcc", make,
         r.choice([RUNNER, GITLAB])),
        (f"cc -shared -o build/lib{repo}.so build/{f}.o build/util.o -lz -lpthread", "/usr/bin/cc", make,
         r.choice([RUNNER, GITLAB])),
        (f"/usr/lib/gcc/x86_64-linux-gnu/12/cc1 -quiet -Iinclude src/{f}.c -quiet -dumpbase {f}.c -O2 -Wall -o "
         f"/tmp/cc{_hex(r, 6)}.s",
         "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", ("/usr/bin/gcc", f"gcc -O2 -c src/{f}.c"), r.choice([RUNNER, GITLAB])),
        (f"go build -trimpath -o bin/{repo} ./cmd/{repo}", "/usr/local/go/bin/go", step, RUNNER),
        (f"cargo build --release --locked -p {repo}-{f}", "/home/runner/.cargo/bin/cargo", step, RUNNER),
        (f"python -m pytest -q --junitxml=reports/{f}.xml tests/test_{f}.py",
         "/opt/hostedtoolcache/Python/3.12.7/x64/bin/python", step, RUNNER),
        (f"npm run test -- --ci --shard={r.randint(1, 4)}/4", "/usr/bin/node", step, RUNNER),
        ("sh -c 'if [ -x /usr/local/bin/bash ]; then\n\texec /usr/local/bin/bash \nelif [ -x /usr/bin/bash ]; "
         "then\n\texec /usr/bin/bash \n"
         "elif [ -x /bin/bash ]; then\n\texec /bin/bash \nelif [ -x /usr/local/bin/sh ]; then\n\texec "
         "/usr/local/bin/sh \n"
         "elif [ -x /usr/bin/sh ]; then\n\texec /usr/bin/sh \nelif [ -x /bin/sh ]; then\n\texec /bin/sh \n"
         "elif [ -x /busybox/sh ]; then\n\texec /busybox/sh \nelse\n\techo shell not found\n\texit 1\nfi\n\n'", SH, gl,
         GITLAB),
        (f"bash --login -c 'cd /builds/example/{repo} && make test TEST={f}'", "/bin/bash", gl, GITLAB),
        (f"git clone --depth 20 https://gitlab-ci-token:[MASKED]@gitlab.example.com/example/{repo}.git "
         f"/builds/example/{repo}", "/usr/bin/git", gl, GITLAB),
        (f"docker login -u gitlab-ci-token --password-stdin registry.example.com # {repo}", "/usr/bin/docker", gl,
         GITLAB),
        (f"docker push registry.example.com/example/{repo}:{sha[:8]}", "/usr/bin/docker", gl, GITLAB),
        (f"ld -o build/{repo} build/{f}.o -lc --dynamic-linker /lib64/ld-linux-x86-64.so.2", "/usr/bin/ld", make,
         GITLAB),
        (f"shellcheck scripts/{f}.sh", "/usr/bin/shellcheck", step, RUNNER),
    ]
    cmd, exe, parent, user = r.choice(choices)
    return Proc(cmd, exe, parent, user, work if user == RUNNER else f"/builds/example/{repo}")


def dev_shell(r: random.Random) -> Proc:
    """A developer's or admin's interactive shell (bash under sshd) on servers and workstations."""
    app, f, svc, host = r.choice(APPS), r.choice(SRC), r.choice(SERVICES), r.choice(HOSTS)
    n = r.randint(1, 500)
    cmd = r.choice([
        "git status", f"git log --oneline -{n}", f"git diff HEAD~{n % 9 + 1} -- src/{f}.py",
                    f"git checkout -b feature/{f}-{n}",
        f"git commit -m 'fix {f} handling ({n})'", "git pull --rebase", f"git push origin feature/{f}-{n}",
        f"vim src/{f}.py", f"less /var/log/{app}/{app}.log", f"tail -n {n} -f /var/log/nginx/access.log",
        f"grep -rn 'TODO' src/{f}", f"grep -c ' 50[0-9] ' /var/log/nginx/{app}.access.log", f"ls -la /srv/{app}",
        f"make test TEST=tests/test_{f}.py", f"python3 -m pytest -x tests/test_{f}.py -k {f}",
        f"ssh {host}.internal", f"scp /tmp/{app}.tar.gz {host}.internal:/tmp/",
                    f"curl -sS https://{app}.example.com/health",
        f"curl -s -o /dev/null -w '%{{http_code}}' https://{host}.internal/", "docker compose up -d",
                    f"docker compose logs -f {app}",
        f"docker exec -it {app}-web-1 bash", f"kubectl -n {app} get pods -o wide",
                    f"kubectl -n {app} logs deploy/{app} --tail={n}",
        f"kubectl -n {app} rollout restart deploy/{app}", f"sudo systemctl restart {svc}",
                    f"systemctl status {svc} --no-pager",
        f"journalctl -u {svc} --since '-{n}min' --no-pager", f"ps -ef --sort=-%cpu | head -{n % 30 + 5}", "htop",
                    "df -h",
        f"du -sh /var/lib/{svc}", f"du -sh /srv/{app}/*", f"free -m # {host}",
                    f"jq '.items[] | .name' /tmp/{app}-{n}.json",
        # TLS checks: a handshake, the chain, a certificate's expiry (n picks one: no extra draw)
        [f"openssl s_client -connect {app}.example.com:443 -servername {app}.example.com </dev/null",
         f"openssl s_client -showcerts -connect {app}.example.com:443 </dev/null",
         f"echo | openssl s_client -servername {app}.example.com -connect {app}.example.com:443 2>/dev/null"
         f" | openssl x509 -noout -enddate"][n % 3],
        f"openssl x509 -in /etc/ssl/certs/{app}.pem -noout -dates", f"dig +short {app}.example.com",
                    [f"ping -c 3 {host}.internal", f"telnet {host}.internal 25"][n % 2],
        f"tar -xzf ~/Downloads/{app}-{n}.tar.gz -C /tmp", f"python3 manage.py shell -c 'from {app}.models import *'",
        f"mysql -u {app} -p {app}", f"psql -h {host}.internal -U {app} -d {app} -c 'select count(*) from orders'",
        f"redis-cli -h {host}.internal info memory", f"nano /etc/nginx/sites-available/{app}.conf", "sudo nginx -t",
        f"crontab -l -u {app}", f"id {app}", "uptime", "w", f"last -n {n % 20 + 5}", f"history | tail -{n % 50 + 5}",
    ])
    first = shlex.split(cmd)[0]
    user = r.choice(DEV)
    return Proc(cmd, f"/usr/bin/{first}", LOGIN, user, f"/home/{user[0]}")


def container(r: random.Random) -> Proc:
    """Container start-ups: the official images' entrypoints and the Kubernetes node components."""
    app, port = r.choice(APPS), r.randint(3000, 9000)
    shim = ("/usr/bin/containerd-shim-runc-v2",
            f"/usr/bin/containerd-shim-runc-v2 -namespace moby -id {_hex(r, 64)} -address "
            f"/run/containerd/containerd.sock")
    cmd, exe, user = r.choice([
        ("/docker-entrypoint.sh nginx -g 'daemon off;'", SH, ROOT),
        ("/bin/sh /docker-entrypoint.d/20-envsubst-on-templates.sh", SH, ROOT),
        ("/bin/sh /docker-entrypoint.d/30-tune-worker-processes.sh", SH, ROOT),
        ("docker-entrypoint.sh postgres", "/usr/local/bin/docker-entrypoint.sh", ROOT),
        ("gosu postgres initdb --username=postgres --pwfile=/dev/fd/63", "/usr/local/bin/gosu", ROOT),
        ("redis-server *:6379", "/usr/local/bin/redis-server", ("redis", "999")),
        ("docker-entrypoint.sh mysqld", "/usr/local/bin/docker-entrypoint.sh", ("mysql", "999")),
        ("php-fpm -F", "/usr/local/sbin/php-fpm", ROOT),
        ("apache2-foreground", "/usr/local/bin/apache2-foreground", ROOT),
        (f"/sbin/tini -- /app/start-{app}.sh", "/sbin/tini", APP),
        (f"/bin/sh -c 'java $JAVA_OPTS -jar /app/{app}.jar'", SH, APP),
        (f"uvicorn {app}.main:app --host 0.0.0.0 --port {port}", "/usr/local/bin/python3.12", APP),
        (f"gunicorn --bind 0.0.0.0:{port} --workers 3 {app}.wsgi", "/usr/local/bin/python3.12", APP),
        (f"node /app/{app}/server.js", "/usr/local/bin/node", NODE),
        (f"envsubst '$PORT' < /etc/nginx/templates/{app}.conf.template", "/usr/bin/envsubst", ROOT),
        ("/pause", "/pause", ("65535", "65535")), ("runc init", "/usr/bin/runc", ROOT),
        ("/coredns -conf /etc/coredns/Corefile", "/coredns", ROOT),
        (f"kube-proxy --config=/var/lib/kube-proxy/config.conf --hostname-override={r.choice(HOSTS)}",
         "/usr/local/bin/kube-proxy", ROOT),
        (f"/bin/sh -c 'until nc -z {app}-db 5432; do sleep 1; done'", SH, APP),
        # the loop's own child: Debian-based images resolve nc to nc.openbsd
        (f"nc -z {app}-db {r.choice([3306, 5432, 6379, 9200])}", "/usr/bin/nc.openbsd", APP),
        (f"/bin/sh -c 'python manage.py migrate --noinput && exec gunicorn {app}.wsgi -b :{port}'", SH, APP),
        (f"/usr/local/bin/docker-entrypoint.sh node /app/{app}/index.js", "/usr/local/bin/docker-entrypoint.sh", NODE),
    ])
    return Proc(cmd, exe, shim, user, "/")


Category = Callable[[random.Random], Proc]
# (category, share of the corpus): shares of a server fleet's process starts as we picture them; the
# rate is measured per event, so these weights say how much each kind of activity counts.
CATEGORIES: list[tuple[Category, float]] = [
    (apt_dpkg, 0.11), (apt_fixed, 0.01), (rpm_dnf, 0.04), (rpm_fixed, 0.005), (pip, 0.05), (npm, 0.06),
    (cron, 0.07), (cron_children, 0.02), (logrotate, 0.03), (backup, 0.06), (systemd_unit, 0.04),
    (monitoring, 0.07), (php_child, 0.12), (python_worker_child, 0.05), (node_child, 0.03), (ci, 0.10),
    (dev_shell, 0.09), (container, 0.045),
]


# Debian 12 has a merged /usr and /bin/sh -> dash: Elastic Defend (and auditd's exe=) report the file
# the kernel ran, so `sh -c` started through /bin/sh is recorded as /usr/bin/dash, process.name dash.
_RESOLVED = {"/bin/sh": "/usr/bin/dash", "/bin/bash": "/usr/bin/bash", "/bin/tar": "/usr/bin/tar",
             "/bin/gzip": "/usr/bin/gzip", "/bin/run-parts": "/usr/bin/run-parts", "/bin/kill": "/usr/bin/kill",
             "/sbin/ldconfig": "/usr/sbin/ldconfig", "/sbin/start-stop-daemon": "/usr/sbin/start-stop-daemon",
             "/sbin/e2scrub_all": "/usr/sbin/e2scrub_all"}


def _exe(path: str) -> str:
    return _RESOLVED.get(path, path)


def _args(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd, comments=False)
    except ValueError:  # an unbalanced quote: execve would have had the words
        return cmd.split()


def _eid(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _event(i: int, ts: datetime, host: str, p: Proc, rnd: random.Random) -> dict[str, Any]:
    args, pargs = _args(p.command_line), _args(p.parent[1])
    exe, pexe = _exe(p.executable), _exe(p.parent[0])
    pid, ppid = rnd.randint(1000, 4_000_000), rnd.randint(1, 999_999)
    return {
        "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent": {"type": "endpoint", "version": "8.15.0"},
        "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec",
                  "dataset": "endpoint.events.process", "module": "endpoint"},
        "host": {"id": _eid("host", host), "name": host, "hostname": host,
                 "os": {"type": "linux", "family": "debian", "name": "Debian GNU/Linux", "kernel": "6.1.0-28-amd64"}},
        "process": {"pid": pid, "entity_id": _eid("p", i, pid), "name": exe.rsplit("/", 1)[-1],
                    "executable": exe, "command_line": p.command_line, "args": args,
                    "args_count": len(args), "working_directory": p.cwd,
                    "parent": {"pid": ppid, "entity_id": _eid("pp", i, ppid), "name": pexe.rsplit("/", 1)[-1],
                               "executable": pexe, "command_line": p.parent[1], "args": pargs,
                               "args_count": len(pargs)}},
        "user": {"name": p.user[0], "id": p.user[1]},
        "group": {"name": p.user[0], "id": p.user[1]},
    }


def events(seed: int = SEED, count: int = COUNT) -> list[dict[str, Any]]:
    """`count` ECS process starts, each with its own command line, in time order; the same for a seed."""
    rnd = random.Random(seed)
    cats, weights = zip(*CATEGORIES, strict=True)
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    ts = T0
    for _ in range(count * 50):
        if len(out) == count:
            break
        p = rnd.choices(cats, weights)[0](rnd)
        if p.command_line in seen:
            continue
        seen.add(p.command_line)
        ts += timedelta(milliseconds=rnd.randint(5, 4000))
        out.append(_event(len(out), ts, rnd.choice(HOSTS), p, rnd))
    if len(out) < count:
        raise RuntimeError(f"only {len(out)} distinct command lines after {count * 50} draws")
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the corpus as NDJSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=COUNT)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    enc = msgspec.json.Encoder()
    with args.out.open("wb") as fh:
        for ev in events(args.seed, args.count):
            fh.write(enc.encode(ev) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
